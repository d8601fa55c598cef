"""Position propensities: how likely a visitor is to examine the item at each position of a list.

Estimated from the shop's *randomized* lists (``impressions.ranker == 'randomized'``): there the product at a
position is independent of the position, so under the examination hypothesis
``P(click | position k) = theta_k * E[attractiveness]`` the click rate by position is proportional to the
examination probability ``theta_k``. Normalised at position 1, ``theta_1 = 1``.

The raw ratios are noisy where few randomized lists are that long; a weighted isotonic (non-increasing) fit of the
click rates by position (weights = impressions) smooths them without assuming a functional form. Positions
beyond the last one seen in randomized lists take the last estimate.

Plain numpy and scikit-learn (no Spark): the ``product_ranking`` Spark build collects its per-position counts to
the driver and calls :func:`estimate_propensities`, and training calls it on pandas counts, so the feature
debiasing and the training weights use one estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANDOMIZED_RANKER = "randomized"
MIN_PROPENSITY = 1e-3  # a floor so that 1 / theta stays finite where a deep position had no click at all


@dataclass(frozen=True)
class PositionPropensities:
    """``theta[k - 1]`` for 1-based position ``k``, normalised so that position 1 is 1, with the counts behind it."""

    theta: np.ndarray  # smoothed (isotonic, non-increasing), shape (max_position,)
    raw: np.ndarray  # click rate at k / click rate at 1, NaN where position k had no randomized impression
    impressions: np.ndarray  # randomized impressions per position
    clicks: np.ndarray  # their clicks

    @property
    def max_position(self) -> int:
        return len(self.theta)

    def at(self, position: np.ndarray) -> np.ndarray:
        """theta for 1-based positions; positions beyond the estimated range take the last value."""
        index = np.clip(np.asarray(position, dtype=np.int64), 1, self.max_position) - 1
        return self.theta[index]

    def to_dict(self) -> dict[str, list[float]]:
        return {
            "theta": [round(float(v), 6) for v in self.theta],
            "raw": [None if np.isnan(v) else round(float(v), 6) for v in self.raw],  # type: ignore[misc]
            "impressions": [int(v) for v in self.impressions],
            "clicks": [int(v) for v in self.clicks],
        }


def estimate_propensities(
    positions: np.ndarray, impressions: np.ndarray, clicks: np.ndarray, max_position: int | None = None
) -> PositionPropensities:
    """Propensities from randomized lists' impression and click counts per 1-based position.

    Args:
        positions, impressions, clicks: one entry per position (any order; repeated positions are summed).
        max_position: length of the returned curve [default: the largest position given].

    Raises ValueError when position 1 has no click (nothing to normalise by).
    """
    from sklearn.isotonic import IsotonicRegression

    positions = np.asarray(positions, dtype=np.int64)
    if len(positions) == 0 or positions.min() < 1:
        raise ValueError("propensities need counts for 1-based positions, and at least one")
    size = int(max_position or positions.max())
    n = np.bincount(positions - 1, weights=np.asarray(impressions, np.float64), minlength=size)[:size]
    c = np.bincount(positions - 1, weights=np.asarray(clicks, np.float64), minlength=size)[:size]
    if n[0] <= 0 or c[0] <= 0:
        raise ValueError("no randomized click at position 1: position propensities cannot be normalised")
    seen = n > 0
    rate = np.divide(c, n, out=np.full(size, np.nan), where=seen)
    fitted_seen = IsotonicRegression(increasing=False, y_min=0.0).fit(
        np.flatnonzero(seen) + 1, rate[seen], sample_weight=n[seen]
    ).predict(np.flatnonzero(seen) + 1)
    fitted = np.empty(size)
    fitted[seen] = fitted_seen
    # positions with no randomized impression take the value of the nearest seen position before them
    last = fitted_seen[0]
    for k in range(size):
        if seen[k]:
            last = fitted[k]
        else:
            fitted[k] = last
    theta = np.clip(fitted / fitted[0], MIN_PROPENSITY, 1.0)
    return PositionPropensities(
        theta=theta, raw=rate / rate[0], impressions=n.astype(np.int64), clicks=c.astype(np.int64)
    )
