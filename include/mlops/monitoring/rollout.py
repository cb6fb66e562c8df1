"""The rollout guard's comparison, pure: is ``@champion`` live worse than ``@previous`` was?

No Airflow and no I/O here: :mod:`mlops.monitoring.rollout_check` reads the evidence (the
service's ``/metrics`` snapshots, the online prediction log, the curated labels, ``@previous``'s
scores) and :mod:`mlops.monitoring.rollback` moves the alias; this module decides.

Three numbers, each compared the fairest way its source allows:

* **Online ROC-AUC** - a paired comparison on the same rows. The champion's served predictions
  (``{lake}/predictions_online/``, the rows its version answered, one per flight) are joined with
  the labels that have arrived (curated ``is_delayed``); ``@previous`` scores the very same logged
  model inputs. Same flights, same day, same labels: the difference is the models', not the
  traffic's (a week in July is harder than one in February for any model, so comparing each
  model's own period would blame the season). A rollback needs the drop to pass
  ``max_auc_drop`` *and* a paired bootstrap to put the drop above zero with ``confidence``, on at
  least ``min_labelled`` rows with ``min_class_rows`` of each class.
* **Error rate** and **p99 latency** - from the service's Prometheus counters, which cannot be
  replayed offline. Each scrape is a :class:`Snapshot`; :func:`intervals` takes the increases
  between consecutive scrapes. When the service exports per-model metrics
  (``mlops_serving_model_{requests,errors}_total`` and ``mlops_serving_model_duration_seconds`` by
  ``model_version``, ``role="served"``), each version's answers are its own even when two versions
  answer in one interval (a canary, a swap). Otherwise ``mlops_serving_predictions_total`` says
  which versions answered: an interval in which only one did is that version's ``/predict``
  numbers, one with a swap inside counts for nobody. ``@previous``'s numbers are thus its own,
  measured by the same service while it answered. Errors are ``/predict`` answers with a 5xx
  status, or a model's scoring failures (a 4xx is a bad request, not the model's fault). p99 is
  Prometheus's ``histogram_quantile`` on the summed bucket increases. A breach needs
  ``min_requests`` on each side; an error rate above ``max_error_rate`` is a breach even without
  ``@previous``'s numbers.

A counter that went down between two scrapes is a restart: the later values count from zero (as
Prometheus's ``increase()`` does).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.params import parse_bool

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    import numpy as np
    import pandas as pd

#: The environment variable prefix of the thresholds (``MLOPS_ROLLOUT_MAX_AUC_DROP=0.03``).
ENV_PREFIX = "MLOPS_ROLLOUT_"
#: The service's ``/metrics`` URL the guard scrapes (unset: latency and errors are not checked).
METRICS_URL_ENV = "MLOPS_SERVING_METRICS_URL"

#: The path whose requests are the model's (errors, latency).
PREDICT_PATH = "/predict"
REQUESTS = "mlops_serving_requests"
LATENCY = "mlops_serving_request_duration_seconds"
PREDICTIONS = "mlops_serving_predictions"
MODEL_INFO = "mlops_serving_model_info"
#: Per-model metrics (by ``alias``, ``model_version``, ``role``) when the service exports them.
MODEL_REQUESTS = "mlops_serving_model_requests"
MODEL_ERRORS = "mlops_serving_model_errors"
MODEL_DURATION = "mlops_serving_model_duration_seconds"


@dataclass(frozen=True)
class RolloutParams:
    """Thresholds and minimum samples of the rollout guard (keys of ``ROLLOUT_PARAMS``)."""

    #: Online days (ending with the check's day) whose served predictions are the evidence.
    window_days: int = 3
    #: ROC-AUC: ``@previous`` better by more than this on the same rows => breach ...
    max_auc_drop: float = 0.02
    #: ... if the paired bootstrap puts the drop above zero with this confidence ...
    confidence: float = 0.95
    #: ... on at least this many labelled rows, with at least ``min_class_rows`` of each class.
    min_labelled: int = 300
    min_class_rows: int = 30
    bootstrap: int = 400
    seed: int = 42
    #: Requests each side needs before its error rate or latency counts.
    min_requests: int = 200
    #: Champion's ``/predict`` 5xx share above ``@previous``'s by more than this => breach.
    max_error_rate_increase: float = 0.01
    #: Champion's 5xx share above this => breach (even without ``@previous``'s numbers).
    max_error_rate: float = 0.05
    #: Champion's p99 above ``@previous``'s times this, and by at least ``min_p99_increase_ms`` => breach.
    max_p99_ratio: float = 1.5
    min_p99_increase_ms: float = 5.0
    #: False: check and report only, never move an alias.
    allow_rollback: bool = True

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> RolloutParams:
        """Built-in defaults, overridden by ``MLOPS_ROLLOUT_<FIELD>`` in ``env`` (default:
        ``os.environ``), overridden by non-``None`` ``values`` (Airflow params, JSON)."""
        env = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        defaults = cls()
        for spec in dataclasses.fields(cls):
            kind = type(getattr(defaults, spec.name))
            name = f"{ENV_PREFIX}{spec.name.upper()}"
            if env.get(name) not in (None, ""):
                kwargs[spec.name] = _typed(name, env[name], kind)
            value = (values or {}).get(spec.name)
            if value is not None:
                kwargs[spec.name] = _typed(spec.name, value, kind)
        params = cls(**kwargs)
        params.check()
        return params

    def check(self) -> None:
        """Refuse values that would make the guard meaningless (roll back on five requests)."""
        problems = []
        if self.window_days < 1:
            problems.append(f"window_days={self.window_days}: need at least 1 day")
        if self.min_labelled < 50:
            problems.append(f"min_labelled={self.min_labelled}: need at least 50 labelled rows")
        if self.min_class_rows < 10:
            problems.append(f"min_class_rows={self.min_class_rows}: need at least 10 rows of each class")
        if self.min_requests < 50:
            problems.append(f"min_requests={self.min_requests}: need at least 50 requests per side")
        if not 0.5 <= self.confidence < 1:
            problems.append(f"confidence={self.confidence}: must be in [0.5, 1)")
        if self.bootstrap < 100:
            problems.append(f"bootstrap={self.bootstrap}: need at least 100 resamples")
        if not 0 <= self.max_auc_drop < 0.5:
            problems.append(f"max_auc_drop={self.max_auc_drop}: must be in [0, 0.5)")
        if not 0 < self.max_error_rate <= 1 or not 0 <= self.max_error_rate_increase <= 1:
            problems.append("max_error_rate must be in (0, 1] and max_error_rate_increase in [0, 1]")
        if self.max_p99_ratio < 1 or self.min_p99_increase_ms < 0:
            problems.append(
                f"max_p99_ratio={self.max_p99_ratio} must be >= 1 and "
                f"min_p99_increase_ms={self.min_p99_increase_ms} >= 0"
            )
        if problems:
            raise ValueError(
                "rollout guard thresholds: "
                + "; ".join(problems)
                + f" (set them as params or {ENV_PREFIX}<NAME> variables)"
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _typed(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        return parse_bool(value, name)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number ({kind.__name__})") from None


# --------------------------------------------------------------------------------------------------
# Service metrics: snapshots, intervals, per-version numbers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """``/predict`` counters: requests, those that failed (5xx / model errors), latency buckets."""

    requests: float = 0.0
    errors: float = 0.0
    #: Cumulative count per upper bound (seconds, ``inf`` last).
    buckets: dict[float, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "buckets": [[_bound(le), n] for le, n in sorted(self.buckets.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        buckets = {float(le): float(n) for le, n in data["buckets"]}
        return cls(float(data["requests"]), float(data["errors"]), buckets)

    def minus(self, before: Counts | None) -> Counts:
        """The increase since ``before`` (None: since zero)."""
        if before is None:
            return self
        buckets = {le: n - before.buckets.get(le, 0.0) for le, n in self.buckets.items()}
        return Counts(self.requests - before.requests, self.errors - before.errors, buckets)

    def below(self, before: Counts) -> bool:
        """True if a counter went down since ``before`` (the service restarted)."""
        pairs = [(before.requests, self.requests), (before.errors, self.errors)]
        pairs += [(n, self.buckets.get(le, 0.0)) for le, n in before.buckets.items()]
        return any(now < earlier for earlier, now in pairs)

    def plus(self, other: Counts) -> Counts:
        buckets = dict(self.buckets)
        for le, n in other.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + n
        return Counts(self.requests + other.requests, self.errors + other.errors, buckets)


@dataclass(frozen=True)
class Snapshot:
    """One scrape of the service's ``/metrics``: cumulative counters at ``at`` (epoch seconds)."""

    at: float
    url: str
    served: str | None
    #: Flights answered so far, by model version.
    predictions: dict[str, float]
    #: ``/predict`` as a whole: requests, 5xx answers, latency.
    total: Counts
    #: Per answering version, when the service exports per-model metrics
    #: (``mlops_serving_model_*{role="served"}``): requests (scored or failed), model errors, latency.
    by_version: dict[str, Counts] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "url": self.url,
            "served": self.served,
            "predictions": dict(self.predictions),
            "total": self.total.as_dict(),
            "by_version": {v: c.as_dict() for v, c in self.by_version.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(
            at=float(data["at"]),
            url=str(data["url"]),
            served=data.get("served"),
            predictions={str(k): float(v) for k, v in dict(data["predictions"]).items()},
            total=Counts.from_dict(data["total"]),
            by_version={str(v): Counts.from_dict(c) for v, c in dict(data.get("by_version") or {}).items()},
        )


def _bound(le: float) -> float | str:
    return "+Inf" if math.isinf(le) else le


def parse_metrics(text: str, *, at: float, url: str) -> Snapshot:
    """A :class:`Snapshot` of the service's Prometheus text (``GET /metrics``).

    Raises ValueError naming the URL when the text is not the prediction service's.
    """
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = {f.name: f for f in text_string_to_metric_families(text)}
    except ValueError as exc:
        raise ValueError(f"{url}: not Prometheus text format ({exc})") from None
    missing = [name for name in (REQUESTS, LATENCY, PREDICTIONS) if name not in families]
    if missing:
        raise ValueError(
            f"{url}: no {', '.join(missing)} in the metrics: is this the prediction service's /metrics "
            f"(mlops serve)? Set {METRICS_URL_ENV} or the metrics_url param to http://HOST:PORT/metrics"
        )
    requests = errors = 0.0
    for s in families[REQUESTS].samples:
        if s.name.endswith("_total") and s.labels.get("path") == PREDICT_PATH:
            requests += s.value
            if s.labels.get("status", "").startswith("5"):
                errors += s.value
    buckets: dict[float, float] = {}
    for s in families[LATENCY].samples:
        if s.name.endswith("_bucket") and s.labels.get("path") == PREDICT_PATH:
            le = float(s.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + s.value
    predictions: dict[str, float] = {}
    for s in families[PREDICTIONS].samples:
        if s.name.endswith("_total") and "model_version" in s.labels:
            version = str(s.labels["model_version"])
            predictions[version] = predictions.get(version, 0.0) + s.value
    served = None
    if MODEL_INFO in families:
        served = next(
            (str(s.labels["model_version"]) for s in families[MODEL_INFO].samples if s.value == 1), None
        )
    total = Counts(requests, errors, buckets)
    return Snapshot(at, url, served, predictions, total, _by_version(families))


def _by_version(families: Mapping[str, Any]) -> dict[str, Counts]:
    """Per-version ``/predict`` counters from the per-model metrics (``role="served"`` only: a
    shadow score is never an answer), or ``{}`` when the service does not export them."""
    if MODEL_REQUESTS not in families:
        return {}
    ok: dict[str, float] = {}
    failed: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    samples = [
        (name, s)
        for name in (MODEL_REQUESTS, MODEL_ERRORS, MODEL_DURATION)
        for s in (families[name].samples if name in families else [])
        if s.labels.get("role", "served") == "served" and "model_version" in s.labels
    ]
    for name, s in samples:
        version = str(s.labels["model_version"])
        if name == MODEL_REQUESTS and s.name.endswith("_total"):
            ok[version] = ok.get(version, 0.0) + s.value
        elif name == MODEL_ERRORS and s.name.endswith("_total"):
            failed[version] = failed.get(version, 0.0) + s.value
        elif name == MODEL_DURATION and s.name.endswith("_bucket"):
            le = float(s.labels["le"])
            mine = buckets.setdefault(version, {})
            mine[le] = mine.get(le, 0.0) + s.value
    versions = set(ok) | set(failed)
    return {
        v: Counts(ok.get(v, 0.0) + failed.get(v, 0.0), failed.get(v, 0.0), buckets.get(v, {}))
        for v in versions
    }


@dataclass(frozen=True)
class Interval:
    """What happened between two scrapes: the counters' increases, and who answered."""

    start: float
    end: float
    versions: tuple[str, ...]
    total: Counts
    by_version: dict[str, Counts] = field(default_factory=dict)
    reset: bool = False

    @property
    def version(self) -> str | None:
        """The one version that answered in the interval, or None (no traffic, or a swap)."""
        return self.versions[0] if len(self.versions) == 1 else None

    def counts(self, version: str) -> Counts | None:
        """``version``'s counters in the interval: its own (per-model metrics), else the whole
        ``/predict`` numbers if it alone answered, else None (it did not answer, or a swap)."""
        if self.by_version:
            mine = self.by_version.get(version)
            return mine if mine is not None and mine.requests > 0 else None
        return self.total if self.version == version else None


def intervals(snapshots: Iterable[Snapshot]) -> list[Interval]:
    """The intervals between consecutive scrapes of the same URL (oldest first).

    A counter lower than in the scrape before means the service restarted: the interval's
    increases are the later values themselves (counters start at zero). The first scrape of a URL
    counts from zero too (from the service's start).
    """
    out: list[Interval] = []
    by_url: dict[str, list[Snapshot]] = {}
    for snap in sorted(snapshots, key=lambda s: s.at):
        by_url.setdefault(snap.url, []).append(snap)
    for snaps in by_url.values():
        before: Snapshot | None = None
        for snap in snaps:
            reset = before is None or _went_down(before, snap)
            base = None if reset else before
            scored = {
                v: n - (0.0 if base is None else base.predictions.get(v, 0.0))
                for v, n in snap.predictions.items()
            }
            out.append(
                Interval(
                    start=float("-inf") if before is None else before.at,
                    end=snap.at,
                    versions=tuple(sorted(v for v, n in scored.items() if n > 0)),
                    total=snap.total.minus(None if base is None else base.total),
                    by_version={
                        v: c.minus(None if base is None else base.by_version.get(v))
                        for v, c in snap.by_version.items()
                    },
                    reset=reset,
                )
            )
            before = snap
    return sorted(out, key=lambda i: i.end)


def _went_down(before: Snapshot, now: Snapshot) -> bool:
    if now.total.below(before.total):
        return True
    if any(now.predictions.get(v, 0.0) < n for v, n in before.predictions.items()):
        return True
    return any(v not in now.by_version or now.by_version[v].below(c) for v, c in before.by_version.items())


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's ``histogram_quantile``: linear interpolation inside the bucket holding rank
    ``q * total``; the highest finite bound when it falls in ``+Inf``. None without observations."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


@dataclass(frozen=True)
class ServiceStats:
    """A version's ``/predict`` numbers over the intervals it alone answered."""

    version: str
    intervals: int
    requests: float
    errors: float
    p99_ms: float | None
    since: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["error_rate"] = self.error_rate
        return out


def service_stats(version: str, spans: Sequence[Interval], since: float | None = None) -> ServiceStats:
    """``version``'s numbers over the intervals where its answers can be told apart
    (:meth:`Interval.counts`), those ending after ``since`` when given (e.g. its promotion: a stint
    before a rollback never counts again)."""
    mine = [c for i in spans if (since is None or i.end > since) and (c := i.counts(version)) is not None]
    total = Counts()
    for counts in mine:
        total = total.plus(counts)
    p99 = histogram_quantile(0.99, total.buckets)
    return ServiceStats(
        version=version,
        intervals=len(mine),
        requests=total.requests,
        errors=total.errors,
        p99_ms=None if p99 is None else round(p99 * 1000, 3),
        since=since,
    )


# --------------------------------------------------------------------------------------------------
# Online ROC-AUC: the champion's served rows, labelled, scored by @previous too
# --------------------------------------------------------------------------------------------------


def served_rows(log: pd.DataFrame, version: str, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """The rows of the online log that ``version`` answered (shadow rows left out), one per flight
    (the latest answer), served at or after ``since`` when given."""
    rows = log[log["model_version"].astype(str) == str(version)]
    if "role" in rows.columns:
        rows = rows[rows["role"].astype(str) != "shadow"]
    if since is not None:
        rows = rows[rows["served_at"] >= since]
    rows = rows.sort_values(["served_at", "request_id"], kind="stable")
    return rows.drop_duplicates("flight_id", keep="last").reset_index(drop=True)


def labelled(served: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``served`` joined with ``labels`` (``flight_id``, ``is_delayed``: the arrived ones only)."""
    from mlops.schema import LABEL

    known = labels.loc[labels[LABEL].notna(), ["flight_id", LABEL]].drop_duplicates("flight_id")
    out = served.merge(known, on="flight_id", how="inner")
    out[LABEL] = out[LABEL].astype("float64")
    return out


def model_inputs(rows: pd.DataFrame) -> pd.DataFrame:
    """The logged rows as a training frame (categorical model inputs typed as training's, from the
    default spec's feature set: the guard watches that model), what
    :func:`mlops.models.registry.predictor` takes (the model picks its own feature columns)."""
    from mlops.spec.features import feature_set
    from mlops.spec.model import model_spec

    frame = rows.copy()
    dtypes = feature_set(model_spec().feature_set).dtypes()
    for column in [c for c in dtypes if c in frame.columns]:
        values = frame[column].astype("object")
        frame[column] = values.where(values.notna(), None).astype(dtypes[column])
    return frame


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC by ranks (ties averaged): the Mann-Whitney U statistic over n_pos * n_neg."""
    import numpy as np
    from scipy.stats import rankdata

    y = np.asarray(y, dtype="float64")
    n_pos = float((y == 1).sum())
    n_neg = float(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True)
class AucComparison:
    """Champion and ``@previous`` ROC-AUC on the same labelled rows, with the bootstrap's bound."""

    rows: int
    positives: int
    champion: float | None
    previous: float | None
    drop: float | None
    #: Lower bound (at ``confidence``) of the drop (previous - champion) over paired resamples.
    drop_lower: float | None
    confidence: float
    enough: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare_auc(
    y: np.ndarray, champion: np.ndarray, previous: np.ndarray, params: RolloutParams
) -> AucComparison:
    """ROC-AUC of both models on the same rows, and a paired bootstrap of the drop (seeded)."""
    import numpy as np

    y = np.asarray(y, dtype="float64")
    rows, positives = len(y), int((y == 1).sum())
    negatives = rows - positives
    if rows < params.min_labelled or min(positives, negatives) < params.min_class_rows:
        note = (
            f"{rows} labelled rows ({positives} delayed, {negatives} on time): need {params.min_labelled} "
            f"with {params.min_class_rows} of each class"
        )
        return AucComparison(rows, positives, None, None, None, None, params.confidence, False, note)
    champion, previous = np.asarray(champion, dtype="float64"), np.asarray(previous, dtype="float64")
    ours, theirs = roc_auc(y, champion), roc_auc(y, previous)
    rng = np.random.default_rng(params.seed)
    drops = []
    for _ in range(params.bootstrap):
        idx = rng.integers(0, rows, rows)
        yb = y[idx]
        if yb.min() == yb.max():
            continue
        drops.append(roc_auc(yb, previous[idx]) - roc_auc(yb, champion[idx]))
    lower = float(np.quantile(drops, 1 - params.confidence)) if drops else None
    return AucComparison(
        rows, positives, round(ours, 6), round(theirs, 6), round(theirs - ours, 6),
        None if lower is None else round(lower, 6), params.confidence, True,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the guard found: the breaches (any one is a reason to roll back) and why not, if not."""

    champion: str | None
    previous: str | None
    auc: AucComparison | None = None
    champion_service: ServiceStats | None = None
    previous_service: ServiceStats | None = None
    breaches: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    @property
    def reason(self) -> str:
        return "; ".join(b["message"] for b in self.breaches) or "no breach"

    def as_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "previous": self.previous,
            "breached": self.breached,
            "reason": self.reason,
            "breaches": list(self.breaches),
            "notes": list(self.notes),
            "auc": self.auc.as_dict() if self.auc else None,
            "champion_service": self.champion_service.as_dict() if self.champion_service else None,
            "previous_service": self.previous_service.as_dict() if self.previous_service else None,
        }


def _breach(kind: str, value: float, threshold: float, message: str) -> dict[str, Any]:
    return {"kind": kind, "value": round(value, 6), "threshold": threshold, "message": message}


def judge(
    champion: str | None,
    previous: str | None,
    params: RolloutParams,
    *,
    auc: AucComparison | None = None,
    champion_service: ServiceStats | None = None,
    previous_service: ServiceStats | None = None,
) -> Verdict:
    """The breaches of ``params`` in the evidence; notes say what could not be judged and why."""
    v = Verdict(champion, previous, auc, champion_service, previous_service)
    if champion is None:
        v.notes.append("no @champion: nothing to guard")
        return v
    _judge_auc(v, params)
    if champion_service is None and previous_service is None:
        v.notes.append("error rate and p99 latency: not measured (no metrics scrapes)")
    else:
        _judge_errors(v, params)
        _judge_latency(v, params)
    if previous is None:
        v.notes.append(
            "no @previous version: nothing to compare with"
            + (", and nothing to roll back to" if v.breaches else "")
        )
    return v


def _judge_auc(v: Verdict, params: RolloutParams) -> None:
    auc = v.auc
    if auc is None:
        if v.previous is not None:
            v.notes.append(
                "online ROC-AUC: not compared (no labelled rows served by the champion in the window)"
            )
        return
    if not auc.enough:
        v.notes.append(f"online ROC-AUC: not enough evidence yet: {auc.note}")
        return
    assert auc.drop is not None
    significant = auc.drop_lower is not None and auc.drop_lower > 0
    if auc.drop > params.max_auc_drop and significant:
        v.breaches.append(
            _breach(
                "online_roc_auc",
                auc.drop,
                params.max_auc_drop,
                f"online ROC-AUC of v{v.champion} {auc.champion:.4f} vs v{v.previous} {auc.previous:.4f} "
                f"on the same {auc.rows} labelled flights: drop {auc.drop:.4f} > {params.max_auc_drop} "
                f"(bootstrap {auc.confidence:.0%} lower bound {auc.drop_lower:.4f} > 0)",
            )
        )
    elif auc.drop > params.max_auc_drop:
        v.notes.append(
            f"online ROC-AUC drop {auc.drop:.4f} > {params.max_auc_drop} but not significant "
            f"(bootstrap lower bound {auc.drop_lower}): no rollback on noise"
        )


def _judge_errors(v: Verdict, params: RolloutParams) -> None:
    ours, theirs = v.champion_service, v.previous_service
    if ours is None or ours.requests < params.min_requests or ours.error_rate is None:
        got = 0 if ours is None else int(ours.requests)
        v.notes.append(
            f"error rate: {got} requests served by v{v.champion} measured, need {params.min_requests}"
        )
        return
    rate = ours.error_rate
    if rate > params.max_error_rate:
        v.breaches.append(
            _breach(
                "error_rate",
                rate,
                params.max_error_rate,
                f"error rate of v{v.champion} {rate:.2%} ({int(ours.errors)}/{int(ours.requests)} /predict "
                f"answers 5xx) > {params.max_error_rate:.2%}",
            )
        )
        return
    if v.previous is None:
        return  # judge() notes that there is no @previous
    if theirs is None or theirs.requests < params.min_requests or theirs.error_rate is None:
        got = 0 if theirs is None else int(theirs.requests)
        v.notes.append(
            f"error rate vs @previous: {got} requests served by v{v.previous} measured, need {params.min_requests}"
        )
        return
    if rate - theirs.error_rate > params.max_error_rate_increase:
        v.breaches.append(
            _breach(
                "error_rate_increase",
                rate - theirs.error_rate,
                params.max_error_rate_increase,
                f"error rate of v{v.champion} {rate:.2%} vs v{v.previous} {theirs.error_rate:.2%}: "
                f"+{rate - theirs.error_rate:.2%} > {params.max_error_rate_increase:.2%}",
            )
        )


def _judge_latency(v: Verdict, params: RolloutParams) -> None:
    ours, theirs = v.champion_service, v.previous_service
    if v.previous is None:
        return
    enough = [
        s is not None and s.requests >= params.min_requests and s.p99_ms is not None for s in (ours, theirs)
    ]
    if not all(enough):
        v.notes.append(
            f"p99 latency: not compared (need {params.min_requests} requests measured for "
            f"v{v.champion} and v{v.previous})"
        )
        return
    assert ours is not None and theirs is not None and ours.p99_ms is not None and theirs.p99_ms is not None
    ratio = ours.p99_ms / theirs.p99_ms if theirs.p99_ms > 0 else math.inf
    if ratio > params.max_p99_ratio and ours.p99_ms - theirs.p99_ms >= params.min_p99_increase_ms:
        v.breaches.append(
            _breach(
                "p99_latency",
                ratio,
                params.max_p99_ratio,
                f"p99 latency of v{v.champion} {ours.p99_ms:.1f} ms vs v{v.previous} {theirs.p99_ms:.1f} ms: "
                f"x{ratio:.2f} > x{params.max_p99_ratio} (and +{ours.p99_ms - theirs.p99_ms:.1f} ms)",
            )
        )
