"""The network building block of the models that are PyTorch networks (conversion, ranking, promotion): torch only.

A stack of ``[Linear -> ReLU -> Dropout]`` per hidden size (:func:`hidden_layers`), and :class:`ScoreMLP`, that stack
followed by one output per row. The pyfuncs import it, and it is logged with each of their models through MLflow's
``code_paths`` (:data:`CODE_PATH`): MLflow puts the logged copy on ``sys.path`` as the top-level module ``nets``,
so a logged model loads where this project is not installed. For that reason this file imports torch and nothing
else, and the parameter names (``net.0.weight``, ``trunk.0.weight``, ...) stay as they are: a network saved by a
model logged before this module existed loads into the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

CODE_PATH = Path(__file__)  # what a torch model logs with ``code_paths``


def hidden_layers(n_features: int, hidden_sizes: Sequence[int], dropout: float = 0.0) -> tuple[list[nn.Module], int]:
    """``[Linear -> ReLU -> Dropout]`` per hidden size, and the width of the last one (``n_features`` if none)."""
    layers: list[nn.Module] = []
    width = int(n_features)
    for size in hidden_sizes:
        layers += [nn.Linear(width, int(size)), nn.ReLU(), nn.Dropout(float(dropout))]
        width = int(size)
    return layers, width


class ScoreMLP(nn.Module):
    """The hidden layers, then one output per row: ``(..., n_features)`` in, ``(...)`` out.

    Conversion reads the output as a logit per session; ranking as a score per item, so a padded batch of lists
    ``(B, L, F)`` gives ``(B, L)``.
    """

    def __init__(self, n_features: int, hidden_sizes: Sequence[int], dropout: float = 0.0) -> None:
        super().__init__()
        layers, width = hidden_layers(n_features, hidden_sizes, dropout)
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)
