"""Fixtures shared by the model tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import get_settings


@pytest.fixture(scope="module")
def var_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private var root (MLflow store, artifacts, reports) for one test module."""
    root = tmp_path_factory.mktemp("var")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STOREFRONT_VAR_ROOT", str(root))
        get_settings.cache_clear()
        yield root
    get_settings.cache_clear()
