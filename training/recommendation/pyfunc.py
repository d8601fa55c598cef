"""The recommender as MLflow logs and serves it: the fitted state, exact top-k retrieval and the pyfunc, in one file.

MLflow saves this file *as code* with the model (models-from-code) and runs it on load, so it imports numpy,
pandas and mlflow only (no torch: serving is a matrix product), never the rest of the project. Training builds
the :class:`RecommenderState` and the benchmarks use :func:`top_k` from here, so what is measured is what serves.

How one request row is answered (``customer_id``, and optionally the ``device`` and ``category`` of the page):

1. candidates: the model's catalogue snapshot, intersected with the ``catalog`` param when given (the current
   catalogue: a product that left it is never named), restricted to ``category`` when the row names one;
2. a customer the model was trained on (*personal*): ``score = u_c . v_p + b_p`` over the candidates, minus the
   products they already bought unless the product is a repeat-purchase item;
3. anyone else (*popular*: anonymous, new, or no interaction in the training days): the popularity of the
   products on the row's device (all devices when it is unknown) over the training days;
4. exact top-k of the scores (:func:`top_k`: ``argpartition`` then a sort of the k winners).

Products that had no interaction in the training days were given the mean factors and bias of their category's
products at training time, so a new product competes on its category's merit.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

STATE_ARTIFACT = "state"
ALL_DEVICES = "__all__"
PERSONAL = "personal"
POPULAR = "popular"
_ROW_CHUNK = 2048  # rows scored at once: bounds the (rows x products) score matrix


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of each row of ``scores`` (rows x items): (indices, values), best first.

    ``-inf`` marks an excluded item; it can still fill a row that has fewer than k allowed items (callers
    drop it). Ties are broken by the lower index, so the answer does not depend on the partition's order.
    """
    scores = np.atleast_2d(scores)
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        return np.zeros((len(scores), 0), np.int64), np.zeros((len(scores), 0), scores.dtype)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    values = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -values), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(values, order, axis=1)


