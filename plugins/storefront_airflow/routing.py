"""Route training tasks to the workers that have the accelerator: a Celery queue per device kind.

LocalExecutor (the embedded default) ignores queues, so the same DAG runs on a laptop. In production the
Celery workers on Gaudi hosts listen on ``hpu``, GPU hosts on ``cuda``; ``STOREFRONT_TRAINING_QUEUE`` picks.
"""

from __future__ import annotations

import os

QUEUES = ("cpu", "cuda", "hpu")


def training_queue() -> str:
    queue = os.environ.get("STOREFRONT_TRAINING_QUEUE", "cpu")
    if queue not in QUEUES:
        raise ValueError(f"STOREFRONT_TRAINING_QUEUE={queue!r}: expected one of {', '.join(QUEUES)}")
    return queue
