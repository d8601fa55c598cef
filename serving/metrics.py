"""Prometheus metrics of the serving API, on a registry of its own (one per app, so tests can build several).

Names follow Prometheus conventions (``_seconds``, ``_total``); ``GET /metrics`` exposes them.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Serving answers in milliseconds: the buckets are dense below 25 ms, where the latency target (p99 10 ms) lives.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGES = ("feature_read", "model", "serialization")


class ServingMetrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "storefront_serving_request_seconds", "Time from request received to response sent, per endpoint",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.requests = Counter(
            "storefront_serving_requests", "Requests answered, per endpoint and HTTP status",
            ["endpoint", "method", "status"], registry=r,
        )
        self.stage_seconds = Histogram(
            "storefront_serving_stage_seconds", "Time spent per stage of a prediction (feature_read, model, "
            "serialization)", ["endpoint", "stage"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.model_version = Gauge(
            "storefront_serving_model_version", "1 for the model version each model's endpoint serves now",
            ["model", "version"], registry=r,
        )
        self.model_loaded = Gauge(
            "storefront_serving_model_loaded", "1 when a champion of the model is loaded, else 0", ["model"],
            registry=r,
        )
        self.model_reloads = Counter(
            "storefront_serving_model_reloads", "Champion loads, per model and outcome (loaded, failed)",
            ["model", "outcome"], registry=r,
        )
        self.fallbacks = Counter(
            "storefront_serving_fallbacks", "Responses answered from a fallback, per endpoint and reason",
            ["endpoint", "reason"], registry=r,
        )
        self.online_store_errors = Counter(
            "storefront_serving_online_store_errors", "Failed online store reads, per exception class",
            ["error"], registry=r,
        )
        self.prediction_log_rows = Counter(
            "storefront_serving_prediction_log_rows", "Prediction log rows, per outcome (written, dropped)",
            ["outcome"], registry=r,
        )
        self.prediction_log_queue = Gauge(
            "storefront_serving_prediction_log_queue", "Predictions waiting to be written", registry=r,
        )

    def set_model(self, model: str, old_version: str | None, new_version: str | None) -> None:
        """Move the version gauge of ``model`` from ``old_version`` to ``new_version`` (None: nothing loaded)."""
        if old_version is not None:
            with contextlib.suppress(KeyError):
                self.model_version.remove(model, old_version)
        if new_version is not None:
            self.model_version.labels(model, new_version).set(1)
        self.model_loaded.labels(model).set(0 if new_version is None else 1)
