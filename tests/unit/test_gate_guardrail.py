"""The gate's optional guardrail (``GateConfig.guardrail``): config validation and the verdict it adds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.models import GateConfig, GuardrailConfig
from training.shared.registry import _check_guardrail


def _gate(**guardrail) -> GateConfig:
    return GateConfig(metric="ndcg@20", floor=0.3, min_improvement=0.0,
                      guardrail=GuardrailConfig(metric="ndcp@20", **guardrail))


def test_a_gate_without_guardrail_still_validates_as_before() -> None:
    gate = GateConfig.model_validate({"metric": "roc_auc", "floor": 0.6, "min_improvement": 0.002})
    assert gate.guardrail is None
    with pytest.raises(ValidationError):
        GateConfig.model_validate({"metric": "x", "floor": 0, "min_improvement": 0, "guardrail": {"metric": "y"}})
    with pytest.raises(ValidationError):
        GuardrailConfig(metric="y", max_loss=-0.1)


@pytest.mark.parametrize(
    ("direction", "challenger", "champion", "holds"),
    [
        ("higher_is_better", 0.50, 0.505, True),  # loses 0.005 <= 0.01
        ("higher_is_better", 0.50, 0.52, False),  # loses 0.02
        ("higher_is_better", 0.60, 0.52, True),  # gains
        ("lower_is_better", 0.205, 0.20, True),
        ("lower_is_better", 0.25, 0.20, False),
    ],
)
def test_guardrail_allows_at_most_max_loss(direction: str, challenger: float, champion: float, holds: bool) -> None:
    gate = _gate(direction=direction, max_loss=0.01)
    assert gate.guardrail is not None and gate.guardrail.holds(challenger, champion) is holds
    promoted, reason = _check_guardrail(gate, True, "ndcg@20 passes", challenger, champion)
    assert promoted is holds
    assert reason.startswith("ndcg@20 passes; guardrail ndcp@20")
    assert ("within the allowed loss" in reason) is holds


def test_guardrail_never_promotes_what_the_gate_rejected_and_passes_a_first_model() -> None:
    gate = _gate(max_loss=0.01)
    assert _check_guardrail(gate, False, "below the floor", 0.9, 0.1)[0] is False
    promoted, reason = _check_guardrail(gate, True, "first", 0.4, None)
    assert promoted and "nothing to guard" in reason
    assert _check_guardrail(gate, True, "ok", float("nan"), 0.4)[0] is False
