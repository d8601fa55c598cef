"""Route training tasks to the workers that have the accelerator: a Celery queue per device kind.

LocalExecutor (the embedded default) ignores queues, so the same DAG runs on a laptop. In production the
Celery workers on Gaudi hosts listen on ``hpu``, GPU hosts on ``cuda``; the ``training_queue`` setting
(``STOREFRONT_TRAINING_QUEUE``) picks.
"""

from __future__ import annotations

from config.settings import get_settings

QUEUES = ("cpu", "cuda", "hpu")


def training_queue() -> str:
    """The queue of the training tasks; the settings object refuses a value outside :data:`QUEUES`."""
    return get_settings().training_queue
