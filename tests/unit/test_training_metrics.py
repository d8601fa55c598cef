"""Binary classification metrics: known values, the majority baseline, calibration, and a one-class holdout."""

from __future__ import annotations

import numpy as np
import pytest

from training.shared.metrics import (
    BINARY_METRICS,
    SingleClassError,
    binary_classification_metrics,
    binary_metric,
    expected_calibration_error,
)


def test_perfect_ranking() -> None:
    m = binary_classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert set(m) == set(BINARY_METRICS)
    assert m["roc_auc"] == 1.0 and m["pr_auc"] == 1.0 and m["accuracy"] == 1.0
    assert m["base_rate"] == 0.5 and m["majority_accuracy"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)


def test_accuracy_is_reported_beside_always_no() -> None:
    y = np.r_[np.zeros(97), np.ones(3)].astype(bool)
    m = binary_classification_metrics(y, np.full(100, 0.03))
    assert m["accuracy"] == m["majority_accuracy"] == pytest.approx(0.97)
    assert m["roc_auc"] == 0.5
    assert m["ece"] == pytest.approx(0.0)


def test_expected_calibration_error() -> None:
    # every prediction 0.9 in one bin, observed rate 0.5: ECE 0.4
    assert expected_calibration_error([0, 1, 0, 1], [0.9, 0.9, 0.9, 0.9]) == pytest.approx(0.4)


def test_single_class_holdout_is_a_clear_error() -> None:
    with pytest.raises(SingleClassError, match="all negative"):
        binary_classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(SingleClassError):
        binary_metric("roc_auc", [1, 1], [0.1, 0.2])


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [([0, 1], [0.5], "shape"), ([0, 2], [0.1, 0.2], "0/1"), ([0, 1], [0.1, 1.2], "within"), ([], [], "no rows")],
)
def test_bad_inputs_are_rejected(y: list, p: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        binary_classification_metrics(y, p)


def test_unknown_gate_metric() -> None:
    with pytest.raises(KeyError, match="ndcg"):
        binary_metric("ndcg", [0, 1], [0.1, 0.9])
