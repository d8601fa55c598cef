"""The shared training loop: seeded and deterministic on CPU, early stopping, best weights; the grid expansion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.shared.trainer import FitResult, LoopConfig, TrainingData, expand_grid, fit


def _data(n: int, seed: int) -> TrainingData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    logits = x @ torch.tensor([1.5, -1.0, 0.5, 0.0, 0.0])
    y = (torch.rand(n, generator=g) < torch.sigmoid(logits)).float()
    return TrainingData((x,), y)


def _build() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1), nn.Flatten(0))


def _fit(config: LoopConfig) -> FitResult:
    return fit(_build, _data(2000, 1), _data(500, 2), nn.BCEWithLogitsLoss(), config, torch.device("cpu"))


def test_same_seed_same_weights_and_history() -> None:
    config = LoopConfig(learning_rate=0.01, batch_size=128, max_epochs=4, seed=3)
    a, b = _fit(config), _fit(config)
    assert [r.train_loss for r in a.history] == [r.train_loss for r in b.history]
    assert [r.val_loss for r in a.history] == [r.val_loss for r in b.history]
    for key, value in a.best_state.items():
        assert torch.equal(value, b.best_state[key])


def test_another_seed_gives_other_weights() -> None:
    a = _fit(LoopConfig(learning_rate=0.01, batch_size=128, max_epochs=2, seed=3))
    b = _fit(LoopConfig(learning_rate=0.01, batch_size=128, max_epochs=2, seed=4))
    assert not torch.equal(a.best_state["0.weight"], b.best_state["0.weight"])


def test_learns_and_keeps_the_best_validation_epoch() -> None:
    result = _fit(LoopConfig(learning_rate=0.05, batch_size=64, max_epochs=30, patience=2, seed=0))
    best = min(result.history, key=lambda r: r.val_loss)
    assert result.best_epoch == best.epoch and result.best_val_loss == best.val_loss
    assert result.history[0].val_loss > result.best_val_loss
    assert result.best_val_loss < 0.69  # better than a coin (ln 2)
    if result.stopped_early:
        assert len(result.history) == result.best_epoch + 2
    for key, value in result.model.state_dict().items():  # the returned module carries the best weights
        assert torch.equal(value, result.best_state[key])


def test_cpu_thread_setting_is_restored() -> None:
    before = torch.get_num_threads()
    _fit(LoopConfig(max_epochs=1, cpu_threads=1))
    assert torch.get_num_threads() == before


def test_mismatched_rows_are_rejected() -> None:
    with pytest.raises(ValueError, match="rows"):
        TrainingData((torch.zeros(3, 2),), torch.zeros(4))


def test_grid_lists_are_values_to_try() -> None:
    grid = expand_grid(
        {"hidden_sizes": [[64, 32], [32]], "learning_rate": [0.003, 0.001], "dropout": 0.1},
        nested=["hidden_sizes"],
    )
    assert len(grid) == 4
    assert grid[0] == {"hidden_sizes": [64, 32], "learning_rate": 0.003, "dropout": 0.1}
    assert {tuple(g["hidden_sizes"]) for g in grid} == {(64, 32), (32,)}


def test_a_flat_nested_value_is_one_choice() -> None:
    assert expand_grid({"hidden_sizes": [64, 32]}, nested=["hidden_sizes"]) == [{"hidden_sizes": [64, 32]}]


def test_an_empty_list_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        expand_grid({"learning_rate": []})
