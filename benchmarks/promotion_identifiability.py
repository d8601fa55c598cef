"""How much of the promotion oracle can any policy reach that sees only the customer features?

The oracle of the simulated shop picks, per offer, the coupon with the highest planted incremental profit; that
profit depends on the customer's latent segment (and visit rate). A policy sees only the ``customer_history``
features. This script separates the two reasons a policy can fall short of the oracle, on one promotion training
set and the truth file of the lake it came from:

* **power**: with the segment known, the per-segment difference in realized mean profit between each coupon and
  ``none`` on the training offers (judged on mean - z x se) picks a coupon per segment; its planted value on the
  held-out offers says whether the randomized offers resolve the effects;
* **identifiability**: a gradient-boosted classifier predicts the segment from the features (trained on the
  training offers); applying the *exact planted* segment effects to its posterior (the Bayes choice) is the best a
  feature-based policy could do even with no estimation noise in the effects;
* the shipped model: the registered version's choices, if ``--model-uri`` is given.

Usage (after ``pytest tests/model/test_promotion_uplift.py`` or a nightly on a simulated lake)::

    python benchmarks/promotion_identifiability.py \\
        --training-set <lake>/training_sets/promotion/dt=<R>/training_set.parquet \\
        --raw <lake>/raw [--model-uri models:/promotion/1]
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from config.models import get_models_config
from training.promotion.model import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    randomized_offers,
    read_training_set,
    split_customers,
)
from training.promotion.pyfunc import NO_COUPON


def share_of_oracle(deltas: np.ndarray, chosen_index: np.ndarray) -> float:
    """Planted profit of the chosen arms over the oracle's, both summed over the offers."""
    return float(deltas[np.arange(len(deltas)), chosen_index].sum() / deltas.max(axis=1).sum())


@click.command()
@click.option("--training-set", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--raw", "raw_root", type=click.Path(path_type=Path, exists=True), required=True,
              help="Raw root of the simulated lake the training set came from (holds _truth/).")
@click.option("--model-uri", default=None, help="Also score this registered promotion model (MLflow URI).")
def main(training_set: Path, raw_root: Path, model_uri: str | None) -> None:
    """Print the power and identifiability ceilings of the promotion policy against the planted oracle."""
    promo = get_models_config().model("promotion").promotion
    coupons = list(promo.coupons)
    arms = [NO_COUPON, *coupons]
    frame = randomized_offers(read_training_set(training_set), coupons)
    train, validation, holdout = split_customers(frame, promo.holdout_share)
    fit_rows = pd.concat([train, validation], ignore_index=True)
    truth = pd.read_parquet(raw_root / "_truth" / "promotion_uplift.parquet").set_index("offer_id")
    fit_rows["segment"] = truth.loc[fit_rows["offer_id"], "segment"].to_numpy()
    held = truth.loc[holdout["offer_id"]].reset_index()
    deltas = held[[f"delta_profit_{a}" for a in arms]].to_numpy()
    click.echo(f"{len(fit_rows):,} training and {len(held):,} held-out randomized offers; oracle "
               f"{deltas.max(axis=1).mean():.2f} EUR per held-out offer")
    for arm in arms[1:]:
        everyone = np.full(len(held), arms.index(arm))
        click.echo(f"  everyone {arm}: {share_of_oracle(deltas, everyone):.1%} of the oracle")

    stats = fit_rows.groupby(["segment", "promotion_id"])["margin_10w"].agg(["mean", "sem"]).unstack()
    diff = stats["mean"][coupons].sub(stats["mean"][NO_COUPON], axis=0)
    se = np.sqrt(stats["sem"][coupons].pow(2).add(stats["sem"][NO_COUPON].pow(2), axis=0))
    for z in (0.0, 1.0, 2.0):
        bound = diff - z * se
        pick = {s: (bound.loc[s].idxmax() if bound.loc[s].max() > 0 else NO_COUPON) for s in bound.index}
        index = held["segment"].map(pick).map(arms.index).to_numpy()
        click.echo(f"power, segment known, difference in means (z = {z:.0f}): {share_of_oracle(deltas, index):.1%} "
                   f"{pick}")

    columns = list(FEATURE_COLUMNS)

    def features(rows: pd.DataFrame) -> pd.DataFrame:  # the string columns as categories (sklearn's from_dtype)
        out = rows[columns].copy()
        for c in CATEGORICAL_FEATURES:
            out[c] = pd.Categorical(out[c], categories=sorted(fit_rows[c].dropna().unique()))
        return out

    classifier = HistGradientBoostingClassifier(max_iter=200, random_state=0, categorical_features="from_dtype").fit(
        features(fit_rows), fit_rows["segment"])
    predicted = classifier.predict(features(holdout))
    click.echo(f"identifiability: segment accuracy {np.mean(predicted == held['segment'].to_numpy()):.1%}")
    click.echo(pd.crosstab(held["segment"].to_numpy(), predicted, normalize="index",
                           rownames=["segment"], colnames=["predicted"]).round(2).to_string())
    planted = held.groupby("segment")[[f"delta_profit_{a}" for a in arms]].mean().loc[classifier.classes_]
    bayes = (classifier.predict_proba(features(holdout)) @ planted.to_numpy()).argmax(axis=1)
    click.echo(f"identifiability ceiling (exact planted effects x segment posterior): "
               f"{share_of_oracle(deltas, bayes):.1%}")

    if model_uri:
        from training.shared import registry

        model = registry.load_model(model_uri)
        chosen = pd.DataFrame(model.predict(registry.model_input(model, holdout)))["best_coupon"]
        index = chosen.map(arms.index).to_numpy()
        click.echo(f"{model_uri}: {share_of_oracle(deltas, index):.1%} of the oracle, coupons to "
                   f"{np.mean(chosen != NO_COUPON):.1%}")


if __name__ == "__main__":
    main()
