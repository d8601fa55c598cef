"""The main job's progress: which step and Airflow task it is in, and an estimate of what is left."""

from __future__ import annotations

import io
import time

from rich.console import Console

from storefront.progress import PRIOR_SECONDS, JobProgress, PlannedStep


def _progress() -> JobProgress:
    steps = [PlannedStep("features DAG 2026-04-29", "features"), PlannedStep("training DAG 2026-04-29", "training"),
             PlannedStep("features DAG 2026-04-30", "features"), PlannedStep("training DAG 2026-04-30", "training")]
    return JobProgress(steps, console=Console(file=io.StringIO(), force_terminal=False))


def test_status_names_the_step_and_the_airflow_task_from_the_dag_test_output() -> None:
    progress = _progress()
    with progress, progress.step(0):
        progress.on_line("2026-12-03T12:33:25Z [info ] [DAG TEST] starting task_id=build_features map_index=-1 [x]\n")
        progress.on_line("2026-12-03T12:33:26Z [info ] something else\n")
        status = progress.status()
    assert status.startswith("[1/4] features DAG 2026-04-29 · task build_features · 0:00 elapsed")
    assert status.endswith(" left") and "~" in status  # no step measured yet: the estimate rests on priors


def test_remaining_time_uses_the_measured_steps_of_each_kind() -> None:
    progress = _progress()
    with progress:
        with progress.step(0):
            pass
        progress.done["features"] = [10.0]
        progress.done["training"] = [40.0]
        with progress.step(1):
            left, measured = progress.remaining()
    assert measured
    # the rest of the running training night, then one features night and one training night
    assert 40.0 + 10.0 + 40.0 - 1.0 < left <= 40.0 + 10.0 + 40.0
    prior_only = _progress()
    prior_only._step_began = time.perf_counter()
    left, measured = prior_only.remaining()
    assert not measured and left <= 2 * (PRIOR_SECONDS["features"] + PRIOR_SECONDS["training"])
