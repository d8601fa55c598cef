# A training worker with Intel Gaudi cards: a Celery worker of the Airflow stack that takes the `hpu` queue
# (STOREFRONT_TRAINING_QUEUE=hpu; training/shared/devices.py picks hpu, HCCL for DDP). The base image is Habana's
# PyTorch image, whose torch build (with the Gaudi bridge) must stay: the project's torch pin is left out.
ARG GAUDI_IMAGE=vault.habana.ai/gaudi-docker/1.21.0/ubuntu22.04/habanalabs/pytorch-installer-2.6.0:latest
FROM ${GAUDI_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/storefront/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/storefront/plugins \
    SPARK_LOCAL_IP=127.0.0.1 \
    GX_ANALYTICS_ENABLED=false \
    STOREFRONT_DEVICE=hpu \
    PT_HPU_LAZY_MODE=1

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/storefront
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
# the image's own torch stays; everything else as pinned
RUN grep -v '^torch==' requirements/constraints.txt > /tmp/constraints-gaudi.txt \
    && sed -i 's/"torch==[^"]*",//' pyproject.toml \
    && mkdir -p config feature_repo simulator storefront training monitoring serving plugins/storefront_airflow \
    && python3 -m pip install -c /tmp/constraints-gaudi.txt -e . "apache-airflow-providers-celery==3.26.0"
COPY . .
RUN sed -i 's/"torch==[^"]*",//' pyproject.toml && python3 -m pip install --no-deps -e .

ENTRYPOINT ["airflow"]
CMD ["celery", "worker", "--queues", "hpu", "--concurrency", "1"]
