"""The FastAPI app factory: ``create_app()`` wires settings, champions, online features and the prediction log.

Lifecycle (the app's lifespan): on start, the Feast store is built and probed and the champion poller starts (the
first check of every model runs at once, in the background, so the process is alive at once and ``/ready`` turns
true when the models are in); on a clean shutdown, the poller stops and the prediction log writes what it holds.

Paths: the model endpoints are versioned (``/v1/...``); ``/health``, ``/ready`` and ``/metrics`` are not (what
load balancers and Prometheus expect). ``/docs`` and ``/openapi.json`` document everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings, get_settings
from serving.champions import Champions, ChampionSlot, NoChampion, Prepare
from serving.context import ServingContext
from serving.endpoints import operations
from serving.features import OnlineFeatures
from serving.metrics import ServingMetrics
from serving.prediction_log import PredictionLog, prediction_log_root

log = logging.getLogger(__name__)

API_VERSION = "v1"
THREAD_POOL = 8  # threads for the sync endpoints (feature reads and model calls)



def served_models() -> dict[str, tuple[Prepare | None, Callable[[ServingContext], Any]]]:
    """Model name -> (prepare hook run once per loaded version, router factory), for every enabled model with an
    endpoint: the serving adapter each model package declares in the one model registry."""
    from training.shared.model_registry import enabled_models, function, model_specs, resolve

    specs = model_specs()
    return {
        name: (function(specs[name].serving_prepare), resolve(specs[name].serving_router))
        for name in enabled_models()
        if specs[name].serving_router is not None
    }


class LatencyMiddleware:
    """Request latency and count per route template (``/v1/conversion/score``), as a plain ASGI middleware."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.request_seconds.labels(endpoint, method).observe(time.perf_counter() - began)
            self.metrics.requests.labels(endpoint, method, str(status)).inc()


def one_thread_per_request() -> None:
    """Parallelism across requests, not inside one, for a serving process (``storefront serve`` calls this).

    A request's model call is small (tens of rows), and torch's intra-op threads on top of the request threads
    oversubscribe the cores (measured: the conversion model call's p50 went to 176 ms at 200 req/s on 2 cores).
    Process-wide, so it is not done by ``create_app`` (a test process trains models after building apps).
    """
    import torch

    torch.set_num_threads(1)


def create_app(settings: Settings | None = None, *, models: tuple[str, ...] | None = None) -> FastAPI:
    """The serving app for ``settings`` (default: the environment's) and ``models`` (default: every enabled model
    with an endpoint)."""
    settings = settings or get_settings()
    metrics = ServingMetrics()
    served = served_models()
    names = tuple(served) if models is None else models
    unknown = [name for name in names if name not in served]
    if unknown:
        raise KeyError(f"no served model {', '.join(unknown)}; enabled with an endpoint: {', '.join(served)}")
    slots = {name: ChampionSlot(name, metrics, served[name][0]) for name in names}
    ctx = ServingContext(
        settings=settings,
        metrics=metrics,
        champions=Champions(slots, settings.serving_poll_seconds),
        features=OnlineFeatures(metrics),
        prediction_log=PredictionLog(
            prediction_log_root(settings.lake), metrics,
            flush_seconds=settings.serving_log_flush_seconds, batch_rows=settings.serving_log_batch_rows,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # the sync endpoints' thread pool: more threads than this only queue for the GIL and the cores
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREAD_POOL
        ctx.prediction_log.start()
        await run_in_threadpool(ctx.features.warm_up)
        ctx.champions.start()
        log.info("serving %s on profile %s", ", ".join(names), settings.profile)
        try:
            yield
        finally:
            ctx.champions.stop()
            ctx.prediction_log.close()
            log.info("serving stopped; prediction log flushed")

    app = FastAPI(
        title="Storefront ML serving API",
        version=API_VERSION,
        summary="Conversion scores, ranked lists, recommendations, promotions and prices from the MLflow champions.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.add_middleware(LatencyMiddleware, metrics=metrics)

    @app.exception_handler(NoChampion)
    async def no_champion(request: Request, exc: NoChampion) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "model": exc.model, "reason": exc.reason},
            status_code=503,
            headers={"Retry-After": str(max(1, round(settings.serving_poll_seconds)))},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(part) for part in e.get("loc", ())), "message": e.get("msg", ""),
             "type": e.get("type", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse({"detail": f"invalid request: {summary}", "errors": errors}, status_code=422)

    app.include_router(operations.router(ctx))
    for name in names:
        app.include_router(served[name][1](ctx))
    return app
