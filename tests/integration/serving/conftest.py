"""Fixtures of the serving tests: one stack (features in Feast, models in MLflow) for the whole package."""

from __future__ import annotations

import pandas as pd
import pytest
from serving_stack import LAST_DAY, ServingStack, build_stack, settings_env

from config.settings import Settings, get_settings


@pytest.fixture(scope="package")
def serving_stack(tmp_path_factory: pytest.TempPathFactory) -> ServingStack:
    root = tmp_path_factory.mktemp("serving")
    # the environment points at the stack only while it is built: tests and module fixtures set it themselves
    # (a directory without __init__.py makes "package" scope the session's, so nothing may stay set here)
    with pytest.MonkeyPatch.context() as mp:
        settings_env(mp, root / "var", root / "lake", profile="embedded")
        stack = build_stack(root)
    get_settings.cache_clear()
    return stack


@pytest.fixture
def stack_settings(serving_stack: ServingStack, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The embedded settings of the stack, with a fast champion poll and log flush, for one test."""
    return settings_env(
        monkeypatch, serving_stack.var_root, serving_stack.lake_root, profile="embedded",
        serving_poll_seconds="0.2", serving_log_flush_seconds="0.2",
    )


@pytest.fixture(scope="package")
def sessions(serving_stack: ServingStack) -> pd.DataFrame:
    """The tiny shop's sessions of the last day: real KPI values to send."""
    from feature_repo.contract.lake import read_table
    from feature_repo.contract.schema import SESSIONS

    frame = read_table(serving_stack.raw_root, SESSIONS).to_pandas()
    return frame[frame["started_at"].dt.date == LAST_DAY].reset_index(drop=True)
