"""Device selection: CPU here (no Gaudi, no GPU on the CI machine); an explicit device that is missing fails."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from config.settings import get_settings
from training.shared import devices


@pytest.fixture(autouse=True)
def _fresh_choice() -> Iterator[None]:
    devices.clear_device_cache()
    get_settings.cache_clear()
    yield
    devices.clear_device_cache()
    get_settings.cache_clear()


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend neither Habana's bridge nor CUDA is there, whatever this machine has."""
    monkeypatch.setattr(devices, "hpu_available", lambda: False)
    monkeypatch.setattr(devices, "cuda_available", lambda: False)


def test_auto_chooses_cpu_without_accelerators(cpu_only: None) -> None:
    assert devices.select_device("auto") == torch.device("cpu")


def test_default_preference_comes_from_settings(cpu_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOREFRONT_DEVICE", "cpu")
    assert devices.select_device() == torch.device("cpu")


def test_this_machine_trains_on_what_it_has() -> None:
    has_habana = importlib.util.find_spec("habana_frameworks") is not None
    expected = "hpu" if has_habana else "cuda" if torch.cuda.is_available() else "cpu"
    assert devices.select_device("auto").type == expected


@pytest.mark.parametrize("kind", ["cuda", "hpu"])
def test_unavailable_explicit_device_raises(cpu_only: None, kind: str) -> None:
    with pytest.raises(devices.DeviceUnavailableError, match=f"'{kind}' was requested"):
        devices.select_device(kind)


def test_unknown_device_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown training device 'tpu'"):
        devices.select_device("tpu")


def test_available_accelerators_are_preferred_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cuda_available", lambda: True)
    monkeypatch.setattr(devices, "hpu_available", lambda: False)
    assert devices.select_device("auto").type == "cuda"
    devices.clear_device_cache()
    monkeypatch.setattr(devices, "hpu_available", lambda: True)
    assert devices.select_device("auto").type == "hpu"


def test_choice_is_made_once(cpu_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(devices, "cuda_available", lambda: calls.append(1) or False)
    devices.select_device("auto")
    devices.select_device("auto")
    assert len(calls) == 1


@pytest.mark.parametrize("queue", ["cuda", "hpu"])
def test_a_training_task_on_a_queue_its_worker_cannot_serve_fails_before_reading_data(
    cpu_only: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, queue: str
) -> None:
    """Issue 19: routed to the wrong host, the task names the queue and the device, and reads nothing first."""
    import datetime as dt

    from training.shared import pipeline

    monkeypatch.setenv("STOREFRONT_TRAINING_QUEUE", queue)
    missing = tmp_path / "no-such-training-set.parquet"  # a read would fail differently (FileNotFoundError)
    with pytest.raises(devices.DeviceUnavailableError, match=f"routed to the '{queue}' queue.*no {queue} device"):
        pipeline.train_challenger("conversion", missing, dt.date(2026, 1, 31))


def test_the_cpu_queue_trains_on_any_worker(cpu_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.shared import pipeline

    monkeypatch.setenv("STOREFRONT_TRAINING_QUEUE", "cpu")
    pipeline.check_queue_device("conversion")  # no error


def test_a_tracking_server_that_is_down_fails_the_task_before_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 19: the error names the server; nothing is read, trained or registered."""
    import datetime as dt
    import socket

    from training.shared import pipeline
    from training.shared.registry import TrackingServerUnavailable

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STOREFRONT_MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("STOREFRONT_TRAINING_QUEUE", "cpu")
    with pytest.raises(TrackingServerUnavailable, match=f"http://127.0.0.1:{port} does not answer"):
        pipeline.train_challenger("conversion", tmp_path / "no-such-training-set.parquet", dt.date(2026, 1, 31))
