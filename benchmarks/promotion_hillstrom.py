"""The promotion uplift network on a real randomized e-mail test: Hillstrom's MineThatData challenge (2008).

64,000 customers were randomized to a men's e-mail, a women's e-mail or no e-mail; the outcomes are spend (USD,
two weeks) and conversion. The two e-mails are the "coupons" and no e-mail the control. Both models see one fixed
split (60/20/20 train/validation/test, stratified by arm, seed 7); the test rows are scored once.

* ours: :func:`training.promotion.model.fit_uplift_model`, the promotion model's multi-head network (shared trunk, one
  uplift head per e-mail) with the config's hyperparameters and ensemble, fitted once on spend and once on
  conversion;
* baseline: scikit-uplift's ``TwoModels`` (one LightGBM model on the treated rows, one on the controls), fitted
  per e-mail against the controls, on train + validation (LightGBM with its defaults needs no early stopping set).

Printed per outcome and e-mail, on the test rows of that e-mail or no e-mail: AUUC (area under the uplift curve
per customer, :mod:`training.promotion.uplift_metrics`) and AUUC above random targeting; for conversion also
scikit-uplift's
normalized ``qini_auc_score`` and ``uplift_auc_score``. For the policy "the e-mail with the larger predicted spend
uplift, none when neither pays" of each model: AUUC of the policy curve and the incremental spend per 1,000
customers against sending nothing (90% bootstrap interval), beside everyone getting each e-mail.

    python benchmarks/promotion_hillstrom.py
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from config.models import get_models_config
from config.settings import REPO_ROOT
from training.promotion.model import fit_uplift_model
from training.promotion.pyfunc import NO_COUPON, CouponChoice
from training.promotion.uplift_metrics import auuc, auuc_gain, policy_curve, policy_value
from training.shared.metrics import bootstrap_interval

DATA_FILE = REPO_ROOT.parent / "shared" / "data" / "hillstrom_email_minethatdata" / "hillstrom.csv"
ARMS = {"Mens E-Mail": "mens", "Womens E-Mail": "womens", "No E-Mail": NO_COUPON}
EMAILS = ["mens", "womens"]
NUMERIC = ["recency", "history", "mens", "womens", "newbie"]
CATEGORICAL = ["history_segment", "zip_code", "channel"]
OUTCOMES = ("spend", "conversion")


def load(path=DATA_FILE) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["promotion_id"] = frame["segment"].map(ARMS)
    if frame["promotion_id"].isna().any():
        raise ValueError(f"unknown arms in {path}: {sorted(set(frame['segment']) - set(ARMS))}")
    return frame


def split(frame: pd.DataFrame, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rest, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=frame["promotion_id"])
    train, validation = train_test_split(rest, test_size=0.25, random_state=seed, stratify=rest["promotion_id"])
    return train.reset_index(drop=True), validation.reset_index(drop=True), test.reset_index(drop=True)


def _lightgbm_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    x = frame[NUMERIC + CATEGORICAL].copy()
    for c in CATEGORICAL:
        x[c] = x[c].astype("category")
    return x


def baseline_uplift(train: pd.DataFrame, test: pd.DataFrame, outcome: str, seed: int) -> np.ndarray:
    """scikit-uplift TwoModels with LightGBM, one per e-mail against the controls: (test rows, e-mails)."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from sklift.models import TwoModels

    out = []
    for email in EMAILS:
        rows = train[train["promotion_id"].isin([email, NO_COUPON])]
        make = (lambda: LGBMClassifier(random_state=seed, verbose=-1)) if outcome == "conversion" else (
            lambda: LGBMRegressor(random_state=seed, verbose=-1))
        model = TwoModels(estimator_trmnt=make(), estimator_ctrl=make(), method="vanilla")
        model.fit(_lightgbm_matrix(rows), rows[outcome].to_numpy(), (rows["promotion_id"] == email).astype(int))
        out.append(model.predict(_lightgbm_matrix(test)))
    return np.column_stack(out)


def ours_uplift(train: pd.DataFrame, validation: pd.DataFrame, test: pd.DataFrame, outcome: str) -> np.ndarray:
    config = get_models_config().model("promotion")
    promo = config.promotion
    choice = CouponChoice(tuple(EMAILS), tuple(EMAILS), 0.0, 0.0)
    model, _, _ = fit_uplift_model(train, validation, EMAILS, dict(config.hyperparameters),
                                   ensemble=promo.ensemble if promo else 1, choice=choice, numeric_columns=NUMERIC,
                                   categorical_columns=CATEGORICAL, outcome=outcome)
    return model.uplift(test)


