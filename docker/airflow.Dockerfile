# Airflow 3 for the production-like stack: api-server, scheduler, dag-processor and the CPU Celery worker all run
# this image (the compose file picks the command). Spark runs inside the tasks (local[*]) or is submitted to a
# cluster (STOREFRONT_SPARK_MASTER), so the image carries a Java runtime.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/storefront/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/storefront/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    SPARK_LOCAL_IP=127.0.0.1 \
    GX_ANALYTICS_ENABLED=false

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/storefront
# dependencies first (a layer that survives code changes), then the code
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
RUN python -m pip install --upgrade pip==25.3 \
    && mkdir -p config feature_repo simulator storefront training monitoring serving plugins/storefront_airflow \
    && pip install -c requirements/constraints.txt -e . \
    && pip install -c requirements/constraints.txt "apache-airflow-providers-celery==3.26.0"
COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 50000 airflow \
    && mkdir -p "$AIRFLOW_HOME" /opt/storefront/var \
    && chown -R airflow "$AIRFLOW_HOME" /opt/storefront/var

USER 50000
ENTRYPOINT ["tini", "--", "airflow"]
CMD ["api-server"]
