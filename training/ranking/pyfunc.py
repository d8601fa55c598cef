"""The ranking model as MLflow logs and serves it: item features + scoring MLP + re-ranking, in one file.

Models-from-code, like the conversion pyfunc: MLflow saves this file with the model and executes it on load, so it
imports numpy, pandas, torch and mlflow, and of the project only the network block logged with the model
(``training/shared/nets.py``); training imports the same classes, so the feature transform and the re-rankers have
one implementation for training, evaluation and serving.

Input: one row per (list, product) with ``list_id``, ``price_shown`` and the ``ranking_v1`` features (as Feast
returns them). Output: one float per row, a *sort key within its list* (higher = shown earlier): the relevance
score f(x) re-ranked by the configured hybrid ``rank(rank(f)^alpha * rank(price)^(1 - alpha))`` (alpha = 1 is
relevance alone). The fitted state travels as two artifacts: ``spec`` (JSON) and ``weights`` (a state_dict).
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
    from training.shared.nets import ScoreMLP
except ModuleNotFoundError:  # loaded on its own: MLflow put the copy logged with the model (code_paths) on sys.path
    from nets import ScoreMLP  # type: ignore[no-redef]

UNKNOWN = "__unknown__"
SPEC_ARTIFACT = "spec"
WEIGHTS_ARTIFACT = "weights"
LIST_ID = "list_id"
PRICE = "price_shown"
# count features: log1p, then standardized
COUNT_COLUMNS = ("impressions_28d", "clicks_28d", "carts_28d", "purchases_28d", "examinations_28d", "days_on_sale")
# rates in [0, ~1]: log of the (smoothed, never zero) rate, then standardized
RATE_COLUMNS = ("ctr_debiased", "cart_rate_debiased", "purchase_rate_debiased")
# may be null (product not shown in 28 days): standardized, null -> mean, plus a null indicator
OPTIONAL_COLUMNS = ("ctr_raw", "mean_position")
CATEGORICAL_COLUMNS = ("category",)
INPUT_COLUMNS = (LIST_ID, PRICE, "list_price", *CATEGORICAL_COLUMNS, *COUNT_COLUMNS, *RATE_COLUMNS, *OPTIONAL_COLUMNS)


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(frame[column], errors="coerce").astype("float64").to_numpy()


def price_relative_to_list(list_ids: np.ndarray, price: np.ndarray) -> np.ndarray:
    """ln(price) minus the mean ln(price) of the item's list: > 0 for items dearer than their list's average."""
    codes, uniques = pd.factorize(pd.Series(list_ids), sort=False)
    log_price = np.log(price)
    mean = np.bincount(codes, weights=log_price, minlength=len(uniques)) / np.bincount(codes, minlength=len(uniques))
    return log_price - mean[codes]


@dataclass(frozen=True)
class RankingPreprocessor:
    """Raw item columns -> float32 matrix, fitted on the training rows only.

    Blocks: category one-hot (+ unknown), log1p counts, log rates, optional columns with null flags, and the three
    price features ln(price), ln(price / list price) and price relative to the list (see
    :func:`price_relative_to_list`), all standardized with the training means and deviations.
    """

    categories: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @staticmethod
    def numeric_names() -> list[str]:
        return [
            *(f"log1p_{c}" for c in COUNT_COLUMNS),
            *(f"log_{c}" for c in RATE_COLUMNS),
            *OPTIONAL_COLUMNS,
            "log_price",
            "log_price_over_list_price",
            "price_rel_list",
        ]

    @staticmethod
    def _numeric_block(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
        if missing:
            raise KeyError(f"ranking model input lacks column(s) {', '.join(missing)}")
        price = np.clip(_numeric(frame, PRICE), 0.01, None)
        list_price = np.clip(_numeric(frame, "list_price"), 0.01, None)
        optional = np.column_stack([_numeric(frame, c) for c in OPTIONAL_COLUMNS])
        block = np.column_stack(
            [
                *(np.log1p(np.clip(_numeric(frame, c), 0.0, None)) for c in COUNT_COLUMNS),
                *(np.log(np.clip(_numeric(frame, c), 1e-6, None)) for c in RATE_COLUMNS),
                optional,
                np.log(price),
                np.log(price / list_price),
                price_relative_to_list(frame[LIST_ID].to_numpy(), price),
            ]
        )
        return block, np.isnan(optional)

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> "RankingPreprocessor":
        block, _ = cls._numeric_block(frame)
        mean = np.nanmean(block, axis=0)
        std = np.nanstd(block, axis=0)
        std = np.where((std > 1e-8) & np.isfinite(std), std, 1.0)
        categories = tuple(sorted(str(v) for v in frame["category"].dropna().unique() if str(v) != UNKNOWN))
        return cls(categories, tuple(float(v) for v in np.nan_to_num(mean)), tuple(float(v) for v in std))

    @property
    def feature_names(self) -> list[str]:
        return [
            *(f"category={v}" for v in (*self.categories, UNKNOWN)),
            *self.numeric_names(),
            *(f"{c}_is_null" for c in OPTIONAL_COLUMNS),
        ]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        block, nulls = self._numeric_block(frame)
        scaled = np.nan_to_num((block - np.asarray(self.mean)) / np.asarray(self.std), nan=0.0)
        codes = pd.Categorical(frame["category"].astype("string"), categories=list(self.categories)).codes
        codes = np.where(codes < 0, len(self.categories), codes)
        onehot = np.eye(len(self.categories) + 1, dtype=np.float32)[codes]
        return np.concatenate([onehot, scaled.astype(np.float32), nulls.astype(np.float32)], axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RankingPreprocessor":
        return cls(tuple(data["categories"]), tuple(data["mean"]), tuple(data["std"]))


RankingMLP = ScoreMLP  # scores items independently: a padded batch of lists (B, L, F) gives (B, L)


@torch.no_grad()
def relevance_scores(module: nn.Module, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """f(x) per row of a transformed matrix, float64."""
    module.eval()
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    out = [module(t[i : i + batch_size]) for i in range(0, len(t), batch_size)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def rank_within_lists(list_codes: np.ndarray, key: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of each row within its list by ``key`` descending (rank 1 = largest); ties by ``tie`` desc."""
    tie = np.zeros(len(key)) if tie is None else tie
    order = np.lexsort((-tie, -key, list_codes))
    ranks = np.empty(len(key), dtype=np.int64)
    sorted_codes = list_codes[order]
    starts = np.r_[0, np.flatnonzero(sorted_codes[1:] != sorted_codes[:-1]) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    ranks[order] = np.arange(len(order)) - first + 1
    return ranks


def hybrid_sort_key(list_codes: np.ndarray, relevance: np.ndarray, price: np.ndarray, alpha: float) -> np.ndarray:
    """Rank-product hybrid: sort key (higher = earlier) of ``rank(rank(f)^alpha * rank(price)^(1 - alpha))``.

    Ranks are 1 for the most relevant and for the dearest item of a list; alpha = 1 is relevance alone, 0 price
    alone. Ties of the product are broken by relevance. Returned as ``-product`` so that higher sorts first.
    """
    return hybrid_sort_keys(list_codes, relevance, price, [alpha])[0]


def hybrid_sort_keys(
    list_codes: np.ndarray, relevance: np.ndarray, price: np.ndarray, alphas: list[float]
) -> list[np.ndarray]:
    """:func:`hybrid_sort_key` for each of ``alphas``; the within-list ranks are computed once for all of them."""
    for alpha in alphas:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    r_f = rank_within_lists(list_codes, relevance).astype(np.float64)
    r_p = rank_within_lists(list_codes, price, tie=relevance).astype(np.float64)
    log_f, log_p = np.log(r_f), np.log(r_p)
    keys = []
    for alpha in alphas:
        product = np.exp(alpha * log_f + (1.0 - alpha) * log_p)
        # relevance breaks ties of the product: a tiny offset that never reorders distinct products (ranks <= 1e6)
        keys.append(-(product + 1e-9 * r_f))
    return keys


def expected_revenue_key(p_purchase: np.ndarray, price: np.ndarray, g: str) -> np.ndarray:
    """Sort key p * g(price), g = ``identity`` or ``ln`` (prices are >= 0.01 EUR; ln is negative below 1 EUR)."""
    if g == "identity":
        return p_purchase * price
    if g == "ln":
        return p_purchase * np.log(price)
    raise ValueError(f"unknown g {g!r}: identity or ln")


def sort_keys(
    module: nn.Module, preprocessor: RankingPreprocessor, frame: pd.DataFrame, alpha: float
) -> np.ndarray:
    """The served output: per row of ``frame``, the hybrid sort key within its list (higher = earlier)."""
    x = preprocessor.transform(frame)
    relevance = relevance_scores(module, x)
    codes, _ = pd.factorize(frame[LIST_ID], sort=False)
    return hybrid_sort_key(codes, relevance, np.clip(_numeric(frame, PRICE), 0.01, None), alpha)


def save_model_files(
    folder: Path, preprocessor: RankingPreprocessor, module: RankingMLP, network: dict[str, Any], alpha: float
) -> dict[str, str]:
    """Write the fitted state; returns the ``artifacts`` mapping for ``mlflow.pyfunc.log_model``."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"preprocessor": preprocessor.to_dict(), "network": network, "alpha": alpha}
    spec_path, weights_path = folder / "spec.json", folder / "weights.pt"
    spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, weights_path)
    return {SPEC_ARTIFACT: str(spec_path), WEIGHTS_ARTIFACT: str(weights_path)}


def load_model_files(spec_path: str, weights_path: str) -> tuple[RankingPreprocessor, RankingMLP, float]:
    spec = json.loads(Path(spec_path).read_text())
    net = spec["network"]
    module = RankingMLP(int(net["n_features"]), [int(s) for s in net["hidden_sizes"]], float(net["dropout"]))
    module.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    module.eval()
    alpha = float(spec["alpha"])
    if not (0.0 <= alpha <= 1.0 and math.isfinite(alpha)):
        raise ValueError(f"the model's alpha {alpha} is not within [0, 1]")
    return RankingPreprocessor.from_dict(spec["preprocessor"]), module, alpha


class RankingPyfunc(PythonModel):
    """MLflow pyfunc: rows of (list, product) in, the sort key within each list out (float64, higher first)."""

    def load_context(self, context: PythonModelContext) -> None:
        self.preprocessor, self.module, self.alpha = load_model_files(
            context.artifacts[SPEC_ARTIFACT], context.artifacts[WEIGHTS_ARTIFACT]
        )

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return sort_keys(self.module, self.preprocessor, model_input, self.alpha)


if __name__ != "training.ranking.pyfunc":
    mlflow.models.set_model(RankingPyfunc())
