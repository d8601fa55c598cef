"""The champions the service answers with: one slot per model, loaded from MLflow and hot-swapped when the alias moves.

A slot holds one immutable :class:`LoadedModel`. A request reads ``slot.current`` once and keeps that object for
its whole life, so a swap (one reference assignment, atomic in CPython) never changes a model under a running
request and never blocks one: the new version is downloaded, loaded and prepared in the background thread that
noticed the alias move, and only then swapped in. A failed load leaves the running version in place.

Every MLflow call goes through ``training.shared.registry``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from serving.metrics import ServingMetrics

if TYPE_CHECKING:
    from training.shared.registry import PyFuncModel  # MLflow's type, through the one door

log = logging.getLogger(__name__)

# Called once per loaded version, off the request path: extra state derived from the model or its run
# (e.g. the conversion model's KPI reference values); returns what requests find in ``LoadedModel.extras``.
Prepare = Callable[["PyFuncModel", str], Mapping[str, Any]]


@dataclass(frozen=True)
class LoadedModel:
    """One champion version, ready to predict."""

    name: str
    version: str
    run_id: str
    pyfunc: PyFuncModel
    extras: Mapping[str, Any] = field(default_factory=dict)


class NoChampion(Exception):
    """The model cannot answer (no champion, its load failed, a capability it lacks); ``reason`` says why (503)."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"model {model!r} cannot answer: {reason}")
        self.model = model
        self.reason = reason


class ChampionSlot:
    """The served version of one model."""

    def __init__(self, name: str, metrics: ServingMetrics, prepare: Prepare | None = None) -> None:
        self.name = name
        self._metrics = metrics
        self._prepare = prepare
        self._current: LoadedModel | None = None
        self._reason = "not checked yet"
        self._checked = False
        self._lock = threading.Lock()  # one load at a time per slot; never taken by requests

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def checked(self) -> bool:
        """True once the registry has been asked at least once (whatever the answer)."""
        return self._checked

    @property
    def reason(self) -> str:
        return self._reason

    def require(self) -> LoadedModel:
        """The loaded champion, or :class:`NoChampion` with the reason."""
        current = self._current
        if current is None:
            raise NoChampion(self.name, self._reason)
        return current

    def refresh(self) -> bool:
        """Ask the registry where ``champion`` points; load and swap in a new version. True when it swapped."""
        from training.shared import registry

        with self._lock:
            try:
                return self._refresh(registry)
            finally:  # checked once the answer is in force (a loaded model, or the reason there is none)
                self._checked = True

    def _refresh(self, registry: Any) -> bool:
        try:
            version = registry.champion(self.name)
        except Exception as err:  # the registry is down: keep serving what is loaded
            self._reason = f"the model registry is unreachable ({type(err).__name__}: {err})"
            log.warning("champion check of %s failed: %s", self.name, err)
            return False
        if version is None:
            if self._current is None:
                self._reason = f"no version of {self.name!r} carries the 'champion' alias yet (train one first)"
            return False  # an alias removed under a loaded model: keep serving the last champion
        wanted = str(version.version)
        if self._current is not None and self._current.version == wanted:
            return False
        began = time.perf_counter()
        try:
            pyfunc = registry.load_model(registry.model_version_uri(self.name, wanted))
            extras = dict(self._prepare(pyfunc, str(version.run_id))) if self._prepare else {}
        except Exception as err:
            self._metrics.model_reloads.labels(self.name, "failed").inc()
            if self._current is None:
                self._reason = f"loading {self.name} v{wanted} failed ({type(err).__name__}: {err})"
            log.exception("loading %s v%s failed; still serving %s", self.name, wanted,
                          self._current.version if self._current else "nothing")
            return False
        old = self._current
        self._current = LoadedModel(self.name, wanted, str(version.run_id), pyfunc, extras)
        self._reason = "loaded"
        self._metrics.model_reloads.labels(self.name, "loaded").inc()
        self._metrics.set_model(self.name, old.version if old else None, wanted)
        log.info("serving %s v%s (was %s), loaded in %.2f s", self.name, wanted,
                 f"v{old.version}" if old else "nothing", time.perf_counter() - began)
        return True


class Champions:
    """The slots of every served model and the background thread that polls their aliases."""

    def __init__(self, slots: Mapping[str, ChampionSlot], poll_seconds: float) -> None:
        self.slots = dict(slots)
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getitem__(self, name: str) -> ChampionSlot:
        return self.slots[name]

    def refresh_all(self) -> None:
        for slot in self.slots.values():
            slot.refresh()

    def start(self) -> None:
        """Poll in a daemon thread: a first check of every model at once, then every ``poll_seconds``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="champion-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh_all()
            self._stop.wait(self.poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def status(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, slot in self.slots.items():
            current = slot.current
            out[name] = {"version": current.version if current else None, "status": slot.reason}
        return out
