"""Prometheus metrics, in a registry of the app's own (so two apps in one test never collide).

    scratchnet_http_requests_total{method, route, status}             counter
    scratchnet_http_request_duration_seconds{method, route, status}   histogram
    scratchnet_predictions_total{model, predicted_class}              counter
    scratchnet_inference_duration_seconds{model}                      histogram (forward pass)
    scratchnet_model_load_seconds{model}                              gauge
    scratchnet_model_loaded{model}                                    gauge, 1 or 0

Every label comes from a closed set, so that no request can add series: `method` is one of
METHODS, `route` the template of a route the app defines (`/model/{model_type}/info`, never
the raw path), `model` one of the models the server knows; anything else is `other`. Before,
each random HTTP method (answered 405) added 18 series: 10,000 of them made /metrics 19 MB.

With `--workers N` every worker process keeps its own counters, and a scrape reaches whichever
worker the kernel hands the connection to. Scrape a single-worker server, or run one server per
port, when exact totals matter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
CLASSES = frozenset(str(c) for c in range(10))
OTHER = "other"


def closed(value: str, allowed: Iterable[str]) -> str:
    """value if it belongs to the closed set `allowed`, else "other"."""
    return value if value in allowed else OTHER


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, models: Iterable[str]) -> None:
        self.models = frozenset(models)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "scratchnet_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "scratchnet_http_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "scratchnet_predictions_total",
            "Successful predictions, by model and predicted class.",
            ["model", "predicted_class"],
            registry=self.registry,
        )
        self.inference = Histogram(
            "scratchnet_inference_duration_seconds",
            "Time of the model's forward pass for one image.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_load_seconds = Gauge(
            "scratchnet_model_load_seconds",
            "Time to load the model's checkpoint and run its warm-up prediction.",
            ["model"],
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "scratchnet_model_loaded",
            "1 when the model is loaded and serving, else 0.",
            ["model"],
            registry=self.registry,
        )
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        """metric.labels(*values), looked up once per label set. labels() checks its arguments
        and takes a lock at every call: a request's four series took 15 us that way, 5 us
        from here. The label sets are closed, so this stays small."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def model(self, name: str) -> str:
        """The `model` label for a model name."""
        return closed(name, self.models)

    def observe_prediction(self, model: str, predicted_class: int, inference_ms: float) -> None:
        model = self.model(model)
        predicted = closed(str(predicted_class), CLASSES)
        self._child(self.predictions, model, predicted).inc()
        self._child(self.inference, model).observe(inference_ms / 1000.0)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered request; method and route must already be closed labels."""
        self._child(self.requests, method, route, str(status)).inc()
        self._child(self.latency, method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count every HTTP request and time it, labelled by the route that matched.

    `routes` are the app's route templates: a matched route outside them (none today) would
    still be `other`.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            # The router stores the matched route in the scope it shares with us.
            template = getattr(scope.get("route"), "path", None)
            self.metrics.observe_request(
                closed(scope["method"], METHODS),
                template if template in self.routes else OTHER,
                status,
                time.perf_counter() - start,
            )