@dataclass
class RecommenderState:
    """Everything the recommender needs at serving time; arrays are indexed by item or user position."""

    item_ids: np.ndarray  # (n,) str: the catalogue snapshot of the run date
    item_category: np.ndarray  # (n,) str
    item_repeat: np.ndarray  # (n,) bool: may be recommended again after a purchase
    item_factors: np.ndarray  # (n, d) float32
    item_bias: np.ndarray  # (n,) float32
    item_cold: np.ndarray  # (n,) bool: no interaction in the training days (category factors)
    user_ids: np.ndarray  # (m,) str: customers with a personal model
    user_factors: np.ndarray  # (m, d) float32
    purchased_indptr: np.ndarray  # (m + 1,) CSR over users: products bought in the training days
    purchased_indices: np.ndarray
    devices: np.ndarray  # (g,) str; popularity row g is all devices
    popularity: np.ndarray  # (g + 1, n) float32: strength-weighted interactions per device
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        self._user_index = {u: i for i, u in enumerate(self.user_ids.tolist())}
        self._item_index = {p: i for i, p in enumerate(self.item_ids.tolist())}
        self._device_index = {d: i for i, d in enumerate(self.devices.tolist())}
        self._categories = {c: np.flatnonzero(self.item_category == c) for c in np.unique(self.item_category)}

    @property
    def dim(self) -> int:
        return int(self.item_factors.shape[1])

    def user_index(self, customer_id: Any) -> int:
        """Row of ``customer_id`` in the user factors, or -1 (no personal model)."""
        return self._user_index.get(customer_id, -1) if isinstance(customer_id, str) else -1

    def item_index(self, product_ids: list[str]) -> np.ndarray:
        return np.array([self._item_index.get(p, -1) for p in product_ids], dtype=np.int64)

    def candidate_mask(self, catalog: list[str] | None) -> np.ndarray:
        """Products that may be named: the model's snapshot, within ``catalog`` (the current one) when given."""
        if not catalog:
            return np.ones(len(self.item_ids), bool)
        mask = np.zeros(len(self.item_ids), bool)
        idx = self.item_index(list(catalog))
        mask[idx[idx >= 0]] = True
        return mask

    def recommend(
        self,
        customer_ids: list[Any],
        devices: list[Any] | None = None,
        categories: list[Any] | None = None,
        k: int = 10,
        catalog: list[str] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
        """Item indices and scores (best first, at most k) and the source per request row."""
        n_rows = len(customer_ids)
        devices = list(devices) if devices is not None else [None] * n_rows
        categories = list(categories) if categories is not None else [None] * n_rows
        allowed = self.candidate_mask(catalog)
        users = np.array([self.user_index(c) for c in customer_ids], dtype=np.int64)
        dev = np.array([self._device_index.get(d, len(self.devices)) for d in devices], dtype=np.int64)
        items_out: list[np.ndarray] = []
        scores_out: list[np.ndarray] = []
        for start in range(0, n_rows, _ROW_CHUNK):
            rows = slice(start, min(start + _ROW_CHUNK, n_rows))
            u = users[rows]
            personal = u >= 0
            scores = self.popularity[dev[rows]].astype(np.float32, copy=True)
            if personal.any():
                scores[personal] = self.user_factors[u[personal]] @ self.item_factors.T + self.item_bias
            scores[:, ~allowed] = -np.inf
            for r in np.flatnonzero(personal):
                bought = self.purchased_indices[self.purchased_indptr[u[r]] : self.purchased_indptr[u[r] + 1]]
                scores[r, bought[~self.item_repeat[bought]]] = -np.inf
            for r, category in enumerate(categories[rows]):
                if isinstance(category, str) and category:
                    keep = self._categories.get(category, np.zeros(0, np.int64))
                    masked = np.full(scores.shape[1], -np.inf, np.float32)
                    masked[keep] = scores[r, keep]
                    scores[r] = masked
            idx, val = top_k(scores, k)
            for i, v in zip(idx, val, strict=True):
                finite = np.isfinite(v)
                items_out.append(i[finite])
                scores_out.append(v[finite])
        sources = [PERSONAL if u >= 0 else POPULAR for u in users]
        return items_out, scores_out, sources

    # --- files --------------------------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Write ``state.npz`` (arrays) and ``meta`` inside it; returns the file."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "state.npz"
        arrays = {k: v for k, v in self.__dict__.items() if isinstance(v, np.ndarray) and not k.startswith("_")}
        arrays = {k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()}
        np.savez_compressed(path, meta=np.array(json.dumps(self.meta, sort_keys=True)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RecommenderState":
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
        for name in ("item_ids", "item_category", "user_ids", "devices"):
            fields[name] = fields[name].astype(object)
        return cls(meta=meta, **fields)


def recommendations_frame(
    state: RecommenderState, frame: pd.DataFrame, k: int = 10, catalog: list[str] | None = None
) -> pd.DataFrame:
    """One output row per input row: ``customer_id``, ``product_ids`` and ``scores`` (lists), ``source``."""
    n = len(frame)

    def column(name: str) -> list[Any]:
        if name not in frame.columns:
            return [None] * n
        return [None if pd.isna(v) else v for v in frame[name].tolist()]

    customers = column("customer_id")
    items, scores, sources = state.recommend(customers, column("device"), column("category"), k, catalog)
    return pd.DataFrame(
        {
            "customer_id": customers,
            "product_ids": [state.item_ids[i].tolist() for i in items],
            "scores": [s.astype(np.float64).tolist() for s in scores],
            "source": sources,
        }
    )


class RecommenderPyfunc(PythonModel):
    """MLflow pyfunc: rows of (``customer_id``, ``device``, ``category``) in, top-k products per row out.

    Params: ``k`` (list length, default 10) and ``catalog`` (product ids of the current catalogue; empty: the
    model's own snapshot).
    """

    def load_context(self, context: PythonModelContext) -> None:
        self.state = RecommenderState.load(context.artifacts[STATE_ARTIFACT])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        params = params or {}
        k = int(params.get("k", 10))
        catalog = params.get("catalog")
        catalog = [str(p) for p in catalog] if catalog is not None and len(catalog) else None
        return recommendations_frame(self.state, model_input, k=k, catalog=catalog)


# MLflow executes this file under a module name of its own when it logs or loads the model; importing it as part
# of the package (training does) only defines the classes above.
if __name__ != "training.recommendation.pyfunc":
    mlflow.models.set_model(RecommenderPyfunc())
