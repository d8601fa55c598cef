"""The training loop every model shares: seeded minibatch training with early stopping on a validation loss.

A model module hands over a factory for its ``nn.Module``, tensors and a loss; the loop seeds torch, numpy and
``random`` *before* building the module (so the initial weights are part of what the seed decides), moves each
minibatch to the device, logs one line per epoch and returns the weights of the best validation epoch. On CPU
the same seed gives the same weights and history, bit for bit.

The small hyperparameter search the models run over ``config/models.yaml`` is here too (:func:`expand_grid`):
a list in the YAML is the values to try, anything else is fixed.
"""

from __future__ import annotations

import copy
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainingData:
    """Model inputs (one or more tensors with the same first dimension) and the target, on the CPU."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.target)
        if n == 0:
            raise ValueError("training data is empty")
        for i, x in enumerate(self.inputs):
            if len(x) != n:
                raise ValueError(f"input {i} has {len(x)} rows, the target {n}")

    def __len__(self) -> int:
        return len(self.target)


@dataclass(frozen=True)
class LoopConfig:
    """How long and how fast to train; learning rate and weight decay go to AdamW."""

    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 1024
    max_epochs: int = 20
    patience: int = 3  # epochs without a better validation loss before stopping
    min_delta: float = 0.0  # improvement smaller than this does not count
    seed: int = 7
    # Intra-op threads while training on CPU, restored afterwards. Small networks gain nothing from more, and
    # on a busy machine OpenMP's spinning makes them far slower: an epoch of 45 minibatches of a 64-32 MLP took
    # 0.07 s with 1 thread and 0.85-1.5 s with 2 on a loaded 2-core box. None keeps torch's setting.
    cpu_threads: int | None = 1

    @classmethod
    def from_hyperparameters(cls, hp: Mapping[str, Any]) -> LoopConfig:
        """The loop settings of one grid point (``learning_rate``, ``batch_size``, ``max_epochs``, ``patience``,
        ``seed`` required; ``weight_decay`` optional); other keys belong to the model and are ignored here."""
        return cls(
            learning_rate=float(hp["learning_rate"]),
            weight_decay=float(hp.get("weight_decay", 0.0)),
            batch_size=int(hp["batch_size"]),
            max_epochs=int(hp["max_epochs"]),
            patience=int(hp["patience"]),
            seed=int(hp["seed"]),
        )


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's minibatches, weighted by their sizes
    val_loss: float
    seconds: float


@dataclass
class FitResult:
    """The module with its best weights loaded, those weights (on the CPU) and what happened per epoch."""

    model: nn.Module
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_loss: float
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.history)


def seed_everything(seed: int) -> None:
    """Seed ``random``, numpy and torch (every device torch knows of)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _mark_step(device: torch.device) -> None:
    """Gaudi runs in lazy mode: a graph is only executed at a mark_step (after backward and after the step)."""
    if device.type == "hpu":
        import habana_frameworks.torch.core as htcore

        htcore.mark_step()


def _fused(device: torch.device) -> bool | None:
    """AdamW's fused kernel where torch has one (CPU, CUDA): one pass over the parameters instead of a dozen.

    For a model with large embeddings it is most of a step's time: the recommender's 100k x 64 customer factors
    took 66 ms per AdamW step with the default (foreach) implementation and 9 ms fused, on one CPU thread.
    """
    return True if device.type in {"cpu", "cuda"} else None


def _to(batch: Sequence[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, ...]:
    non_blocking = device.type == "cuda"
    return tuple(t.to(device, non_blocking=non_blocking) for t in batch)


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, data: TrainingData, loss_fn: LossFn, device: torch.device, batch_size: int = 8192
) -> float:
    """Mean loss over ``data`` (``loss_fn`` must reduce by mean), in eval mode."""
    model.eval()
    total, n = 0.0, len(data)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        *inputs, target = _to([*(x[start:stop] for x in data.inputs), data.target[start:stop]], device)
        total += float(loss_fn(model(*inputs), target)) * (stop - start)
    return total / n


