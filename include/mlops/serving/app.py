"""The FastAPI app of the prediction service: ``POST /predict``, ``GET /health``, ``GET /metrics``.

Build it with :func:`create_app` (``mlops serve`` does, then runs it under uvicorn). One request:

1. the body must be declared JSON (:func:`require_json`, 415 otherwise), is read as a stream with
   a running byte count (:func:`read_body`: 413 and the connection closed as soon as
   ``max_body_bytes`` is passed, whatever the framing, chunked included; 408 if it has not
   arrived whole after ``body_timeout_seconds``), then validated
   (:func:`mlops.serving.schemas.parse_request`): bad input is a 4xx with the reason, never an
   exception in the model;
2. the served model is read once (:attr:`ModelHolder.current`) and used to the end: a champion
   swap during the request does not affect it;
3. Feast values of each flight come from the online store (:class:`OnlineFeatureReader`), the
   request-time and derived features are computed here (:func:`feature_row`, the rules of
   :mod:`mlops.features.compute`), the booster scores the rows;
4. the answer is written; the predictions are handed to the logger (:mod:`mlops.serving.logger`),
   which writes them to the lake in batches from its own thread.

Requests of up to ``inline_max`` flights are scored on the event loop (a single flight takes well
under a millisecond: a thread hand-off would cost more); larger batches go to the thread pool so
they do not hold up other requests.

After start-up the objects loaded so far are frozen out of the garbage collector (``gc.freeze``):
they live as long as the process, and a full collection over them would stall requests.

A poller thread re-reads ``@champion`` every ``poll_seconds`` and swaps the model atomically when
it moves (see :mod:`mlops.serving.model`); it also retries loading the feature service while that
is unavailable. ``/health`` answers 200 when a model and the features are loaded, 503 otherwise,
with the details either way.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from mlops.config import MODEL_NAME, Settings, get_settings
from mlops.serving import api_docs
from mlops.serving.logger import LoggedPrediction, PredictionLogger
from mlops.serving.metrics import MetricsMiddleware, ServiceMetrics
from mlops.serving.model import ModelHolder, ServedModel
from mlops.serving.online import FlightRequest, OnlineFeatureReader, feature_row
from mlops.serving.schemas import (
    MAX_BATCH,
    MAX_BODY_BYTES,
    PredictResponse,
    RequestError,
    parse_request,
    request_id,
    vocabulary,
)
from mlops.serving.scoring import DEFAULT_THRESHOLD

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
#: A flight used to warm every lazy path (reference tables, store connection) before serving.
_WARMUP = FlightRequest(
    carrier="UA",
    flight=1545,
    origin="EWR",
    dest="IAH",
    sched_dep_ts=datetime(2013, 1, 1, 10, 15, tzinfo=UTC),
    tailnum="N14228",
)


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
    settings: Settings | None = None


@dataclass
class PredictionService:
    """Everything a request needs: the model holder, the feature reader, the logger, the metrics."""

    config: ServeConfig
    metrics: ServiceMetrics
    holder: ModelHolder
    reader_factory: Callable[[], Any]
    logger: PredictionLogger | None = None
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
            reader.read([_WARMUP])  # opens the store connection, imports the protos
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

    def start(self) -> None:
        vocabulary()
        feature_row(_WARMUP, {})  # loads the route distances and categories (reference data)
        self.load_reader()
        self.holder.refresh()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="serving-poller", daemon=True)
        self._thread.start()
        if self.logger is not None:
            self.logger.start()

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
        if self.logger is not None:
            self.logger.close()

    # -- requests -----------------------------------------------------------------------------
    def score(self, model: ServedModel, flights: Sequence[FlightRequest], request_id: str) -> bytes:
        return score_request(
            model,
            self.reader,
            flights,
            request_id,
            threshold=self.config.threshold,
            metrics=self.metrics,
            logger=self.logger,
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
        body = {
            "status": "ok" if ready else "unavailable",
            "model": model,
            "features": features,
            "threshold": self.config.threshold,
            "prediction_log": self.logger.describe() if self.logger else None,
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }
        return (200 if ready else 503), body


def score_request(
    model: ServedModel,
    reader: Any,
    flights: Sequence[FlightRequest],
    request_id: str,
    *,
    threshold: float,
    metrics: ServiceMetrics | None = None,
    logger: PredictionLogger | None = None,
) -> bytes:
    """One request's work after validation: online read, features, scores, the JSON answer.

    Updates the metrics and hands the predictions to the logger when they are given.
    """
    values, missing = reader.read(flights)
    rows = [feature_row(f, v) for f, v in zip(flights, values, strict=True)]
    probs = model.predict_rows(rows).tolist()
    out = []
    delayed_n = 0
    for f, p, miss in zip(flights, probs, missing, strict=True):
        delayed = p >= threshold
        delayed_n += delayed
        out.append(
            {
                "flight_id": f.flight_id,
                "sched_dep_ts": f.sched_dep_ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "delay_probability": p,
                "delayed": delayed,
                "missing_feature_views": miss,
            }
        )
    if metrics is not None:
        for miss in missing:
            for view in miss:
                metrics.missing_views.labels(view).inc()
        if delayed_n:
            metrics.predictions.labels(model.version, "delayed").inc(delayed_n)
        if len(flights) - delayed_n:
            metrics.predictions.labels(model.version, "on_time").inc(len(flights) - delayed_n)
        metrics.batch_size.observe(len(flights))
    if logger is not None:
        now = time.time()
        logger.log(
            [
                LoggedPrediction(
                    request_id=request_id,
                    served_at=now,
                    flight=f,
                    features=row,
                    probability=p,
                    threshold=threshold,
                    model_name=model.name,
                    model_version=model.version,
                )
                for f, row, p in zip(flights, rows, probs, strict=True)
            ]
        )
    return json.dumps(
        {
            "model_name": model.name,
            "model_version": model.version,
            "threshold": threshold,
            "request_id": request_id,
            "predictions": out,
        }
    ).encode()


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
) -> FastAPI:
    """The service app. Defaults: the MLflow registry's ``@champion``, the profile's Feast online
    store, and the prediction log under the profile's lake (disable with ``log_predictions``)."""
    cfg = config or ServeConfig()
    service = build_service(cfg, holder=holder, reader_factory=reader_factory, logger=logger)
    app = FastAPI(
        title="Flight-delay prediction service",
        version="1",
        summary=f"P(arrival delay >= 15 min) for flights leaving New York, scored by {MODEL_NAME}@champion",
        description=(
            "Features come from the Feast online store (feature service `flight_delay_v1`) plus "
            "request-time features computed by the service with the training code's rules. The "
            "model follows `@champion`: a promotion is picked up within `poll_seconds`, without a "
            "restart and without failing requests in flight."
        ),
        lifespan=_lifespan(service),
    )
    app.state.service = service
    app.add_exception_handler(RequestError, _request_error)  # type: ignore[arg-type]
    _add_routes(app, service)
    api_docs.install(app, cfg.max_batch)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, paths=ROUTES)
    return app


