"""The promotion power table (``simulator.power``) on a planted truth folder with known noise and effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from simulator.power import power_table, to_markdown


def _truth_folder(root: Path, n: int = 4000, sd: float = 20.0, effect: float = 3.0) -> Path:
    rng = np.random.default_rng(5)
    arm = rng.choice(["none", "pct10"], size=n)
    realized = rng.normal(10.0, sd, n) + np.where(arm == "pct10", effect, 0.0)
    uplift = pd.DataFrame({
        "offer_id": [f"F{i}" for i in range(n)],
        "segment": "occasional",
        "promotion_id": arm,
        "assignment": np.where(np.arange(n) % 10 == 0, "policy", "random"),  # policy offers never count
        "outcome_complete": np.arange(n) % 7 != 0,  # nor do open windows
        "delta_profit_none": 0.0,
        "delta_profit_pct10": effect,
        "realized_profit_10w": np.where(np.arange(n) % 7 != 0, realized, np.nan),
    })
    folder = root / "_truth"
    folder.mkdir(parents=True)
    uplift.to_parquet(folder / "promotion_uplift.parquet")
    coupons = {"none": {}, "pct10": {}}
    (folder / "truth.json").write_text(json.dumps({"promotion": {"coupons": coupons,
                                                                 "uplift_file": "promotion_uplift.parquet"}}))
    return root


def test_the_detectable_effect_follows_the_two_sample_formula(tmp_path: Path) -> None:
    [row] = power_table(_truth_folder(tmp_path), training_share=0.5)
    uplift = pd.read_parquet(tmp_path / "_truth" / "promotion_uplift.parquet")
    counted = uplift[(uplift.assignment == "random") & uplift.outcome_complete]
    assert row.offers == (counted.promotion_id == "pct10").sum()
    assert row.control_offers == (counted.promotion_id == "none").sum()
    n = 0.5 * min(row.offers, row.control_offers)
    z = norm.ppf(0.975) + norm.ppf(0.8)
    assert row.detectable == pytest.approx(z * row.noise_sd * np.sqrt(2.0 / n), rel=1e-3)
    assert row.noise_sd == pytest.approx(20.0, rel=0.05)
    assert row.planted == 3.0
    assert abs(row.observed - 3.0) < 3 * row.observed_se
    assert row.resolvable  # 3 EUR against about 2 EUR detectable with ~1,500 offers per arm
    assert "| occasional | pct10 |" in to_markdown([row])


def test_a_small_effect_is_not_resolvable(tmp_path: Path) -> None:
    [row] = power_table(_truth_folder(tmp_path, effect=0.5))
    assert not row.resolvable and row.detectable > 1.0
