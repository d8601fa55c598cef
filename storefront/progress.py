"""Where the main job is, on the console at all times: the step of how many, the Airflow task running now, the
time elapsed and an estimate of what is left.

On a terminal this is a live progress bar (rich); elsewhere (CI, a log file) one plain line per step and per
Airflow task started. The Airflow task comes from the ``[DAG TEST] starting task_id=...`` lines that
``airflow dags test`` writes, read as they are written to the step's log file. The estimate of what is left is
the mean time of the finished steps of each kind (history load, features night, training night, ...), with a
prior for a kind not seen yet; it is marked ``~`` while it rests on a prior.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

log = logging.getLogger(__name__)

TASK_STARTED = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
# Seconds a step of each kind takes at demo scale on 2 cores, until one of that kind has been measured.
PRIOR_SECONDS = {"simulate": 15.0, "metadata": 25.0, "history": 120.0, "features": 30.0, "training": 60.0,
                 "readouts": 40.0}


@dataclass
class PlannedStep:
    name: str
    kind: str  # a key of PRIOR_SECONDS


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


@dataclass
class JobProgress:
    """Progress of a planned list of steps; ``step(i)`` wraps the i-th, ``on_line`` reads its output."""

    steps: list[PlannedStep]
    console: Console = field(default_factory=lambda: Console(stderr=True))
    began: float = field(default_factory=time.perf_counter)
    done: dict[str, list[float]] = field(default_factory=dict)  # kind -> seconds of its finished steps
    current: int = 0
    task: str = ""
    _step_began: float = 0.0
    _bar: Progress | None = None
    _bar_task: int | None = None

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    def remaining(self) -> tuple[float, bool]:
        """Estimated seconds left (the current step's remainder included) and whether only measured kinds count."""
        measured = True
        left = 0.0
        for index in range(self.current, len(self.steps)):
            kind = self.steps[index].kind
            seen = self.done.get(kind)
            estimate = sum(seen) / len(seen) if seen else PRIOR_SECONDS.get(kind, 60.0)
            measured &= bool(seen)
            if index == self.current:
                estimate = max(estimate - (time.perf_counter() - self._step_began), 0.0)
            left += estimate
        return left, measured

    def status(self) -> str:
        left, measured = self.remaining()
        step = self.steps[self.current]
        task = f" · task {self.task}" if self.task else ""
        return (f"[{self.current + 1}/{len(self.steps)}] {step.name}{task} · {_clock(time.perf_counter() - self.began)}"
                f" elapsed · {'' if measured else '~'}{_clock(left)} left")

    def __enter__(self) -> JobProgress:
        if self.live:
            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[left]}"), console=self.console, transient=False,
            )
            self._bar.start()
            self._bar_task = self._bar.add_task("main job", total=len(self.steps), left="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _show(self) -> None:
        if self._bar is not None and self._bar_task is not None:
            left, measured = self.remaining()
            step = self.steps[self.current]
            task = f" · {self.task}" if self.task else ""
            self._bar.update(self._bar_task, completed=self.current, description=f"{step.name}{task}",
                             left=f"{'~' if not measured else ''}{_clock(left)} left")
        else:
            log.info("%s", self.status())

    @contextmanager
    def step(self, index: int) -> Iterator[None]:
        self.current, self.task, self._step_began = index, "", time.perf_counter()
        self._show()
        try:
            yield
        finally:
            self.done.setdefault(self.steps[index].kind, []).append(time.perf_counter() - self._step_began)
            if self._bar is not None and self._bar_task is not None:
                self._bar.update(self._bar_task, completed=index + 1)

    def on_line(self, line: str) -> None:
        match = TASK_STARTED.search(line)
        if match:
            self.task = match.group(1)
            self._show()