def fit(
    build_model: Callable[[], nn.Module],
    train: TrainingData,
    validation: TrainingData | None,
    loss_fn: LossFn,
    config: LoopConfig,
    device: torch.device,
    *,
    label: str = "model",
) -> FitResult:
    """Train ``build_model()`` with AdamW on shuffled minibatches; stop when validation loss stops improving.

    Args:
        build_model: called once, after seeding, to create the module (on the CPU; it is moved to ``device``).
        train, validation: tensors on the CPU; minibatches are moved to ``device`` as they are used. Without a
            validation set (a refit on every labelled day: nothing left to stop on) the loop trains exactly
            ``config.max_epochs`` epochs and keeps the last one's weights; ``val_loss`` is then NaN.
        loss_fn: ``loss_fn(model(*inputs), target)``, reduced by mean.
        config: optimiser and stopping settings, and the seed.
        device: where to train (see :func:`training.shared.devices.select_device`).
        label: names the run in the log lines.

    Returns:
        The module with the weights of its best validation epoch loaded, those weights, and the per-epoch history.
    """
    with cpu_threads(config.cpu_threads if device.type == "cpu" else None):
        return _fit(build_model, train, validation, loss_fn, config, device, label)


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to ``threads`` inside the block, restored after it (None: left as it is).

    For small networks on the CPU (training and scoring loops alike; see :attr:`LoopConfig.cpu_threads`).
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _fit(
    build_model: Callable[[], nn.Module],
    train: TrainingData,
    validation: TrainingData | None,
    loss_fn: LossFn,
    config: LoopConfig,
    device: torch.device,
    label: str,
) -> FitResult:
    seed_everything(config.seed)
    model = build_model().to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=_fused(device)
    )
    shuffler = torch.Generator().manual_seed(config.seed)  # CPU generator: the order does not depend on the device

    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    best_val, best_epoch, since_best = float("inf"), 0, 0
    history: list[EpochRecord] = []
    stopped_early = False
    n = len(train)
    for epoch in range(1, config.max_epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffler)
        # the epoch's rows in shuffled order, gathered once: its minibatches are slices (the same rows as gathering
        # each minibatch, in far fewer and larger copies)
        shuffled = [x[order] for x in (*train.inputs, train.target)]
        total = 0.0
        for start in range(0, n, config.batch_size):
            *inputs, target = _to([x[start : start + config.batch_size] for x in shuffled], device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(*inputs), target)
            loss.backward()
            _mark_step(device)
            optimizer.step()
            _mark_step(device)
            total += float(loss.detach()) * len(target)
        train_loss = total / n
        if validation is None:
            val_loss = float("nan")
        else:
            val_loss = evaluate_loss(model, validation, loss_fn, device, batch_size=max(config.batch_size, 8192))
        if not np.isfinite(train_loss) or (validation is not None and not np.isfinite(val_loss)):
            raise FloatingPointError(
                f"{label}: loss is not finite at epoch {epoch} (train {train_loss}, validation {val_loss}); "
                "lower the learning rate or check the features for inf/NaN"
            )
        seconds = time.perf_counter() - started
        history.append(EpochRecord(epoch, train_loss, val_loss, seconds))
        improved = validation is None or val_loss < best_val - config.min_delta
        logger.info(
            "%s epoch %d/%d: loss %.5f, val loss %.5f%s, %.2f s",
            label,
            epoch,
            config.max_epochs,
            train_loss,
            val_loss,
            " (best)" if improved else "",
            seconds,
        )
        if improved:
            best_val, best_epoch, since_best = val_loss, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            since_best += 1
            if since_best >= config.patience:
                stopped_early = epoch < config.max_epochs
                logger.info("%s: no better validation loss for %d epochs, stopping", label, since_best)
                break
    model.load_state_dict(best_state)
    return FitResult(model, copy.deepcopy(best_state), best_epoch, best_val, history, stopped_early)


