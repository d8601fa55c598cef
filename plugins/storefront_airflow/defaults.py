"""Default task arguments every Storefront DAG shares: owner, retries, failure callback."""

from __future__ import annotations

import datetime as dt
from typing import Any

from storefront_airflow.callbacks import notify_on_call
from storefront_airflow.schedule import task_retries


def default_args(retry_delay: dt.timedelta) -> dict[str, Any]:
    return {
        "owner": "storefront-ml",
        "retries": task_retries(),
        "retry_delay": retry_delay,
        "on_failure_callback": notify_on_call,
    }
