"""The elasticity model as MLflow logs and serves it: the fitted demand model and the pyfunc wrapper, in one file.

MLflow 3 saves this file *as code* with the model (models-from-code), so it imports numpy, pandas and mlflow
only, never the rest of the project; training builds :class:`DemandModel` from here, so training, the gate,
batch price recommendations and serving share one implementation of the demand equation.

The demand equation, for product p of elasticity group g on day t with ``impressions`` n (the exposure):

    E[units] = n * exp( l(X) + a_g + beta_g * (log(price / list_price) - m(X)) )

* ``l(X)``: the demand nuisance, log units per impression from the controls X alone (product effect, and per
  group an intercept, the season as annual Fourier terms of the day of year, and the day of the week);
* ``m(X)``: the price nuisance, the expected log(price / list_price) from the same controls;
* ``beta_g``: the price elasticity of group g (d log units / d log price at fixed controls and exposure), with
  ``a_g`` its level term. Both nuisances are linear in the same design, so they travel as coefficients.

The fitted state is one JSON artifact (``demand_model``).
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

MODEL_ARTIFACT = "demand_model"
FOURIER_ORDER = 2  # annual harmonics of the season
DAYS_PER_YEAR = 365.25
UNKNOWN_GROUP = "__unknown__"
INPUT_COLUMNS = ("product_id", "price", "list_price", "impressions", "day_of_week", "day_of_year")


def calendar_features(day_of_week: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
    """Season and weekday controls, shape (n, 2 * FOURIER_ORDER + 6): annual sin/cos pairs, Tuesday..Sunday dummies."""
    doy = np.asarray(day_of_year, dtype=np.float64)
    dow = np.asarray(day_of_week, dtype=np.int64)
    cols = []
    for k in range(1, FOURIER_ORDER + 1):
        angle = 2.0 * math.pi * k * doy / DAYS_PER_YEAR
        cols += [np.sin(angle), np.cos(angle)]
    cols += [(dow == d).astype(np.float64) for d in range(2, 8)]  # ISO weekday, Monday is the reference
    return np.column_stack(cols) if len(doy) else np.zeros((0, 2 * FOURIER_ORDER + 6))


def group_key(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """The elasticity group of every row: the values of ``columns`` joined with '/' (e.g. 'books')."""
    parts = [frame[c].astype("string").fillna(UNKNOWN_GROUP).to_numpy(dtype=object) for c in columns]
    out = parts[0]
    for part in parts[1:]:
        out = np.array([f"{a}/{b}" for a, b in zip(out, part, strict=True)], dtype=object)
    return out


@dataclass(frozen=True)
class Nuisance:
    """A linear function of the controls: product effect + group intercept + group calendar coefficients."""

    product_effect: dict[str, float]  # unseen products get 0 (the group's level)
    intercept: tuple[float, ...]  # per group
    calendar: tuple[tuple[float, ...], ...]  # per group, per calendar feature

    def __call__(self, products: np.ndarray, group_index: np.ndarray, calendar: np.ndarray) -> np.ndarray:
        effect = np.array([self.product_effect.get(str(p), 0.0) for p in products], dtype=np.float64)
        coef = np.asarray(self.calendar, dtype=np.float64)[group_index]
        intercept = np.asarray(self.intercept, dtype=np.float64)[group_index]
        return effect + intercept + np.einsum("ij,ij->i", calendar, coef)


@dataclass(frozen=True)
class DemandModel:
    """Per-group elasticities with intervals, and the nuisances that turn them into unit forecasts."""

    group_columns: tuple[str, ...]
    groups: tuple[str, ...]
    elasticity: tuple[float, ...]  # beta_g
    std_error: tuple[float, ...]  # cluster-robust (by product) standard error of beta_g
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    level: tuple[float, ...]  # a_g
    confidence: float
    demand: Nuisance  # l(X): log units per impression
    price: Nuisance  # m(X): expected log(price / list_price)

    def group_index(self, frame: pd.DataFrame) -> np.ndarray:
        """Index of each row's group; rows of an unseen group get -1."""
        lookup = {g: i for i, g in enumerate(self.groups)}
        return np.array([lookup.get(g, -1) for g in group_key(frame, self.group_columns)], dtype=np.int64)

    def elasticities(self) -> pd.DataFrame:
        """One row per group: elasticity, standard error and confidence interval."""
        return pd.DataFrame(
            {
                "group": list(self.groups),
                "elasticity": self.elasticity,
                "std_error": self.std_error,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
            }
        )

    def log_rate(self, frame: pd.DataFrame, price: np.ndarray | None = None) -> np.ndarray:
        """log E[units per impression] of each row, at its own price or at ``price`` (EUR, one per row).

        Rows of an unseen group get NaN: the model has no elasticity for them.
        """
        missing = [c for c in (*INPUT_COLUMNS, *self.group_columns) if c not in frame.columns]
        if missing:
            raise KeyError(f"demand model input lacks column(s) {', '.join(missing)}")
        g = self.group_index(frame)
        known = g >= 0
        gi = np.where(known, g, 0)
        products = frame["product_id"].astype(str).to_numpy()
        cal = calendar_features(frame["day_of_week"].to_numpy(), frame["day_of_year"].to_numpy())
        p = frame["price"].to_numpy(np.float64) if price is None else np.asarray(price, dtype=np.float64)
        treatment = np.log(p / frame["list_price"].to_numpy(np.float64))
        residual = treatment - self.price(products, gi, cal)
        beta, level = np.asarray(self.elasticity)[gi], np.asarray(self.level)[gi]
        out = self.demand(products, gi, cal) + level + beta * residual
        return np.where(known, out, np.nan)

    def predict_units(self, frame: pd.DataFrame, price: np.ndarray | None = None) -> np.ndarray:
        """Expected units of each row (its impressions times the rate per impression)."""
        return frame["impressions"].to_numpy(np.float64) * np.exp(self.log_rate(frame, price))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DemandModel":
        def nuisance(d: dict[str, Any]) -> Nuisance:
            return Nuisance(
                {str(k): float(v) for k, v in d["product_effect"].items()},
                tuple(d["intercept"]),
                tuple(tuple(row) for row in d["calendar"]),
            )

        fields = {k: tuple(v) for k, v in data.items() if k not in ("demand", "price", "confidence")}
        return cls(
            **fields,
            confidence=float(data["confidence"]),
            demand=nuisance(data["demand"]),
            price=nuisance(data["price"]),
        )


