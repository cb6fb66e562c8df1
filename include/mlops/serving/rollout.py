"""Safe rollout in the service: ``@challenger`` in shadow and as a sticky canary.

Two ways to let a new version meet real traffic before it is promoted:

* **Shadow** (on by default, ``mlops serve --no-shadow`` turns it off): every flight a request
  scores is also scored by the other model, *off the response path*. The request hands the
  :class:`ShadowScorer` the feature rows it already computed (a ``deque`` append, no I/O) and
  answers; a daemon thread scores them with the shadow model and logs the result under the same
  ``prediction_id`` with ``role="shadow"``. The queue is bounded (:attr:`ShadowScorer.max_pending`
  requests): when the thread falls behind, new jobs are dropped and counted
  (``mlops_serving_shadow_jobs_total{outcome="dropped"}``), never waited for; a shadow model that
  raises is counted (``outcome="failed"`` and ``mlops_serving_model_errors_total{role="shadow"}``)
  and the answer, long gone, never sees it.
* **Canary** (``--canary-percent P`` or ``MLOPS_CANARY_PERCENT``, default 0): ``P`` percent of
  flights are *answered* by ``@challenger``, the others by ``@champion``. The split is sticky by
  flight: :func:`canary_bucket` hashes the flight's id (local date, carrier, flight number,
  origin), so every request about one flight gets the same model all day, and the share is
  ``P`` % of flights whatever the traffic's order. The answer says who scored each flight
  (``served_by``); with shadow on, the champion scores the canary's flights in shadow.

Which model is "the challenger": the version ``@challenger`` points at, when it is set, loaded,
different from the champion's version, and built on the same feature service (the shadow model
scores the served model's feature rows; a version on another service is not shadowed and
``/health`` says why). After a promotion ``@challenger`` and ``@champion`` point at the same
version: nothing to shadow until the next registration.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.config import CHALLENGER

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mlops.serving.logger import PredictionLogger
    from mlops.serving.metrics import ServiceMetrics
    from mlops.serving.model import ModelHolder, ServedModel
    from mlops.serving.online import FlightRequest

log = logging.getLogger(__name__)

#: Environment variable read by ``mlops serve`` when ``--canary-percent`` is not given.
CANARY_ENV = "MLOPS_CANARY_PERCENT"
#: Buckets of :func:`canary_bucket`: a canary share has a resolution of 0.01 %.
BUCKETS = 10_000
SERVED, SHADOW = "served", "shadow"


def parse_canary_percent(value: Any, source: str = "--canary-percent") -> float:
    """A canary share in percent (0-100); ValueError naming ``source`` and the value otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{source}={value!r}: expected a number of percent between 0 and 100, e.g. 10")
    try:
        percent = float(str(value).strip().rstrip("%")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        shown = str(value)[:40]
        raise ValueError(
            f"{source}={shown!r} is not a number: give the share of flights answered by @challenger "
            "in percent, between 0 and 100 (e.g. 10)"
        ) from None
    if math.isnan(percent) or not 0.0 <= percent <= 100.0:
        raise ValueError(
            f"{source}={value!r} is out of range: the share of flights answered by @challenger is a "
            "percentage between 0 and 100 (0 turns the canary off)"
        )
    return percent


def canary_percent_from_env(environ: Mapping[str, str] | None = None) -> float:
    """``MLOPS_CANARY_PERCENT`` (0 when unset or empty), validated like the flag."""
    raw = (os.environ if environ is None else environ).get(CANARY_ENV, "").strip()
    return parse_canary_percent(raw, CANARY_ENV) if raw else 0.0


def canary_bucket(flight: FlightRequest) -> int:
    """The flight's bucket in ``[0, BUCKETS)``: a hash of its id, the same for every request about it."""
    digest = hashlib.blake2b(flight.flight_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_canary(flight: FlightRequest, percent: float) -> bool:
    """True when ``flight`` falls in the canary share (``percent`` of the buckets, the lowest ones)."""
    return percent > 0 and canary_bucket(flight) < round(percent * BUCKETS / 100)


@dataclass(frozen=True)
class Role:
    """A model as a request uses it: which alias it stands for, and the loaded version."""

    alias: str
    model: ServedModel

    @property
    def version(self) -> str:
        return self.model.version


def active_challenger(champion: ServedModel | None, holder: ModelHolder | None) -> tuple[Role | None, str]:
    """``@challenger`` if it may be shadowed or canaried now, with the reason when it may not."""
    if holder is None:
        return None, "no challenger holder (shadow and canary off)"
    model = holder.current
    if model is None or holder.alias_version is None:
        return None, f"{holder.name}@{holder.alias} is not set or not loaded"
    if str(holder.alias_version) != model.version:  # the alias moved and the new one did not load
        return None, f"{holder.name}@{holder.alias} points at v{holder.alias_version}, not loaded yet"
    if champion is not None and champion.version == model.version:
        return None, f"@{holder.alias} is the champion (v{model.version}): nothing to compare"
    if champion is not None:
        mine, theirs = model.tags.get("mlops.feature_service"), champion.tags.get("mlops.feature_service")
        if mine and theirs and mine != theirs:
            return None, (
                f"@{holder.alias} v{model.version} uses feature service {mine}, the champion {theirs}: "
                "the service computes the champion's features only"
            )
    return Role(CHALLENGER, model), "ok"


@dataclass
class ShadowJob:
    """What the request path hands over: references only, scored by the shadow thread."""

    role: Role
    request_id: str
    served_at: float
    prediction_ids: Sequence[str]
    flights: Sequence[FlightRequest]
    rows: Sequence[Mapping[str, Any]]
    threshold: float


class ShadowScorer:
    """Scores :class:`ShadowJob` s from a daemon thread; bounded, never blocks the request path."""

    def __init__(
        self,
        metrics: ServiceMetrics,
        logger: PredictionLogger | None = None,
        *,
        max_pending: int = 1_000,
    ) -> None:
        from mlops.serving.logger import LoggedPrediction

        self._entry = LoggedPrediction
        self.metrics = metrics
        self.logger = logger
        self.max_pending = int(max_pending)
        self._jobs: collections.deque[ShadowJob] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = False
        self._thread: threading.Thread | None = None
        self.scored = self.dropped = self.failed = 0
        self.last_error: str | None = None

    # -- request path -------------------------------------------------------------------------
    def submit(self, job: ShadowJob) -> bool:
        """Queue a job (O(1)); False, and counted as dropped, when ``max_pending`` are waiting."""
        if len(self._jobs) >= self.max_pending:
            self.dropped += 1
            self.metrics.shadow_jobs.labels("dropped").inc()
            return False
        self._jobs.append(job)
        self._wake.set()
        return True

    # -- background ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Score every queued job (the thread's loop; tests call it directly)."""
        while self._jobs:
            self._busy = True
            try:
                self.score(self._jobs.popleft())
            except IndexError:  # emptied meanwhile (close() drains too)
                pass
            except Exception:  # the thread must outlive any one job
                log.exception("shadow job failed")
            finally:
                self._busy = False

    def score(self, job: ShadowJob) -> None:
        """Score one job with its model; log and count it. Never raises."""
        m, role = self.metrics, job.role
        started = time.perf_counter()
        try:
            probs = role.model.predict_rows(job.rows).tolist()
        except Exception as exc:
            self.failed += 1
            self.last_error = (
                f"shadow scoring with {role.alias} v{role.version} failed: {type(exc).__name__}: {exc}"
            )
            log.warning("%s (request %s)", self.last_error, job.request_id, exc_info=True)
            m.shadow_jobs.labels("failed").inc()
            m.model_errors.labels(role.alias, role.version, SHADOW).inc()
            return
        m.observe_model(role.alias, role.version, SHADOW, len(probs), time.perf_counter() - started)
        m.shadow_jobs.labels("scored").inc()
        self.scored += 1
        if self.logger is not None:
            entry = self._entry
            self.logger.log(
                [
                    entry(
                        request_id=job.request_id,
                        served_at=job.served_at,
                        flight=f,
                        features=row,
                        probability=p,
                        threshold=job.threshold,
                        model_name=role.model.name,
                        model_version=role.version,
                        prediction_id=pid,
                        alias=role.alias,
                        role=SHADOW,
                    )
                    for pid, f, row, p in zip(job.prediction_ids, job.flights, job.rows, probs, strict=True)
                ]
            )

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the queue is empty and no job is being scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._jobs or self._busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after scoring what is queued (so shutdown logs the last shadows)."""
        self.wait_idle(timeout)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.drain()

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def describe(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "max_pending": self.max_pending,
            "scored": self.scored,
            "dropped": self.dropped,
            "failed": self.failed,
            "last_error": self.last_error,
        }
