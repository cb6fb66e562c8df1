"""Prometheus metrics of the prediction service (``GET /metrics``, text exposition format).

Each app gets its own ``CollectorRegistry`` (several apps in one process, e.g. tests, do not
collide). Request metrics come from a plain ASGI middleware (no ``BaseHTTPMiddleware``: it would
add a task and a copy per request). Paths are reduced to the app's routes and methods to the
standard ones (anything else is ``other``), so a client cannot grow the label sets.

=================================================  =========================================
``mlops_serving_request_duration_seconds``         histogram by ``path``
``mlops_serving_requests_total``                   counter by ``path``, ``method``, ``status``
``mlops_serving_request_errors_total``             counter by ``path``, ``status`` (>= 400)
``mlops_serving_predictions_total``                counter by ``model_version``, ``decision``
``mlops_serving_prediction_batch_size``            histogram of flights per request
``mlops_serving_online_missing_views_total``       counter by ``view`` (no online row)
``mlops_serving_model_info``                       gauge 1 for the served ``model_version``
``mlops_serving_model_swaps_total``                counter
``mlops_serving_model_load_failures_total``        counter
``mlops_serving_prediction_log_rows_total``        counter by ``outcome`` (written, dropped)
``mlops_serving_model_requests_total``             counter by ``alias``, ``model_version``, ``role``
``mlops_serving_model_predictions_total``          counter (flights) by ``alias``, ``model_version``, ``role``
``mlops_serving_model_duration_seconds``           histogram by ``alias``, ``model_version``, ``role``
``mlops_serving_model_errors_total``               counter by ``alias``, ``model_version``, ``role``
``mlops_serving_alias_info``                       gauge 1 for the version each alias has loaded
``mlops_serving_shadow_jobs_total``                counter by ``outcome`` (scored, dropped, failed)
``mlops_serving_canary_percent``                   gauge: share of flights answered by @challenger
=================================================  =========================================

Per model (``alias`` is ``champion`` or ``challenger``; ``role`` is ``served`` for the model that
answered, ``shadow`` for the one scored off the response path, see :mod:`mlops.serving.rollout`):
the duration of a ``served`` request is from the handler's start (body read, validation) to the
answer ready, the time the client waits minus the network; of a ``shadow`` job, its scoring time.
``mlops_serving_predictions_total`` counts the answered flights only (never shadow scores).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

#: Methods counted under their own name; any other (a server may pass arbitrary tokens) is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


class ServiceMetrics:
    """The service's collectors on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "mlops_serving_request_duration_seconds",
            "Time to answer a request (server side, from first byte in to last byte out)",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "mlops_serving_requests", "Requests answered", ["path", "method", "status"], registry=r
        )
        self.errors = Counter(
            "mlops_serving_request_errors",
            "Requests answered with a 4xx or 5xx",
            ["path", "status"],
            registry=r,
        )
        self.predictions = Counter(
            "mlops_serving_predictions",
            "Flights scored, by model version and decision",
            ["model_version", "decision"],
            registry=r,
        )
        self.batch_size = Histogram(
            "mlops_serving_prediction_batch_size",
            "Flights per /predict request",
            buckets=(1, 2, 5, 10, 50, 100, 500, 1000, 5000),
            registry=r,
        )
        self.missing_views = Counter(
            "mlops_serving_online_missing_views",
            "Flights for which a feature view had no online row",
            ["view"],
            registry=r,
        )
        self.model_info = Gauge(
            "mlops_serving_model_info", "1 for the model version being served", ["model_version"], registry=r
        )
        self.swaps = Counter("mlops_serving_model_swaps", "Model versions published", registry=r)
        self.load_failures = Counter(
            "mlops_serving_model_load_failures", "Failed model loads or alias lookups", registry=r
        )
        self.log_rows = Counter(
            "mlops_serving_prediction_log_rows",
            "Served predictions written to the lake or dropped",
            ["outcome"],
            registry=r,
        )
        by_model = ["alias", "model_version", "role"]
        self.model_requests = Counter(
            "mlops_serving_model_requests", "Requests in which a model scored flights", by_model, registry=r
        )
        self.model_predictions = Counter(
            "mlops_serving_model_predictions", "Flights scored by a model", by_model, registry=r
        )
        self.model_duration = Histogram(
            "mlops_serving_model_duration_seconds",
            "served: handler start to answer ready; shadow: the shadow model's scoring time",
            by_model,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_errors = Counter(
            "mlops_serving_model_errors", "Requests a model failed to score", by_model, registry=r
        )
        self.alias_info = Gauge(
            "mlops_serving_alias_info",
            "1 for the version each alias has loaded",
            ["alias", "model_version"],
            registry=r,
        )
        self.shadow_jobs = Counter(
            "mlops_serving_shadow_jobs",
            "Shadow scoring jobs, by outcome (scored, dropped when behind, failed)",
            ["outcome"],
            registry=r,
        )
        self.canary_percent = Gauge(
            "mlops_serving_canary_percent", "Share of flights answered by @challenger (percent)", registry=r
        )
        for outcome in ("scored", "dropped", "failed"):
            self.shadow_jobs.labels(outcome)
        self._served: str | None = None
        self._aliases: dict[str, str] = {}

    def served(self, version: str) -> None:
        if self._served is not None and self._served != version:
            self.model_info.labels(self._served).set(0)
        self.model_info.labels(version).set(1)
        self._served = version

    def alias_loaded(self, alias: str, version: str | None) -> None:
        """``mlops_serving_alias_info``: ``alias`` now has ``version`` loaded (None: nothing)."""
        before = self._aliases.get(alias)
        if before is not None and before != version:
            self.alias_info.labels(alias, before).set(0)
        if version is None:
            self._aliases.pop(alias, None)
            return
        self.alias_info.labels(alias, version).set(1)
        self._aliases[alias] = version

    def observe_model(self, alias: str, version: str, role: str, flights: int, seconds: float) -> None:
        """One request's (or shadow job's) ``flights`` scored by ``alias`` v``version`` in ``seconds``."""
        self.model_requests.labels(alias, version, role).inc()
        self.model_predictions.labels(alias, version, role).inc(flights)
        self.model_duration.labels(alias, version, role).observe(seconds)


class MetricsMiddleware:
    """ASGI middleware recording latency, status and errors of every HTTP request."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        metrics: ServiceMetrics,
        paths: Iterable[str],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = frozenset(paths)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope.get("path", "")
            label = path if path in self.paths else "other"
            m = self.metrics
            m.latency.labels(label).observe(time.perf_counter() - started)
            method = scope.get("method", "")
            m.requests.labels(label, method if method in METHODS else "other", str(status)).inc()
            if status >= 400:
                m.errors.labels(label, str(status)).inc()