def save_demand_model(folder: Path, model: DemandModel) -> dict[str, str]:
    """Write the fitted state; returns the ``artifacts`` mapping for ``mlflow.pyfunc.log_model``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demand_model.json"
    path.write_text(json.dumps(model.to_dict(), sort_keys=True))
    return {MODEL_ARTIFACT: str(path)}


def load_demand_model(path: str | Path) -> DemandModel:
    return DemandModel.from_dict(json.loads(Path(path).read_text()))


class ElasticityPyfunc(PythonModel):
    """MLflow pyfunc: product-day rows in (``INPUT_COLUMNS`` + the group columns), expected units out (float64).

    ``params={"price_multiplier": x}`` forecasts the same rows at x times their price (a what-if).
    ``unwrap_python_model().demand_model`` is the fitted :class:`DemandModel` (elasticities and intervals).
    """

    def load_context(self, context: PythonModelContext) -> None:
        self.demand_model = load_demand_model(context.artifacts[MODEL_ARTIFACT])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        multiplier = float((params or {}).get("price_multiplier", 1.0))
        price = model_input["price"].to_numpy(np.float64) * multiplier
        return self.demand_model.predict_units(model_input, price)


# MLflow executes this file under a module name of its own when it logs or loads the model; importing it as part
# of the package (training does) only defines the classes above.
if __name__ != "training.elasticity.pyfunc":
    mlflow.models.set_model(ElasticityPyfunc())
