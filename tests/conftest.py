"""Shared fixtures: simulated lakes, written once per test session (the simulator is deterministic)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three weeks of the tiny shop (a few thousand sessions): structure and coherence tests."""
    from simulator.shop import simulate

    out = tmp_path_factory.mktemp("tiny") / "raw"
    simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 21), out, seed=11, scale="tiny")
    return out


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six and a half weeks of the demo shop (about 120k sessions, 2.4M impressions): planted-effect tests."""
    from simulator.shop import simulate

    out = tmp_path_factory.mktemp("demo") / "raw"
    simulate(dt.date(2026, 1, 1), dt.date(2026, 2, 14), out, seed=7, scale="demo")
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public datasets beside the checkout; tests that need them skip where ../shared is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA
