"""The FastAPI app of the prediction service: ``POST /predict``, ``GET /health``, ``GET /metrics``.

Build it with :func:`create_app` (``mlops serve`` does, then runs it under uvicorn). It serves one
model spec (``ServeConfig.spec``, default ``flight_delay``; ``mlops serve --spec air_time``): the
request schema, the entity keys and features, the registered model, the feature service, the
prediction field and the prediction log's folder are the spec's (:func:`mlops.serving.online.online_spec`).
One request:

1. the body must be declared JSON (:func:`require_json`, 415 otherwise), is read as a stream with
   a running byte count (:func:`read_body`: 413 and the connection closed as soon as
   ``max_body_bytes`` is passed, whatever the framing, chunked included; 408 if it has not
   arrived whole after ``body_timeout_seconds``), then validated
   (:func:`mlops.serving.schemas.parse_request`): bad input is a 4xx with the reason, never an
   exception in the model;
2. the served model is read once (:attr:`ModelHolder.current`) and used to the end: a champion
   swap during the request does not affect it;
3. Feast values of each row come from the online store (:class:`OnlineFeatureReader`), the
   request-time and derived features are computed here (the spec's ``feature_row``, the rules of
   the training code), the booster scores the rows;
4. the answer is written; the predictions are handed to the logger (:mod:`mlops.serving.logger`),
   which writes them to the lake in batches from its own thread.

Shadow and canary (:mod:`mlops.serving.rollout`): when ``@challenger`` is loaded and differs from
the champion, a sticky ``canary_percent`` of items is answered by it (each prediction says
``served_by``), and with ``shadow`` on the model that did not answer scores the same feature rows
from the shadow thread, after the answer, logged under the same ``prediction_id``.

Requests of up to ``inline_max`` items are scored on the event loop (a single item takes well
under a millisecond: a thread hand-off would cost more); larger batches go to the thread pool so
they do not hold up other requests.

After start-up the objects loaded so far are frozen out of the garbage collector (``gc.freeze``):
they live as long as the process, and a full collection over them would stall requests.

A poller thread re-reads ``@champion`` every ``poll_seconds`` and swaps the model atomically when
it moves (see :mod:`mlops.serving.model`); it also retries loading the feature service while that
is unavailable. The ``@alias`` lookups and the prediction-log writes run in a child process
(:mod:`mlops.serving.sidecar`, ``ServeConfig.sidecar``; ``/health`` shows it): in the server's own
threads they held the GIL the requests need (per poll ~4.8 ms of the server's CPU per alias, per
500-row flush ~20 ms; with the sidecar 0.4 ms and 3.5 ms). ``/health`` answers 200 when a model and the features are loaded, 503 otherwise,
with the details either way.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mlops.config import CHALLENGER, CHAMPION, Settings, get_settings
from mlops.serving import api_docs
from mlops.serving.logger import LoggedPrediction, PredictionLogger
from mlops.serving.metrics import MetricsMiddleware, ServiceMetrics
from mlops.serving.model import ModelHolder, ServedModel
from mlops.serving.online import OnlineFeatureReader, OnlineSpec, online_spec
from mlops.serving.rollout import SERVED, Role, ShadowJob, ShadowScorer, active_challenger, in_canary
from mlops.serving.schemas import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    RequestError,
    parse_request,
    request_id,
    response_model,
)
from mlops.serving.scoring import DEFAULT_THRESHOLD
from mlops.serving.sidecar import Sidecar
from mlops.spec.model import ModelSpec, model_spec

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

log = logging.getLogger(__name__)

ROUTES = ("/predict", "/health", "/metrics", "/docs", "/openapi.json", "/")
#: ``GET /metrics`` content type: the Prometheus text format 0.0.4, which every Prometheus reads
#: (``prometheus_client``'s ``CONTENT_TYPE_LATEST`` announces 1.0.0 for the same text).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CLOSE = {"connection": "close"}  # after a refused body: do not read the rest of it
#: Longest wait for a whole request body (a client trickling bytes holds a connection and a task).
BODY_TIMEOUT_SECONDS = 30.0


@dataclass
class ServeConfig:
    """How the service behaves (``mlops serve`` flags)."""

    threshold: float = DEFAULT_THRESHOLD
    poll_seconds: float = 10.0
    max_batch: int = MAX_BATCH
    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS
    inline_max: int = 16
    log_predictions: bool = True
    log_flush_seconds: float = 5.0
    #: Score ``@challenger`` off the response path for every request (when it differs from the champion).
    shadow: bool = True
    #: Share of items (percent, sticky by item) answered by ``@challenger``.
    canary_percent: float = 0.0
    #: Most shadow jobs (requests) waiting; more are dropped and counted.
    shadow_max_pending: int = 1_000
    settings: Settings | None = None
    #: The model spec served: a ModelSpec, a name of ``mlops.spec.model.SPECS`` or ``module:ATTR``
    #: (None: ``flight_delay``). ``threshold`` applies only when its online spec has a decision.
    spec: ModelSpec | str | None = None
    #: Run the @alias lookups and the prediction-log writes in a child process
    #: (:mod:`mlops.serving.sidecar`), off the GIL the requests need; False: in this process's threads.
    sidecar: bool = True


@dataclass
class PredictionService:
    """Everything a request needs: the model holder, the feature reader, the logger, the metrics."""

    config: ServeConfig
    metrics: ServiceMetrics
    holder: ModelHolder
    reader_factory: Callable[[], Any]
    spec: ModelSpec = field(default_factory=lambda: model_spec(None))
    online: OnlineSpec = field(default_factory=lambda: online_spec(model_spec(None)))
    logger: PredictionLogger | None = None
    challenger: ModelHolder | None = None
    shadow: ShadowScorer | None = None
    sidecar: Sidecar | None = None
    reader: Any = None
    reader_error: str | None = None
    reader_loaded_at: float | None = None
    started_at: float = field(default_factory=time.time)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def load_reader(self) -> bool:
        try:
            reader = self.reader_factory()
            reader.read([self.online.warmup])  # opens the store connection, imports the protos
        except Exception as exc:
            self.reader_error = (
                f"feature service not available: {type(exc).__name__}: {exc}. Run materialize_features "
                "(feast apply + materialize) for this MLOPS_HOME; retrying every poll"
            )
            log.error("%s", self.reader_error, exc_info=True)
            return False
        self.reader, self.reader_error, self.reader_loaded_at = reader, None, time.time()
        return True

    def poll(self) -> None:
        if self.reader is None:
            self.load_reader()
        self.holder.refresh()
        if self.challenger is not None:
            self.challenger.refresh()
        self._publish_aliases()

    def _publish_aliases(self) -> None:
        champion = self.holder.current
        self.metrics.alias_loaded(CHAMPION, champion.version if champion else None)
        role, _ = self.challenger_role(champion)
        self.metrics.alias_loaded(CHALLENGER, role.version if role else None)

    def challenger_role(self, champion: ServedModel | None) -> tuple[Role | None, str]:
        """The challenger a request may use (shadow or canary), or None with the reason."""
        if not (self.config.shadow or self.config.canary_percent > 0):
            return None, "shadow and canary are off"
        return active_challenger(champion, self.challenger)

    def start(self) -> None:
        if self.online.prepare is not None:
            self.online.prepare()  # reference data (vocabularies, lookup tables)
        self.online.feature_row(self.online.warmup, {})
        self.load_reader()
        self.holder.refresh()
        if self.challenger is not None:
            self.challenger.refresh()
        self._publish_aliases()
        self.metrics.canary_percent.set(self.config.canary_percent)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="serving-poller", daemon=True)
        self._thread.start()
        if self.logger is not None:
            self.logger.start()
        if self.shadow is not None:
            self.shadow.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            try:
                self.poll()
            except Exception:  # the poller must outlive any one failure
                log.exception("poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.shadow is not None:
            self.shadow.close()  # before the logger: its last scores are flushed with the rest
        if self.logger is not None:
            self.logger.close()
        if self.sidecar is not None:
            self.sidecar.close()  # after the logger: its last flush is written there

    # -- requests -----------------------------------------------------------------------------
    def score(
        self,
        model: ServedModel,
        rows: Sequence[Any],
        request_id: str,
        challenger: ServedModel | None = None,
        started: float | None = None,
    ) -> tuple[bytes, str]:
        return score_request(
            model,
            self.reader,
            rows,
            request_id,
            spec=self.spec,
            online=self.online,
            threshold=self.config.threshold,
            metrics=self.metrics,
            logger=self.logger,
            challenger=challenger,
            canary_percent=self.config.canary_percent,
            shadow=self.shadow,
            started=started,
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        model = self.holder.describe()
        reader = self.reader
        features = {
            "loaded": reader is not None,
            "feature_service": getattr(reader, "service", None),
            "views": [v.name for v in getattr(reader, "views", ())],
            "online_store": getattr(reader, "online_store_type", None),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.reader_loaded_at))
            if self.reader_loaded_at
            else None,
            "error": self.reader_error,
        }
        ready = model["loaded"] and features["loaded"]
        role, why = self.challenger_role(self.holder.current)
        challenger = self.challenger.describe() if self.challenger is not None else {"loaded": False}
        body = {
            "status": "ok" if ready else "unavailable",
            "spec": self.spec.name,
            "model": model,
            "features": features,
            "threshold": self.config.threshold if self.online.decision else None,
            "challenger": {**challenger, "active": role is not None, "reason": why},
            "shadow": self.shadow.describe() if self.shadow is not None else None,
            "canary_percent": self.config.canary_percent,
            "prediction_log": self.logger.describe() if self.logger else None,
            "sidecar": self.sidecar.describe() if self.sidecar is not None else None,
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }
        return (200 if ready else 503), body


@functools.cache
def _default_spec() -> tuple[ModelSpec, OnlineSpec]:
    spec = model_spec(None)
    return spec, online_spec(spec)


def score_request(
    model: ServedModel,
    reader: Any,
    items: Sequence[Any],
    request_id: str,
    *,
    threshold: float,
    metrics: ServiceMetrics | None = None,
    logger: PredictionLogger | None = None,
    challenger: ServedModel | None = None,
    canary_percent: float = 0.0,
    shadow: ShadowScorer | None = None,
    started: float | None = None,
    spec: ModelSpec | None = None,
    online: OnlineSpec | None = None,
) -> tuple[bytes, str]:
    """One request's work after validation: online read, features, scores, the JSON answer and
    the version(s) that answered (the ``x-model-version`` header).

    ``flights`` are the spec's request rows (``online.to_row``; default spec: flight delay).
    ``model`` is the champion. With a ``challenger``, the rows in the canary share
    (``canary_percent``) are answered by it (by the champion if it fails), and ``shadow`` gets the
    other model's job for every row. Updates the metrics and hands the predictions to the
    logger when they are given.
    """
    started = time.perf_counter() if started is None else started
    if spec is None or online is None:
        spec, online = _default_spec()
    feature_row, describe, column, decision = (
        online.feature_row,
        online.describe_row,
        spec.prediction_column,
        online.decision,
    )
    values, missing = reader.read(items)
    rows = [feature_row(f, v) for f, v in zip(items, values, strict=True)]
    champion = Role(CHAMPION, model)
    other = Role(CHALLENGER, challenger) if challenger is not None else None
    groups = _answering(items, champion, other, canary_percent)
    probs: list[float] = [0.0] * len(items)
    served_by: list[Role] = [champion] * len(items)
    for role, idx in groups:
        answered = _score_group(role, champion, [rows[i] for i in idx], metrics)
        for i, p in zip(idx, answered[1], strict=True):
            probs[i], served_by[i] = p, answered[0]
    pid = uuid.uuid4().hex
    prediction_ids = [f"{pid}-{i}" for i in range(len(items))]
    out = []
    for f, p, miss, by in zip(items, probs, missing, served_by, strict=True):
        answer = describe(f)
        answer[column] = p
        if decision:
            answer[decision] = p >= threshold
        answer["missing_feature_views"] = miss
        answer["served_by"] = {"alias": by.alias, "version": by.version}
        out.append(answer)
    versions = list(dict.fromkeys(by.version for by in sorted(served_by, key=lambda r: r is not champion)))
    if metrics is not None:
        labels = online.decision_labels if decision else None
        _count(metrics, items, probs, missing, served_by, threshold, started, labels)
    now = time.time()
    if logger is not None:
        logger.log(
            [
                LoggedPrediction(
                    request_id=request_id,
                    served_at=now,
                    flight=f,
                    features=row,
                    probability=p,
                    threshold=threshold,
                    model_name=by.model.name,
                    model_version=by.version,
                    prediction_id=pred_id,
                    alias=by.alias,
                    role=SERVED,
                )
                for f, row, p, by, pred_id in zip(items, rows, probs, served_by, prediction_ids, strict=True)
            ]
        )
    if shadow is not None and other is not None:
        _submit_shadows(
            shadow, champion, other, served_by, items, rows, prediction_ids, request_id, now, threshold
        )
    version = ",".join(versions) if versions else model.version
    answer_all: dict[str, Any] = {"model_name": model.name, "model_version": version}
    if decision:
        answer_all["threshold"] = threshold
    answer_all["request_id"] = request_id
    answer_all["predictions"] = out
    payload = json.dumps(answer_all).encode()
    return payload, version


def _answering(
    items: Sequence[Any], champion: Role, challenger: Role | None, canary_percent: float
) -> list[tuple[Role, list[int]]]:
    """Which model answers which items (positions): the canary's to the challenger, the rest to
    the champion."""
    every = list(range(len(items)))
    if challenger is None or canary_percent <= 0:
        return [(champion, every)]
    canary = [i for i in every if in_canary(items[i], canary_percent)]
    if not canary:
        return [(champion, every)]
    if len(canary) == len(items):
        return [(challenger, every)]
    chosen = set(canary)
    return [(champion, [i for i in every if i not in chosen]), (challenger, canary)]


def _score_group(
    role: Role, champion: Role, rows: list[dict[str, Any]], metrics: ServiceMetrics | None
) -> tuple[Role, list[float]]:
    """``role``'s probabilities for ``rows``; a failing challenger falls back to the champion."""
    try:
        return role, role.model.predict_rows(rows).tolist()
    except Exception:
        if metrics is not None:
            metrics.model_errors.labels(role.alias, role.version, SERVED).inc()
        if role is champion:
            raise
        log.warning("canary: %s v%s failed; the champion answers", role.alias, role.version, exc_info=True)
        return champion, champion.model.predict_rows(rows).tolist()


