"""Operations: ``/health`` (the process answers), ``/ready`` (models and online store), ``/metrics`` (Prometheus),
and the admin call ``POST /v1/admin/retrain`` that asks Airflow to run the training DAG now.

The admin call needs the ``X-API-Key`` header to equal ``STOREFRONT_SERVING_ADMIN_API_KEY`` (compared in
constant time); with no key configured every admin call is refused, so a forgotten setting never opens it.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging

from fastapi import APIRouter, Depends, HTTPException, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.airflow_trigger import TRAINING_DAG_ID, AirflowError, trigger_dag
from serving.context import ServingContext, invalid_field
from serving.schemas import Health, Problem, Readiness, RetrainRequest, RetrainResponse, ValidationFailed

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"


def router(ctx: ServingContext) -> APIRouter:
    api = APIRouter()
    api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The serving admin API key")

    def require_admin(key: str | None = Security(api_key)) -> None:
        configured = ctx.settings.serving_admin_api_key
        if configured is None or not configured.get_secret_value():
            raise HTTPException(403, "admin calls are disabled: STOREFRONT_SERVING_ADMIN_API_KEY is not set")
        if key is None:
            raise HTTPException(401, f"missing {API_KEY_HEADER} header", headers={"WWW-Authenticate": "APIKey"})
        if not hmac.compare_digest(key.encode(), configured.get_secret_value().encode()):
            raise HTTPException(401, f"wrong {API_KEY_HEADER}", headers={"WWW-Authenticate": "APIKey"})

    @api.get("/health", response_model=Health, tags=["operations"], summary="The process is alive")
    def health() -> Health:
        return Health(status="alive")

    @api.get(
        "/ready", response_model=Readiness, tags=["operations"], responses={503: {"model": Readiness}},
        summary="Ready when every model was checked, one is loaded, and the online store answers",
    )
    def ready(response: Response) -> Readiness:
        error = ctx.features.probe()
        slots = ctx.champions.slots.values()
        is_ready = (
            error is None
            and all(s.checked for s in slots)
            and any(s.current is not None for s in slots)
        )
        if not is_ready:
            response.status_code = 503
        return Readiness(ready=is_ready, online_store=error or "ok", models=ctx.champions.status())

    @api.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @api.post(
        "/v1/admin/retrain",
        response_model=RetrainResponse,
        status_code=202,
        tags=["admin"],
        summary="Ask Airflow to run the training DAG now (create or update the predictors)",
        dependencies=[Depends(require_admin)],
        responses={
            400: {"model": Problem, "description": "The body is not valid JSON"},
            401: {"model": Problem, "description": "No or wrong API key"},
            403: {"model": Problem, "description": "Admin calls are disabled (no key configured)"},
            409: {"model": Problem, "description": "Airflow already has a run with this id"},
            422: {"model": ValidationFailed, "description": "A field is invalid"},
            502: {"model": Problem, "description": "Airflow is unreachable or refused the call"},
            503: {"model": Problem, "description": "The service has no Airflow password configured"},
        },
    )
    async def retrain(request: RetrainRequest) -> RetrainResponse:
        password = ctx.settings.airflow_password
        if password is None:
            raise HTTPException(503, "STOREFRONT_AIRFLOW_PASSWORD is not set: the service cannot sign in to Airflow")
        try:
            day = None if request.date is None else dt.date.fromisoformat(request.date)
        except ValueError as err:
            raise invalid_field(("body", "date"), str(err)) from None
        try:
            run = await run_in_threadpool(
                trigger_dag, ctx.settings.airflow_api_url, ctx.settings.airflow_username,
                password.get_secret_value(), dag_id=TRAINING_DAG_ID, day=day, note=request.note,
            )
        except AirflowError as err:
            raise HTTPException(err.status, str(err)) from None
        log.info("admin: triggered %s run %s", run.dag_id, run.dag_run_id)
        return RetrainResponse(dag_id=run.dag_id, dag_run_id=run.dag_run_id, state=run.state, conf=run.conf)

    return api
