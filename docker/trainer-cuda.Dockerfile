# A training worker with NVIDIA GPUs: a Celery worker of the Airflow stack that takes the `cuda` queue
# (STOREFRONT_TRAINING_QUEUE=cuda routes the training tasks there; training/shared/devices.py picks cuda, NCCL for DDP).
# torch comes from PyTorch's CUDA index instead of the CPU build the constraints file pins.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/storefront/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/storefront/plugins \
    SPARK_LOCAL_IP=127.0.0.1 \
    GX_ANALYTICS_ENABLED=false \
    STOREFRONT_DEVICE=cuda

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv openjdk-17-jre-headless tini \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/storefront
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
# every pin but torch's, then the CUDA build of the same torch version
RUN python -m pip install --upgrade pip==25.3 \
    && grep -v '^torch==' requirements/constraints.txt > /tmp/constraints-cuda.txt \
    && pip install --index-url https://download.pytorch.org/whl/cu126 "torch==$(sed -n 's/^torch==//p' requirements/constraints.txt)" \
    && mkdir -p config feature_repo simulator storefront training monitoring serving plugins/storefront_airflow \
    && pip install -c /tmp/constraints-cuda.txt -e . "apache-airflow-providers-celery==3.26.0"
COPY . .
RUN pip install --no-deps -e . && useradd --create-home --uid 50000 airflow && mkdir -p "$AIRFLOW_HOME" \
    && chown -R airflow "$AIRFLOW_HOME"

USER 50000
ENTRYPOINT ["tini", "--", "airflow"]
CMD ["celery", "worker", "--queues", "cuda", "--concurrency", "1"]