def expand_grid(hyperparameters: Mapping[str, Any], nested: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every combination of the values to try, in the order the config lists them.

    A list value is the values to try; anything else is fixed. Keys in ``nested`` hold values that are
    themselves lists (``hidden_sizes: [[64, 32], [32]]`` tries two architectures): there a list of lists is
    the values to try and a flat list is one value.

    >>> expand_grid({"lr": [0.1, 0.01], "hidden_sizes": [[8], [4, 2]], "seed": 7}, nested=["hidden_sizes"])[1]
    {'lr': 0.1, 'hidden_sizes': [4, 2], 'seed': 7}
    """
    options: dict[str, list[Any]] = {}
    for key, value in hyperparameters.items():
        if key in nested:
            is_choice = isinstance(value, list) and bool(value) and all(isinstance(v, list) for v in value)
            options[key] = list(value) if is_choice else [value]
        else:
            options[key] = list(value) if isinstance(value, list) else [value]
        if not options[key]:
            raise ValueError(f"hyperparameter {key!r} has an empty list of values to try")
    keys = list(options)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(options[k] for k in keys))]


def fit_full_batch(
    build_model: Callable[[], nn.Module],
    train: TrainingData,
    validation: TrainingData | None,
    loss_fn: LossFn,
    penalty: Callable[[nn.Module], torch.Tensor],
    device: torch.device,
    *,
    seed: int = 7,
    max_iterations: int = 2000,
    cpu_threads_: int | None = 1,
    label: str = "model",
) -> FitResult:
    """Minimise ``loss_fn`` over all of ``train`` plus ``penalty(model)`` to convergence with L-BFGS.

    For a model whose parameters are *estimates* (effect sizes read off the fitted model), not just a means to
    predict: early stopping on a validation loss is a shrinkage of its own, which pulls every effect towards 0
    by an amount that depends on when the noisy validation curve turned. Here the regularisation is explicit
    (``penalty``, e.g. an L2 on the weights that should be shrunk) and the fit runs until the gradient vanishes.
    The validation loss is reported (for choosing the penalty), never used to stop.

    Returns:
        A :class:`FitResult` with one history record (``epoch`` = L-BFGS iterations run).
    """
    with cpu_threads(cpu_threads_ if device.type == "cpu" else None):
        seed_everything(seed)
        started = time.perf_counter()
        model = build_model().to(device)
        x = tuple(t.to(device) for t in train.inputs)
        y = train.target.to(device)
        optimizer = torch.optim.LBFGS(
            model.parameters(),
            lr=1.0,
            max_iter=max_iterations,
            history_size=20,
            tolerance_grad=1e-7,
            tolerance_change=1e-10,
            line_search_fn="strong_wolfe",
        )
        model.train()

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            objective = loss_fn(model(*x), y) + penalty(model)
            objective.backward()
            return objective

        optimizer.step(closure)
        iterations = int(optimizer.state[next(model.parameters())].get("n_iter", 0))
        with torch.no_grad():
            model.eval()
            train_loss = float(loss_fn(model(*x), y))
        val_loss = float("nan") if validation is None else evaluate_loss(model, validation, loss_fn, device)
        if not np.isfinite(train_loss) or (validation is not None and not np.isfinite(val_loss)):
            raise FloatingPointError(f"{label}: loss is not finite after L-BFGS (train {train_loss}, val {val_loss})")
        seconds = time.perf_counter() - started
        logger.info(
            "%s: L-BFGS %d iterations, loss %.5f, val loss %.5f, %.2f s", label, iterations, train_loss, val_loss,
            seconds,
        )
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        history = [EpochRecord(iterations, train_loss, val_loss, seconds)]
        return FitResult(model, state, iterations, val_loss, history, stopped_early=False)
