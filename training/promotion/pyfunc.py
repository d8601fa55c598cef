"""The promotion uplift model as MLflow logs and serves it: preprocessing, the multi-head network, the coupon choice.

Self-contained on purpose, like the conversion pyfunc (MLflow 3 saves this file as code with the model and runs it
on load): it imports numpy, pandas, torch and mlflow, and the network block ``training/shared/nets.py`` that is
logged with the model.

The network is treatment-conditioned with one head per coupon: a shared trunk reads the customer's features,
a baseline head estimates the 10-week profit without a coupon, ``mu_0(x)``, and head ``k`` the incremental profit
of coupon ``k``, ``tau_k(x)``; the outcome of an offer of coupon ``k`` is modelled as ``mu_0(x) + tau_k(x)``
(``tau_none = 0``). Trained on randomized offers, ``tau_k`` is the uplift of coupon ``k`` against no coupon.

The model is an ensemble (the first network fitted on all training offers, the others on bootstrap resamples):
the uplift is the members' mean and their standard deviation its uncertainty. The pyfunc takes customer features
and returns, per row, ``uplift_<coupon>`` (expected incremental 10-week profit of each coupon against none, EUR,
the mean), ``best_coupon`` and ``expected_incremental_profit`` (:class:`CouponChoice`: coupons judged on
``mean - confidence_z * sd``; ``none`` when no coupon's bound exceeds ``min_incremental_profit``; among coupons
within ``tolerance`` EUR of the best bound the cheapest, by the mean discount per offer measured in training).
Budget and per-customer limits need the offer history and are applied by ``training/promotion/policy.py``.
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel, PythonModelContext
from torch import nn

try:  # inside the project (training, serving, tests): the shared module
    from training.shared.nets import hidden_layers
except ModuleNotFoundError:  # loaded on its own: MLflow put the copy logged with the model (code_paths) on sys.path
    from nets import hidden_layers  # type: ignore[no-redef]

NO_COUPON = "none"
SPEC_ARTIFACT = "spec"
WEIGHTS_ARTIFACT = "weights"
UNKNOWN = "__unknown__"


@dataclass(frozen=True)
class UpliftPreprocessor:
    """Raw feature columns -> float32 matrix, fitted on the training rows only.

    Numeric columns (counts, amounts, days, shares: non-negative and skewed): ``log1p``, standardized, a missing
    value becomes 0 (the training mean) plus a 0/1 missing indicator per column that had missing values in
    training. Categorical columns: one-hot over the training values plus an unknown bucket.
    """

    numeric_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    indicator_columns: tuple[str, ...]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, numeric_columns: list[str], categorical_columns: list[str]
    ) -> "UpliftPreprocessor":
        values = _log1p(frame, numeric_columns)
        mean, std = [], []
        for col in values.T:
            finite = col[~np.isnan(col)]
            mean.append(float(finite.mean()) if len(finite) else 0.0)
            s = float(finite.std()) if len(finite) > 1 else 0.0
            std.append(s if s > 1e-8 and math.isfinite(s) else 1.0)
        return cls(
            numeric_columns=tuple(numeric_columns),
            categorical_columns=tuple(categorical_columns),
            categories=tuple(
                tuple(sorted(str(v) for v in frame[c].dropna().unique() if str(v) != UNKNOWN))
                for c in categorical_columns
            ),
            mean=tuple(mean),
            std=tuple(std),
            indicator_columns=tuple(c for c in numeric_columns if frame[c].isna().any()),
        )

    @property
    def n_features(self) -> int:
        return len(self.numeric_columns) + len(self.indicator_columns) + sum(len(c) + 1 for c in self.categories)

    @property
    def input_columns(self) -> list[str]:
        return [*self.categorical_columns, *self.numeric_columns]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise KeyError(f"promotion model input lacks column(s) {', '.join(missing)}")
        raw = _log1p(frame, list(self.numeric_columns))
        blocks = [np.nan_to_num((raw - np.asarray(self.mean)) / np.asarray(self.std), nan=0.0)]
        index = {c: i for i, c in enumerate(self.numeric_columns)}
        blocks += [np.isnan(raw[:, [index[c]]]) for c in self.indicator_columns]
        for column, values in zip(self.categorical_columns, self.categories, strict=True):
            codes = pd.Categorical(frame[column].astype("string"), categories=list(values)).codes.astype(np.int64)
            codes[codes < 0] = len(values)
            blocks.append(np.eye(len(values) + 1)[codes])
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UpliftPreprocessor":
        fields = {k: tuple(v) for k, v in data.items() if k != "categories"}
        return cls(categories=tuple(tuple(v) for v in data["categories"]), **fields)


def _log1p(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    if not columns:
        return np.zeros((len(frame), 0))
    values = np.column_stack([pd.to_numeric(frame[c], errors="coerce").astype("float64").to_numpy() for c in columns])
    return np.log1p(np.clip(values, 0.0, None))


class UpliftNet(nn.Module):
    """Shared trunk, a baseline head and one uplift head per coupon; ``forward(x, t)`` is the outcome of arm ``t``.

    ``t`` is 0 for no coupon and ``k`` (1-based) for coupon ``k``; outputs are in target units (standardized).
    """

    def __init__(self, n_features: int, n_coupons: int, hidden_sizes: list[int], dropout: float = 0.0) -> None:
        super().__init__()
        layers, width = hidden_layers(n_features, hidden_sizes, dropout)
        self.trunk = nn.Sequential(*layers)
        self.baseline = nn.Linear(width, 1)
        self.uplift = nn.Linear(width, n_coupons)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu_0, tau)``: the no-coupon outcome (n,) and the coupons' uplifts (n, n_coupons)."""
        h = self.trunk(x)
        return self.baseline(h).squeeze(-1), self.uplift(h)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mu0, tau = self.heads(x)
        padded = torch.cat([torch.zeros_like(mu0).unsqueeze(-1), tau], dim=1)
        return mu0 + padded.gather(1, t.long().unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True)
