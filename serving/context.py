"""What every endpoint shares: settings, metrics, champions, online features, prediction log; and how it answers.

:meth:`ServingContext.answer` is the one way a prediction leaves the service: it serializes the response
(timed: the ``serialization`` stage), sets ``Server-Timing`` (feature read, model, serialization, in ms: the
benchmark reads it), counts a fallback, and queues the prediction log row.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from config.settings import Settings
from serving.champions import Champions, LoadedModel
from serving.features import OnlineFeatures
from serving.metrics import ServingMetrics
from serving.prediction_log import PredictionLog


@dataclass
class Timings:
    """Seconds per stage of one request."""

    began: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + seconds


def invalid_field(location: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 for a rule the schema cannot express, in the same shape as the schema's own (the field named)."""
    return RequestValidationError([{"loc": location, "msg": message, "type": "value_error"}])


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass
class ServingContext:
    settings: Settings
    metrics: ServingMetrics
    champions: Champions
    features: OnlineFeatures
    prediction_log: PredictionLog

    def answer(
        self,
        endpoint: str,
        body: BaseModel,
        timings: Timings,
        loaded: LoadedModel,
        *,
        request_id: str,
        fallback: str | None,
        features: Mapping[str, Any],
        outputs: Mapping[str, Any],
    ) -> Response:
        """Serialize ``body``, record the stages and the fallback, and log the prediction."""
        with timings.stage("serialization"):
            content = body.model_dump_json().encode()
        for stage, seconds in timings.stages.items():
            self.metrics.stage_seconds.labels(endpoint, stage).observe(seconds)
        if fallback is not None:
            self.metrics.fallbacks.labels(endpoint, fallback).inc()
        latency = time.perf_counter() - timings.began
        self.prediction_log.append({
            "request_id": request_id,
            "logged_at": dt.datetime.now(dt.UTC),  # an event time: when the prediction was served
            "model_name": loaded.name,
            "model_version": loaded.version,
            "endpoint": endpoint,
            "latency_ms": latency * 1000.0,
            "fallback": fallback,
            **features,
            **outputs,
        })
        timing = ", ".join(f"{k};dur={v * 1000:.3f}" for k, v in timings.stages.items())
        return Response(content=content, media_type="application/json", headers={"Server-Timing": timing})
