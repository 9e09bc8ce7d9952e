"""Prometheus metrics: requests and latency per endpoint and model version, predictions,
webhook deliveries.

Each app has its own collector registry, so several apps in one process (tests) never clash.
With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` (``leadscore serve
--workers N`` does) and ``/metrics`` adds up every worker's figures.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

# Scoring takes around a millisecond; batches up to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
SCOPE_KEY = "leadscore.model"  # set by a handler: (model name, version) it answered with


def observe_all(histogram: Any, values: Sequence[float]) -> None:
    """``histogram.observe`` of every value (a labelled child), one increment per bucket.

    prometheus_client observes one value at a time (a lock and a bucket search each); a
    batch's hundred probabilities are counted into their buckets first, through the child's
    own bucket counters. A client without those fields observes one by one."""
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if len(values) < 8 or buckets is None or bounds is None or total is None:
        for value in values:
            histogram.observe(value)
        return
    # the first bucket whose upper bound is at or above the value, as ``observe`` picks
    counts = np.bincount(np.searchsorted(bounds, values, side="left"),
                         minlength=len(bounds) + 1)
    total.inc(sum(values))
    for i, count in enumerate(counts[:len(bounds)].tolist()):
        if count:
            buckets[i].inc(count)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "leadscore_api_requests", "Requests answered",
            ["endpoint", "method", "status", "model", "version"], registry=self.registry)
        self.latency = Histogram(
            "leadscore_api_request_duration_seconds", "Time from request to complete response",
            ["endpoint", "model", "version"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.probability = Histogram(
            "leadscore_api_prediction_probability",
            "Predicted probability (conversion, churn, or the recommended plan's)",
            ["model", "version"], buckets=PROBABILITY_BUCKETS, registry=self.registry)
        self.outcomes = Counter(
            "leadscore_api_predictions", "Predictions served, by tier, risk level or plan",
            ["model", "version", "outcome"], registry=self.registry)
        self.deliveries = Counter(
            "leadscore_webhook_deliveries",
            "Webhook deliveries by source and outcome (accepted, duplicate, rejected), with "
            "the reason of a rejection", ["source", "outcome", "reason"],
            registry=self.registry)
        self._children: dict[tuple, object] = {}

    def _child(self, metric, *labels: str):
        # ``labels()`` validates and hashes its arguments on every call; a handful of label
        # sets exist, so their children are kept
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            if len(self._children) < 10_000:
                self._children[key] = child
        return child

    def observe_predictions(self, model: str, version: str, probabilities: Sequence[float],
                            outcomes: Sequence[str | None]) -> None:
        observe_all(self._child(self.probability, model, version), probabilities)
        counts: dict[str, int] = {}
        for outcome in outcomes:
            key = outcome or "none"
            counts[key] = counts.get(key, 0) + 1
        for outcome, n in counts.items():
            self._child(self.outcomes, model, version, outcome).inc(n)

    def observe_delivery(self, source: str, outcome: str, reason: str = "") -> None:
        self._child(self.deliveries, source, outcome, reason).inc()

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def middleware(self, app):
        """ASGI middleware timing every routed request (Litestar runs it after routing)."""
        requests, latency, child = self.requests, self.latency, self._child

        async def timed(scope, receive, send):
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = [500]

            async def send_status(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                endpoint = scope.get("path_template") or scope.get("path", "")
                model, version = scope.get(SCOPE_KEY, ("", ""))
                child(latency, endpoint, model, version).observe(time.perf_counter() - start)
                child(requests, endpoint, scope.get("method", ""), str(status[0]), model,
                      version).inc()

        return timed
