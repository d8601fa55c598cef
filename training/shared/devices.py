"""Which accelerator a training run uses: Gaudi (``hpu``) > GPU (``cuda``) > CPU.

Every model asks :func:`select_device` once per process; the answer is cached and logged, so a worker's log says
what it trained on. An explicit preference that the machine cannot honour is an error, never a silent fallback:
a job routed to a Gaudi queue that lands on a CPU box should fail loudly.
"""

from __future__ import annotations

import importlib
import logging
from functools import cache

import torch

from config.settings import get_settings

logger = logging.getLogger(__name__)

DEVICE_KINDS = ("auto", "hpu", "cuda", "cpu")


class DeviceUnavailableError(RuntimeError):
    """An explicitly requested training device is not usable on this machine."""


def hpu_available() -> bool:
    """True when Habana's PyTorch bridge imports and reports at least one Gaudi card."""
    try:
        habana = importlib.import_module("habana_frameworks.torch")
    except ImportError:
        return False
    hpu = getattr(habana, "hpu", None)
    is_available = getattr(hpu, "is_available", None)
    return bool(is_available()) if callable(is_available) else True


def cuda_available() -> bool:
    return torch.cuda.is_available()


def select_device(preference: str | None = None) -> torch.device:
    """The device to train on.

    Args:
        preference: ``auto`` (hpu, then cuda, then cpu), or one of ``hpu``, ``cuda``, ``cpu``
            [default: ``settings.device``, i.e. ``$STOREFRONT_DEVICE``].

    Raises:
        DeviceUnavailableError: ``hpu`` or ``cuda`` was asked for and is not available here.
        ValueError: ``preference`` is not a device kind.
    """
    preference = (preference or get_settings().device).lower()
    if preference not in DEVICE_KINDS:
        raise ValueError(f"unknown training device {preference!r}; expected one of {', '.join(DEVICE_KINDS)}")
    return _resolve(preference)


@cache
def _resolve(preference: str) -> torch.device:
    """Resolve once per process and preference (probing Habana's bridge is slow, and one log line is enough)."""
    has_hpu, has_cuda = hpu_available(), cuda_available()
    if preference == "auto":
        kind = "hpu" if has_hpu else "cuda" if has_cuda else "cpu"
    elif preference == "hpu" and not has_hpu:
        raise DeviceUnavailableError(
            "training device 'hpu' was requested but habana_frameworks.torch does not import or sees no Gaudi "
            "card; install the Habana PyTorch bridge or set STOREFRONT_DEVICE=auto"
        )
    elif preference == "cuda" and not has_cuda:
        raise DeviceUnavailableError(
            "training device 'cuda' was requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); set STOREFRONT_DEVICE=auto or cpu"
        )
    else:
        kind = preference
    device = torch.device(kind)
    logger.info(
        "training device: %s%s (preference %s; hpu available: %s, cuda available: %s)",
        device,
        _describe(device),
        preference,
        has_hpu,
        has_cuda,
    )
    return device


def _describe(device: torch.device) -> str:
    """The card's name for the log line; empty when the runtime cannot say."""
    try:
        if device.type == "cuda":
            return f" [{torch.cuda.get_device_name(device)}]"
    except (RuntimeError, AssertionError):  # torch without CUDA raises AssertionError here
        return ""
    return ""


def clear_device_cache() -> None:
    """Forget the cached choice (tests; a process that changes its environment)."""
    _resolve.cache_clear()