def build_service(
    cfg: ServeConfig,
    *,
    holder: ModelHolder | None = None,
    reader_factory: Callable[[], Any] | None = None,
    logger: PredictionLogger | None = None,
) -> PredictionService:
    """The service's parts (defaults as :func:`create_app` says), wired to one set of metrics."""
    settings = cfg.settings or get_settings()
    metrics = ServiceMetrics()

    def swapped(_old: ServedModel | None, new: ServedModel) -> None:
        metrics.swaps.inc()
        metrics.served(new.version)

    if holder is None:
        holder = ModelHolder(poll_seconds=cfg.poll_seconds, settings=settings)
    holder.on_swap = holder.on_swap or swapped
    holder.on_error = holder.on_error or (lambda _m, _e: metrics.load_failures.inc())
    if logger is None and cfg.log_predictions:
        logger = PredictionLogger(
            settings.lake_uri,
            flush_seconds=cfg.log_flush_seconds,
            on_written=lambda n, _uri: metrics.log_rows.labels("written").inc(n),
            on_dropped=lambda n: metrics.log_rows.labels("dropped").inc(n),
        )
    return PredictionService(
        config=cfg,
        metrics=metrics,
        holder=holder,
        reader_factory=reader_factory or (lambda: _default_reader(settings)),
        logger=logger,
    )


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

    @app.post(
        "/predict",
        response_model=PredictResponse,
        summary="Delay probability and decision for one or many flights",
        **api_docs.predict_route(service.config.max_batch),
    )
    async def predict(request: Request) -> Response:
        """Score flights: a `{"flights": [...]}` object, a single flight object, or a list of flights.

        Each flight: `carrier`, `flight`, `origin` (EWR/JFK/LGA), `dest`, `sched_dep_ts` (ISO 8601;
        no offset = New York local time) and optionally `tailnum`. The answer has one prediction
        per flight, in order, and the model version that scored them all.
        """
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
    require_json(request)
    body = await read_body(request, cfg.max_body_bytes, cfg.body_timeout_seconds)
    flights = parse_request(body, max_batch=cfg.max_batch, max_body_bytes=cfg.max_body_bytes)
    model = service.holder.current  # read once: this request uses this version to the end
    if model is None or service.reader is None:
        _, health = service.health()
        reason = health["model"].get("last_error") if model is None else health["features"]["error"]
        return JSONResponse({"detail": f"not ready: {reason}"}, status_code=503)
    rid = request_id(request.headers.get("x-request-id"))
    try:
        if len(flights) <= cfg.inline_max:
            payload = service.score(model, flights, rid)
        else:
            payload = await run_in_threadpool(service.score, model, flights, rid)
    except Exception:
        log.exception("scoring request %s failed", rid)
        return JSONResponse(
            {"detail": "internal error while scoring (logged server side)", "request_id": rid},
            status_code=500,
        )
    return Response(
        payload,
        media_type="application/json",
        headers={"x-model-version": model.version, "x-request-id": rid},
    )


def _default_reader(settings: Settings) -> OnlineFeatureReader:
    from mlops.serving.online import load_reader

    return load_reader(settings)
