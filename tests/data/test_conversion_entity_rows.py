"""The conversion training set's entity rows: every session of the window with its two funnel labels."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest

from feature_repo.contract.lake import read_table
from feature_repo.contract.schema import IMPRESSIONS, SESSIONS

LAST_DAY = dt.date(2026, 1, 21)  # the tiny lake's last day


def _entity_rows(lake_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, days: int) -> pd.DataFrame:
    from config.settings import get_settings
    from training.conversion.data import conversion_entity_rows

    (tmp_path / "lake").mkdir(parents=True)
    (tmp_path / "lake" / "raw").symlink_to(lake_raw, target_is_directory=True)
    monkeypatch.setenv("STOREFRONT_LAKE_ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    try:
        return conversion_entity_rows(LAST_DAY, days)
    finally:
        get_settings.cache_clear()


def test_every_session_has_its_basket_label_from_the_impressions(
    tiny_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _entity_rows(tiny_lake, tmp_path, monkeypatch, 7)
    sessions = read_table(tiny_lake, SESSIONS).to_pandas()
    window = sessions[sessions["started_at"].dt.date > LAST_DAY - dt.timedelta(days=7)]
    assert sorted(rows["session_id"]) == sorted(window["session_id"])
    impressions = read_table(tiny_lake, IMPRESSIONS, columns=["session_id", "added_to_cart"]).to_pandas()
    carted = set(impressions.loc[impressions["added_to_cart"], "session_id"])
    expected = rows["session_id"].isin(carted)
    pd.testing.assert_series_equal(rows["added_to_cart"], expected, check_names=False)
    assert rows["added_to_cart"].dtype == bool and 0 < rows["added_to_cart"].mean() < 1
    assert not (rows["converted"] & ~rows["added_to_cart"]).any()  # no order without a basket


def test_a_day_without_impressions_is_left_out_with_a_warning(
    tiny_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    lake = tmp_path / "copy"
    shutil.copytree(tiny_lake, lake)
    gone = LAST_DAY - dt.timedelta(days=2)
    shutil.rmtree(lake / "impressions" / f"dt={gone}")
    with caplog.at_level("WARNING"):
        rows = _entity_rows(lake, tmp_path, monkeypatch, 7)
    assert gone not in set(rows["event_timestamp"].dt.date) and len(set(rows["event_timestamp"].dt.date)) == 6
    assert str(gone) in caplog.text and "no basket label" in caplog.text
    shutil.rmtree(lake / "impressions" / f"dt={LAST_DAY}")
    with pytest.raises(FileNotFoundError, match="no raw impressions partition for 2026-01-21"):
        _entity_rows(lake, tmp_path / "again", monkeypatch, 7)