def per_email(test: pd.DataFrame, uplift: np.ndarray, outcome: str) -> dict[str, dict[str, float]]:
    from sklift.metrics import qini_auc_score, uplift_auc_score

    out = {}
    for i, email in enumerate(EMAILS):
        rows = test["promotion_id"].isin([email, NO_COUPON]).to_numpy()
        y, score = test.loc[rows, outcome].to_numpy(), uplift[rows, i]
        treated = (test.loc[rows, "promotion_id"] == email).astype(int).to_numpy()
        figures = {"auuc": auuc(y, score, treated), "auuc_gain": auuc_gain(y, score, treated)}
        if outcome == "conversion":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # sklift calls sklearn's deprecated stable_cumsum
                figures["qini_auc_sklift"] = qini_auc_score(y, score, treated)
                figures["uplift_auc_sklift"] = uplift_auc_score(y, score, treated)
        out[email] = figures
    return out


def policy_figures(test: pd.DataFrame, uplift: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, float]:
    chosen, gain = CouponChoice(tuple(EMAILS), tuple(EMAILS), 0.0, 0.0).choose(uplift)
    y, arm = test["spend"].to_numpy(np.float64), test["promotion_id"].to_numpy(dtype=object)
    low, high = bootstrap_interval(lambda i: policy_value(y[i], arm[i], chosen[i]), len(y), n_bootstrap, seed)
    return {
        "policy_auuc": policy_curve(y, arm, chosen, gain).auuc,
        "per_1000": 1000 * policy_value(y, arm, chosen), "low": 1000 * low, "high": 1000 * high,
        "emailed_share": float(np.mean(chosen != NO_COUPON)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bootstrap", type=int, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    frame = load()
    train, validation, test = split(frame, args.seed)
    print(f"Hillstrom: {len(frame):,} customers; train {len(train):,}, validation {len(validation):,}, "
          f"test {len(test):,}; arms {frame['promotion_id'].value_counts().to_dict()}")
    uplifts: dict[tuple[str, str], np.ndarray] = {}
    for outcome in OUTCOMES:
        began = time.perf_counter()
        uplifts[("ours", outcome)] = ours_uplift(train, validation, test, outcome)
        ours_s = time.perf_counter() - began
        began = time.perf_counter()
        uplifts[("two-model LightGBM", outcome)] = baseline_uplift(pd.concat([train, validation]), test, outcome,
                                                                    args.seed)
        base_s = time.perf_counter() - began
        print(f"\n{outcome}: fitted ours in {ours_s:.1f} s, baseline in {base_s:.1f} s (test rows of the e-mail or "
              "no e-mail)")
        rows = []
        for name in ("ours", "two-model LightGBM"):
            for email, figures in per_email(test, uplifts[(name, outcome)], outcome).items():
                rows.append({"model": name, "email": email, **{k: round(v, 5) for k, v in figures.items()}})
        print(pd.DataFrame(rows).to_string(index=False))
    y, arm = test["spend"].to_numpy(np.float64), test["promotion_id"].to_numpy(dtype=object)
    print("\npolicy on spend (e-mail with the larger predicted uplift, none when neither pays), per 1,000 customers:")
    rows = []
    for name in ("ours", "two-model LightGBM"):
        f = policy_figures(test, uplifts[(name, "spend")], args.bootstrap, args.seed)
        rows.append({"policy": name, "policy AUUC": round(f["policy_auuc"], 4),
                     "USD per 1,000": f"{f['per_1000']:+.0f} [{f['low']:+.0f}, {f['high']:+.0f}]",
                     "e-mailed": f"{f['emailed_share']:.0%}"})
    for email in EMAILS:
        blanket = np.full(len(test), email, dtype=object)
        value = policy_value(y, arm, blanket)
        low, high = bootstrap_interval(lambda i, b=blanket: policy_value(y[i], arm[i], b[i]), len(y), args.bootstrap,
                                       args.seed)
        rows.append({"policy": f"everyone gets {email}", "policy AUUC": round(value / 2, 4),
                     "USD per 1,000": f"{1000 * value:+.0f} [{1000 * low:+.0f}, {1000 * high:+.0f}]",
                     "e-mailed": "100%"})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