class CouponChoice:
    """The rule that turns uplifts into one coupon per customer (see the module docstring)."""

    coupons: tuple[str, ...]  # in the network's head order
    cost_order: tuple[str, ...]  # cheapest first
    min_incremental_profit: float
    tolerance: float
    confidence_z: float = 0.0  # coupons are compared on mean - z * spread of the ensemble (0: on the mean)

    def choose(self, uplift: np.ndarray, spread: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``uplift`` (n, coupons) in EUR: the chosen coupon (``none`` included) and its expected uplift.

        Coupons are compared on ``uplift - confidence_z * spread`` (a lower bound when ``spread`` is the
        ensemble's standard deviation): a coupon pays only when that bound exceeds ``min_incremental_profit``,
        and among the coupons within ``tolerance`` of the best bound the cheapest wins.
        """
        n = len(uplift)
        if n == 0:
            return np.array([], dtype=object), np.zeros(0)
        bound = uplift - self.confidence_z * (spread if spread is not None else 0.0)
        best = bound.max(axis=1)
        tied = bound >= (best - self.tolerance)[:, None]
        rank = np.array([self.cost_order.index(c) for c in self.coupons])
        cheapest = np.where(tied, rank[None, :], len(rank) + 1).argmin(axis=1)
        rows = np.arange(n)
        pays = bound[rows, cheapest] > self.min_incremental_profit
        chosen = np.where(pays, np.asarray(self.coupons, dtype=object)[cheapest], NO_COUPON)
        return chosen, np.where(pays, uplift[rows, cheapest], 0.0)


@dataclass
class PromotionUpliftModel:
    """Preprocessor, an ensemble of networks (averaged) and the target scale: uplift per coupon in EUR."""

    preprocessor: UpliftPreprocessor
    networks: list[UpliftNet]
    target_scale: float  # EUR per standardized unit
    choice: CouponChoice

    @torch.no_grad()
    def member_uplifts(self, frame: pd.DataFrame) -> np.ndarray:
        """Each network's incremental 10-week profit of every coupon against none, EUR: (members, rows, coupons)."""
        x = torch.from_numpy(self.preprocessor.transform(frame))
        out = []
        for net in self.networks:
            net.eval()
            out.append(net.heads(x)[1].numpy().astype(np.float64) * self.target_scale)
        return np.stack(out)

    def uplift(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected incremental 10-week profit of every coupon against none (the ensemble mean), EUR."""
        return self.member_uplifts(frame).mean(axis=0)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        members = self.member_uplifts(frame)
        u = members.mean(axis=0)
        spread = members.std(axis=0, ddof=1) if len(members) > 1 else np.zeros_like(u)
        chosen, value = self.choice.choose(u, spread)
        out = pd.DataFrame({f"uplift_{c}": u[:, i] for i, c in enumerate(self.choice.coupons)}, index=frame.index)
        out["best_coupon"] = chosen
        out["expected_incremental_profit"] = value
        return out.reset_index(drop=True)


def save_model_files(folder: Path, model: PromotionUpliftModel, hidden_sizes: list[int], dropout: float) -> dict:
    """Write the fitted state; returns the ``artifacts`` mapping for ``mlflow.pyfunc.log_model``."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "preprocessor": model.preprocessor.to_dict(),
        "network": {"hidden_sizes": hidden_sizes, "dropout": dropout, "ensemble": len(model.networks)},
        "target_scale": model.target_scale,
        "choice": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.choice).items()},
    }
    spec_path, weights_path = folder / "spec.json", folder / "weights.pt"
    spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
    torch.save([{k: v.detach().cpu() for k, v in n.state_dict().items()} for n in model.networks], weights_path)
    return {SPEC_ARTIFACT: str(spec_path), WEIGHTS_ARTIFACT: str(weights_path)}


def load_model_files(spec_path: str, weights_path: str) -> PromotionUpliftModel:
    spec = json.loads(Path(spec_path).read_text())
    preprocessor = UpliftPreprocessor.from_dict(spec["preprocessor"])
    c = spec["choice"]
    choice = CouponChoice(tuple(c["coupons"]), tuple(c["cost_order"]), c["min_incremental_profit"], c["tolerance"],
                          c.get("confidence_z", 0.0))
    networks = []
    for state in torch.load(weights_path, map_location="cpu", weights_only=True):
        net = UpliftNet(preprocessor.n_features, len(choice.coupons), spec["network"]["hidden_sizes"],
                        spec["network"]["dropout"])
        net.load_state_dict(state)
        networks.append(net.eval())
    return PromotionUpliftModel(preprocessor, networks, float(spec["target_scale"]), choice)


class PromotionPyfunc(PythonModel):
    """MLflow pyfunc: customer features in; per-coupon uplift (EUR), the chosen coupon and its uplift out."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model = load_model_files(context.artifacts[SPEC_ARTIFACT], context.artifacts[WEIGHTS_ARTIFACT])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.model.predict_frame(model_input)


if __name__ != "training.promotion.pyfunc":
    mlflow.models.set_model(PromotionPyfunc())
