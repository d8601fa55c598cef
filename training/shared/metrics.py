"""Binary classification metrics (scikit-learn), the numbers the conversion model is judged and gated by.

``accuracy`` is reported beside ``majority_accuracy``, the accuracy of always predicting the majority class
(at a 3% conversion rate, always "no"), because a 97% accurate conversion model can be worthless.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

BINARY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "base_rate", "accuracy", "majority_accuracy", "ece")


class SingleClassError(ValueError):
    """The labels hold one class only, so ranking metrics (ROC-AUC, PR-AUC) are undefined."""


def _check(y_true: np.ndarray | list, p: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    if y.dtype == bool:
        y = y.astype(np.int64)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.ndim != 1 or len(y) != len(p):
        raise ValueError(f"labels and probabilities differ in shape: {y.shape} vs {p.shape}")
    if len(y) == 0:
        raise ValueError("no rows to score")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1 or bool, found {np.unique(y)[:5]}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must be finite and within [0, 1]")
    if len(np.unique(y)) < 2:
        only = "positive" if y[0] == 1 else "negative"
        raise SingleClassError(
            f"the holdout's {len(y)} rows are all {only}: ROC-AUC and PR-AUC are undefined; "
            "widen the holdout window or check the labels"
        )
    return y.astype(np.int64), p


def expected_calibration_error(y_true: np.ndarray | list, p: np.ndarray | list, n_bins: int = 10) -> float:
    """Weighted mean |observed rate - mean predicted probability| over ``n_bins`` equal-width probability bins."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    filled = counts > 0
    return float(np.abs(observed[filled] - predicted[filled]).sum() / len(p))


def binary_classification_metrics(y_true: np.ndarray | list, p: np.ndarray | list) -> dict[str, float]:
    """All of :data:`BINARY_METRICS` for labels ``y_true`` (0/1 or bool) and predicted P(positive) ``p``.

    ``accuracy`` thresholds at 0.5. Raises :class:`SingleClassError` when ``y_true`` has one class only.
    """
    y, p = _check(y_true, p)
    base_rate = float(y.mean())
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": base_rate,
        "accuracy": float(accuracy_score(y, p >= 0.5)),
        "majority_accuracy": max(base_rate, 1.0 - base_rate),
        "ece": expected_calibration_error(y, p),
    }


_SCORERS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": lambda y, p: float(roc_auc_score(y, p)),
    "pr_auc": lambda y, p: float(average_precision_score(y, p)),
    "log_loss": lambda y, p: float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
    "brier": lambda y, p: float(brier_score_loss(y, p)),
    "ece": expected_calibration_error,
}


def binary_metric(name: str, y_true: np.ndarray | list, p: np.ndarray | list) -> float:
    """One metric by name (the gate's ``metric``), with the same checks as :func:`binary_classification_metrics`."""
    if name not in _SCORERS:
        raise KeyError(f"no binary metric {name!r}; the gate can use {', '.join(_SCORERS)}")
    y, p = _check(y_true, p)
    return _SCORERS[name](y, p)


def bootstrap_interval(statistic, n_rows: int, n_bootstrap: int, seed: int, level: float = 0.9) -> tuple[float, float]:
    """Percentile interval of ``statistic(rows)`` over ``n_bootstrap`` resamples of the row indices."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_rows, n_rows)) for _ in range(n_bootstrap)])
    values = values[np.isfinite(values)]
    alpha = (1.0 - level) / 2.0
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))
