# The serving API (storefront serve): FastAPI + uvicorn over the MLflow champions and the Redis online store.
# Behind a load balancer: /health for liveness, /ready for readiness, /metrics for Prometheus.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STOREFRONT_PROFILE=production \
    STOREFRONT_SERVING_HOST=0.0.0.0 \
    STOREFRONT_SERVING_PORT=8000

# curl for the container health check
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/storefront
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
RUN python -m pip install --upgrade pip==25.3 \
    && mkdir -p config feature_repo simulator storefront training monitoring serving plugins/storefront_airflow \
    && pip install -c requirements/constraints.txt -e .
COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 50001 storefront \
    && mkdir -p /opt/storefront/var && chown -R storefront /opt/storefront/var

USER 50001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["curl", "-fsS", "http://127.0.0.1:8000/health"]
ENTRYPOINT ["tini", "--", "storefront"]
CMD ["serve", "--workers", "2"]
