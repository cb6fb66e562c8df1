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
=================================================  =========================================
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
        self._served: str | None = None

    def served(self, version: str) -> None:
        if self._served is not None and self._served != version:
            self.model_info.labels(self._served).set(0)
        self.model_info.labels(version).set(1)
        self._served = version


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