def _count(
    metrics: ServiceMetrics,
    items: Sequence[Any],
    probs: Sequence[float],
    missing: Sequence[Sequence[str]],
    served_by: Sequence[Role],
    threshold: float,
    started: float,
    labels: tuple[str, str] | None = ("delayed", "on_time"),
) -> None:
    """The request's metrics: missing views, decisions (``labels`` when true/false; None: no
    decision, counted as ``scored``) and scores per answering model."""
    for miss in missing:
        for view in miss:
            metrics.missing_views.labels(view).inc()
    per_model: dict[tuple[str, str], list[int]] = {}
    for p, by in zip(probs, served_by, strict=True):
        counts = per_model.setdefault((by.alias, by.version), [0, 0])
        counts[0 if p >= threshold else 1] += 1
    seconds = time.perf_counter() - started
    yes, no = labels or ("scored", "scored")
    for (alias, version), (yes_n, no_n) in per_model.items():
        if yes_n:
            metrics.predictions.labels(version, yes).inc(yes_n)
        if no_n:
            metrics.predictions.labels(version, no).inc(no_n)
        metrics.observe_model(alias, version, SERVED, yes_n + no_n, seconds)
    metrics.batch_size.observe(len(items))


def _submit_shadows(
    shadow: ShadowScorer,
    champion: Role,
    challenger: Role,
    served_by: Sequence[Role],
    items: Sequence[Any],
    rows: Sequence[dict[str, Any]],
    prediction_ids: Sequence[str],
    request_id: str,
    served_at: float,
    threshold: float,
) -> None:
    """Hand the shadow thread each item's other model (one job per model)."""
    for role, answered_by in ((challenger, champion), (champion, challenger)):
        idx = [i for i, by in enumerate(served_by) if by is answered_by]
        if not idx:
            continue
        every = len(idx) == len(items)
        shadow.submit(
            ShadowJob(
                role=role,
                request_id=request_id,
                served_at=served_at,
                prediction_ids=prediction_ids if every else [prediction_ids[i] for i in idx],
                flights=items if every else [items[i] for i in idx],
                rows=rows if every else [rows[i] for i in idx],
                threshold=threshold,
            )
        )


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON (``application/json`` or ``*/*+json``).

    Besides saying what the service reads, this keeps browsers from posting to it from another
    site: a cross-site ``text/plain`` POST needs no CORS preflight, an ``application/json`` one does
    (and the service answers none), so a web page cannot feed predictions into the lake's log.
    """
    declared = request.headers.get("content-type", "")
    media = declared.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        shown = repr(declared[:60]) if declared else "none"
        raise RequestError(415, f"Content-Type must be application/json (got {shown})", headers=_CLOSE)


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """The request body, read as it streams in, refused (413) as soon as it passes ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading anything; a chunked or
    lying body is counted chunk by chunk, so the service never holds more than ``limit`` bytes
    (plus the server's 64 KiB read buffer). A body not complete after ``timeout`` seconds is a 408.
    Refusals close the connection: the rest of the body is not read.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestError(400, f"Content-Length {declared[:20]!r} is not a number", headers=_CLOSE)
        if len(declared) > 15 or int(declared) > limit:
            raise RequestError(
                413, f"request body of {declared[:20]} bytes exceeds {limit} bytes", headers=_CLOSE
            )
    parts: list[bytes] = []
    received = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise RequestError(
                        413,
                        f"request body exceeds {limit} bytes (stopped reading at {received} bytes)",
                        headers=_CLOSE,
                    )
                parts.append(chunk)
    except TimeoutError:
        raise RequestError(
            408,
            f"request body not complete after {timeout:g} s ({received} bytes received): send it at once",
            headers=_CLOSE,
        ) from None
    except ClientDisconnect:
        raise RequestError(400, "the client disconnected before sending the whole body") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def create_app(
    config: ServeConfig | None = None,
    *,
    holder: ModelHolder | None = None,
    reader_factory: Callable[[], Any] | None = None,
    logger: PredictionLogger | None = None,
    challenger: ModelHolder | None = None,
) -> FastAPI:
    """The service app. Defaults: the MLflow registry's ``@champion`` (and ``@challenger`` for
    shadow and canary), the profile's Feast online store, and the prediction log under the
    profile's lake (disable with ``log_predictions``)."""
    cfg = config or ServeConfig()
    service = build_service(
        cfg, holder=holder, reader_factory=reader_factory, logger=logger, challenger=challenger
    )
    spec, online = service.spec, service.online
    app = FastAPI(
        title=online.title,
        version="1",
        summary=f"{online.summary or spec.description}, scored by {spec.model_name}@champion",
        description=(
            f"Model spec `{spec.name}`. Features come from the Feast online store (feature service "
            f"`{spec.feature_service}`) plus request-time features computed by the service with the "
            "training code's rules. The model follows `@champion`: a promotion is picked up within "
            "`poll_seconds`, without a restart and without failing requests in flight."
        ),
        lifespan=_lifespan(service),
    )
    app.state.service = service
    app.add_exception_handler(RequestError, _request_error)  # type: ignore[arg-type]
    _add_routes(app, service)
    api_docs.install(app, cfg.max_batch, online)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, paths=ROUTES)
    return app


def build_service(
    cfg: ServeConfig,
    *,
    holder: ModelHolder | None = None,
    reader_factory: Callable[[], Any] | None = None,
    logger: PredictionLogger | None = None,
    challenger: ModelHolder | None = None,
) -> PredictionService:
    """The service's parts (defaults as :func:`create_app` says), wired to one set of metrics.

    The registry's ``@challenger`` is followed only with the registry's champion (no ``holder``
    given) and when shadow or canary is on; with a ``holder`` of their own, callers (tests) pass
    their ``challenger`` too.
    """
    settings = cfg.settings or get_settings()
    spec = model_spec(cfg.spec)
    online = online_spec(spec)
    metrics = ServiceMetrics()

    def swapped(_old: ServedModel | None, new: ServedModel) -> None:
        metrics.swaps.inc()
        metrics.served(new.version)

    rollout = cfg.shadow or cfg.canary_percent > 0
    name = spec.model_name
    needed = holder is None or (logger is None and cfg.log_predictions)
    sidecar = Sidecar() if cfg.sidecar and needed else None
    if holder is None:
        holder = ModelHolder(poll_seconds=cfg.poll_seconds, name=name, settings=settings, sidecar=sidecar)
        if challenger is None and rollout:
            challenger = ModelHolder(
                poll_seconds=cfg.poll_seconds, alias=CHALLENGER, name=name, settings=settings, sidecar=sidecar
            )
    holder.on_swap = holder.on_swap or swapped
    holder.on_error = holder.on_error or (lambda _m, _e: metrics.load_failures.inc())
    if challenger is not None:
        challenger.on_error = challenger.on_error or (lambda _m, _e: metrics.load_failures.inc())
    if logger is None and cfg.log_predictions:
        logger = PredictionLogger(
            settings.lake_uri,
            **_log_target(spec),
            flush_seconds=cfg.log_flush_seconds,
            on_written=lambda n, _uri: metrics.log_rows.labels("written").inc(n),
            on_dropped=lambda n: metrics.log_rows.labels("dropped").inc(n),
            sidecar=sidecar,
        )
    shadow = ShadowScorer(metrics, logger, max_pending=cfg.shadow_max_pending) if cfg.shadow else None
    return PredictionService(
        config=cfg,
        metrics=metrics,
        holder=holder,
        reader_factory=reader_factory or (lambda: _default_reader(settings, spec)),
        spec=spec,
        online=online,
        logger=logger,
        challenger=challenger if rollout else None,
        shadow=shadow if challenger is not None else None,
        sidecar=sidecar,
    )


def _log_target(spec: ModelSpec) -> dict[str, Any]:
    """The logger's arguments for the spec's served predictions: the spec itself (its lake folder,
    ``{model root}/predictions_online`` of :func:`mlops.layout.predictions_online_root`, and its
    prediction column). A logger that does not take a spec logs the flight-delay model's folder
    and columns only: any other spec is refused with what to do."""
    import inspect

    if "spec" in inspect.signature(PredictionLogger).parameters:
        return {"spec": spec}
    if spec.lake_folder or spec.prediction_column != "delay_probability":
        raise ValueError(
            f"model spec {spec.name!r}: this PredictionLogger cannot log its predictions under "
            f"its own folder ({spec.lake_folder!r}); run mlops serve with --no-log-predictions"
        )
    return {}


def _lifespan(service: PredictionService) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        if service.holder.current is not None:
            service.metrics.served(service.holder.current.version)
        # Everything loaded so far (MLflow, Feast, pandas, the model: ~300k objects) lives as long
        # as the process: move it out of the collector's way, or a full collection scans it all
        # and stalls requests (hundreds of ms on a loaded machine).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    return lifespan


async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


def _add_routes(app: FastAPI, service: PredictionService) -> None:
    """``POST /predict``, ``GET /health``, ``GET /metrics`` and ``GET /`` on ``service``."""

    online, spec = service.online, service.spec
    items, item = online.items, online.item

    @app.post(
        "/predict",
        response_model=response_model(spec, online),
        summary=online.route_summary or f"{spec.prediction_column} for one or many {items}",
        description=(
            f'Score {items}: a `{{"{items}": [...]}}` object, a single {item} object, or a list of '
            f"{items}.\n\n{online.item_doc}\n\nThe answer has one prediction per {item}, in order "
            f"(`{spec.prediction_column}`"
            + (f", and `{online.decision}` at the service's threshold" if online.decision else "")
            + "), and the model version that scored them all."
        ),
        **api_docs.predict_route(service.config.max_batch, online),
    )
    async def predict(request: Request) -> Response:
        return await answer_predict(service, request)

    @app.get(
        "/health",
        summary="Is a model loaded, are the features loaded (200 ready, 503 not)",
        responses={503: {"description": "not ready: the body says what is missing"}},
    )
    async def health() -> JSONResponse:
        status, body = service.health()
        return JSONResponse(body, status_code=status)

    @app.get(
        "/metrics",
        summary="Prometheus metrics (text exposition format 0.0.4)",
        response_class=Response,
        responses={
            200: {
                "description": "the Prometheus text exposition format, version 0.0.4",
                "content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics_endpoint() -> Response:
        from prometheus_client import generate_latest

        return Response(generate_latest(service.metrics.registry), media_type=METRICS_CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def root() -> JSONResponse:
        return JSONResponse(
            {"docs": "/docs", "predict": "POST /predict", "health": "/health", "metrics": "/metrics"}
        )


async def answer_predict(service: PredictionService, request: Request) -> Response:
    """One ``POST /predict``: the checks of the module docstring, then the scores (or 503/500)."""
    cfg = service.config
    started = time.perf_counter()
    require_json(request)
    body = await read_body(request, cfg.max_body_bytes, cfg.body_timeout_seconds)
    items = parse_request(
        body, max_batch=cfg.max_batch, max_body_bytes=cfg.max_body_bytes, online=service.online
    )
    model = service.holder.current  # read once: this request uses this version to the end
    if model is None or service.reader is None:
        _, health = service.health()
        reason = health["model"].get("last_error") if model is None else health["features"]["error"]
        return JSONResponse({"detail": f"not ready: {reason}"}, status_code=503)
    rid = request_id(request.headers.get("x-request-id"))
    role, _ = service.challenger_role(model)
    challenger = role.model if role is not None else None
    try:
        if len(items) <= cfg.inline_max:
            payload, version = service.score(model, items, rid, challenger, started)
        else:
            payload, version = await run_in_threadpool(service.score, model, items, rid, challenger, started)
    except Exception:
        log.exception("scoring request %s failed", rid)
        return JSONResponse(
            {"detail": "internal error while scoring (logged server side)", "request_id": rid},
            status_code=500,
        )
    return Response(
        payload,
        media_type="application/json",
        headers={"x-model-version": version, "x-request-id": rid},
    )


def _default_reader(settings: Settings, spec: ModelSpec) -> OnlineFeatureReader:
    from mlops.serving.online import load_reader

    return load_reader(settings, spec)
