"""The conversion model as MLflow logs and serves it: preprocessing + MLP + the pyfunc wrapper, in one file.

MLflow 3 saves this file *as code* with the model (models-from-code) and executes it when the model is loaded;
pickled pyfunc models are refused on load by default since MLflow 3.x. So this module is self-contained on
purpose: it imports numpy, pandas, torch and mlflow, and of the project only the network block
``training/shared/nets.py``, which is logged with the model (``code_paths``); a logged model carries the exact
preprocessing and network code it was trained with. Training imports the same classes from
here, so there is one implementation of the feature transform for training and serving (no skew).

The fitted state travels as two artifacts of the logged model: ``preprocessing`` (JSON: columns, categories,
means, standard deviations, network kind and sizes) and ``weights`` (a torch ``state_dict``).

Two networks, one contract (a logit of P(convert) per session):

* :class:`ConversionFunnel` (the nightly's, where the training set has the basket label): P(convert) =
  P(basket) x P(convert | basket), each stage a network of its own, the second in product form (see the class);
* :class:`ConversionMLP`, a single stage (data without a basket stage, such as the UCI benchmark's).

``predict`` returns P(convert); with the inference param ``output="stages"`` it returns a frame with
``p_convert``, ``p_basket`` and ``p_checkout`` (the stage probabilities; null for a single-stage model).
"""

import copy
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

UNKNOWN = "__unknown__"  # the one-hot bucket for categories not seen in training (and nulls)
PREPROCESSING_ARTIFACT = "preprocessing"
STAGES = ("basket", "checkout")  # the funnel's stages, in order
WEIGHTS_ARTIFACT = "weights"


@dataclass(frozen=True)
class ConversionPreprocessor:
    """Raw feature columns -> float32 matrix, fitted on the training rows only.

    * KPIs (non-negative, heavy-tailed): ``log1p``, then standardized; a missing value becomes the training mean.
      Count KPIs (``count_columns``: errors, long tasks) are standardized as counts, without the log: an effect
      per error is linear in the count, and ``log1p`` would bend a 5% change of a count of 1 into a 2.5% one.
    * history columns (null means no history, e.g. anonymous): a 0/1 null indicator per column, then
      ``log1p``, standardized, nulls filled with the training mean (0 after standardizing);
    * categoricals: one-hot over the training categories plus an unknown bucket (unseen values and nulls);
    * flags (``is_anonymous``): as 0/1.
    """

    kpi_columns: tuple[str, ...]
    history_columns: tuple[str, ...]
    flag_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]  # per categorical column its training values; the unknown bucket follows
    kpi_mean: tuple[float, ...]
    kpi_std: tuple[float, ...]
    history_mean: tuple[float, ...]
    history_std: tuple[float, ...]
    count_columns: tuple[str, ...] = ()  # the KPIs among kpi_columns that enter as counts, not log1p

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        kpi_columns: list[str],
        history_columns: list[str],
        flag_columns: list[str],
        categorical_columns: list[str],
        count_columns: list[str] | tuple[str, ...] = (),
    ) -> "ConversionPreprocessor":
        unknown = [c for c in count_columns if c not in kpi_columns]
        if unknown:
            raise KeyError(f"count column(s) {unknown} are not among the KPI columns")
        kpi = _kpi_values(frame, kpi_columns, count_columns)
        hist = _log1p(frame, history_columns)
        return cls(
            kpi_columns=tuple(kpi_columns),
            history_columns=tuple(history_columns),
            flag_columns=tuple(flag_columns),
            categorical_columns=tuple(categorical_columns),
            categories=tuple(
                tuple(sorted(str(v) for v in frame[c].dropna().unique() if str(v) != UNKNOWN))
                for c in categorical_columns
            ),
            kpi_mean=_nanmean(kpi),
            kpi_std=_nanstd(kpi),
            history_mean=_nanmean(hist),
            history_std=_nanstd(hist),
            count_columns=tuple(count_columns),
        )

    @property
    def input_columns(self) -> list[str]:
        """The raw columns the transform reads (history columns may be absent: absent means null)."""
        return [*self.categorical_columns, *self.flag_columns, *self.kpi_columns, *self.history_columns]

    @property
    def required_columns(self) -> list[str]:
        return [*self.categorical_columns, *self.flag_columns, *self.kpi_columns]

    @property
    def feature_names(self) -> list[str]:
        """Names of the transformed matrix's columns, in order."""
        return [
            *(f"{c}={v}" for c, values in self._categorical() for v in (*values, UNKNOWN)),
            *self.flag_columns,
            *(c if c in self.count_columns else f"log1p_{c}" for c in self.kpi_columns),
            *(f"log1p_{c}" for c in self.history_columns),
            *(f"{c}_is_null" for c in self.history_columns),
        ]

    @property
    def context_indices(self) -> list[int]:
        """Columns of the matrix that are not KPIs: device, channel, flags, history (the funnel's context net)."""
        kpi_names = {c if c in self.count_columns else f"log1p_{c}" for c in self.kpi_columns}
        return [i for i, name in enumerate(self.feature_names) if name not in kpi_names]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input matrix (rows of ``frame`` in order), float32."""
        missing = [c for c in self.required_columns if c not in frame.columns]
        if missing:
            raise KeyError(f"conversion model input lacks column(s) {', '.join(missing)}")
        n = len(frame)
        blocks: list[np.ndarray] = []
        for column, values in self._categorical():
            codes = pd.Categorical(frame[column].astype("string"), categories=list(values)).codes.astype(np.int64)
            codes[codes < 0] = len(values)  # unseen and null values share the unknown bucket
            blocks.append(np.eye(len(values) + 1, dtype=np.float32)[codes])
        for column in self.flag_columns:
            blocks.append(_numeric(frame[column]).fillna(0.0).to_numpy(np.float32).reshape(n, 1))
        kpi = _kpi_values(frame, self.kpi_columns, self.count_columns)
        kpi = (kpi - np.asarray(self.kpi_mean)) / np.asarray(self.kpi_std)
        blocks.append(np.nan_to_num(kpi, nan=0.0).astype(np.float32))
        history = pd.DataFrame(
            {c: frame[c] if c in frame.columns else np.nan for c in self.history_columns}, index=frame.index
        )
        hist = _log1p(history, list(self.history_columns))
        scaled = (hist - np.asarray(self.history_mean)) / np.asarray(self.history_std)
        blocks.append(np.nan_to_num(scaled, nan=0.0).astype(np.float32))
        blocks.append(np.isnan(hist).astype(np.float32))
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((n, 0), np.float32)

    def _categorical(self) -> list[tuple[str, tuple[str, ...]]]:
        return list(zip(self.categorical_columns, self.categories, strict=True))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state. Column order is the matrix layout, so it lives in lists, never in mapping keys."""
        return {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ConversionPreprocessor":
        fields = {k: tuple(v) for k, v in data.items() if k != "categories"}
        return cls(categories=tuple(tuple(v) for v in data["categories"]), **fields)


def _numeric(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _log1p(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    if not columns:
        return np.zeros((len(frame), 0))
    values = np.column_stack([_numeric(frame[c]).to_numpy() for c in columns])
    return np.log1p(np.clip(values, 0.0, None))


def _kpi_values(frame: pd.DataFrame, kpi_columns, count_columns) -> np.ndarray:
    """The KPI block before standardizing: ``log1p`` of each KPI, the count KPIs as they are (negatives clipped)."""
    values = _log1p(frame, list(kpi_columns))
    for i, column in enumerate(kpi_columns):
        if column in count_columns:
            values[:, i] = np.clip(_numeric(frame[column]).to_numpy(), 0.0, None)
    return values


def _nanmean(values: np.ndarray) -> tuple[float, ...]:
    means = []
    for col in values.T:
        finite = col[~np.isnan(col)]
        means.append(float(finite.mean()) if len(finite) else 0.0)
    return tuple(means)


def _nanstd(values: np.ndarray) -> tuple[float, ...]:
    stds = []
    for col in values.T:
        finite = col[~np.isnan(col)]
        std = float(finite.std()) if len(finite) > 1 else 0.0
        stds.append(std if std > 1e-8 and math.isfinite(std) else 1.0)  # constant columns stay 0 after scaling
    return tuple(stds)


ConversionMLP = ScoreMLP  # the single-stage network: the hidden layers, then one logit per session


def _logit_of_log(log_p: torch.Tensor) -> torch.Tensor:
    """logit(p) from log(p), for p < 1: ``log p - log(1 - p)``, without forming p."""
    log_p = torch.clamp(log_p, max=-1e-7)
    return log_p - torch.log(-torch.expm1(log_p))


class CheckoutNet(nn.Module):
    """P(convert | basket) = sigmoid(h) x sigmoid(g(context)), h = sum_k beta_k kpi_k + f(context); forward: its logit.

    * A basket converts when the shopper completes checkout, which KPIs can hinder (``h``), and something in it is
      bought, which depends on who shops, not on the page's speed (``g``). One logistic output for both would bend
      a KPI's effect wherever the second factor is far from 1; the product keeps each factor logistic.
    * Each KPI shifts the checkout log-odds by ``beta_k`` per unit of its model input (log1p of a timing, a count as
      it is), whatever the context: ``kpi_effects`` are one coefficient per KPI, an elasticity of the checkout
      odds. ``f`` and ``g`` are networks of the context (device, channel, flags, history) only.
    * ``calibration`` holds a Platt slope and intercept applied to the output logit ((1, 0) unless set).
    """

    def __init__(
        self,
        n_features: int,
        hidden_sizes: list[int],
        dropout: float,
        context: list[int],
        kpis: list[int] | None = None,
    ) -> None:
        super().__init__()
        kpis = [i for i in range(n_features) if i not in set(context)] if kpis is None else kpis
        self.kpi_effects = nn.Linear(len(kpis), 1, bias=False)
        nn.init.zeros_(self.kpi_effects.weight)
        self.f = ScoreMLP(len(context), hidden_sizes, dropout)
        self.g = ScoreMLP(len(context), hidden_sizes, dropout)
        self.register_buffer("context", torch.tensor(context, dtype=torch.long))
        self.register_buffer("kpis", torch.tensor(kpis, dtype=torch.long))
        self.register_buffer("calibration", torch.tensor([1.0, 0.0]))

    def checkout_logit(self, x: torch.Tensor) -> torch.Tensor:
        """``h``: the log-odds of completing checkout."""
        return self.kpi_effects(x[:, self.kpis]).squeeze(-1) + self.f(x[:, self.context])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checkout, bought = self.checkout_logit(x), self.g(x[:, self.context])
        log_p = nn.functional.logsigmoid(checkout) + nn.functional.logsigmoid(bought)
        return self.calibration[0] * _logit_of_log(log_p) + self.calibration[1]

    def context_weights(self) -> list[torch.Tensor]:
        """The weights of the context networks (what an L2 penalty shrinks; the KPI effects are left free)."""
        return [p for name, p in self.named_parameters() if name.startswith(("f.", "g.")) and name.endswith("weight")]


class ConversionFunnel(nn.Module):
    """P(convert) = P(basket) x P(convert | basket): ``forward`` is the logit of the product, ``stages`` the two.

    ``basket``: a :class:`ConversionMLP` on every session (did the shopper add anything to the cart);
    ``checkout``: a :class:`CheckoutNet` on the sessions with a basket. Each stage is trained, stopped early and
    calibrated on its own rows; composed, the model keeps the single-stage contract (one logit per session).
    """

    def __init__(self, basket: nn.Module, checkout: CheckoutNet) -> None:
        super().__init__()
        self.basket, self.checkout = basket, checkout

    def stage_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.basket(x), self.checkout(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basket, checkout = self.stage_logits(x)
        return _logit_of_log(nn.functional.logsigmoid(basket) + nn.functional.logsigmoid(checkout))

    @classmethod
    def build(
        cls,
        n_features: int,
        hidden_sizes: list[int],
        dropout: float,
        context: list[int],
        checkout_sizes: list[int],
        checkout_kpis: list[int] | None = None,
    ) -> "ConversionFunnel":
        basket = ConversionMLP(n_features, hidden_sizes, dropout)
        return cls(basket, CheckoutNet(n_features, checkout_sizes, 0.0, context, checkout_kpis))


def calibrated(module: nn.Module, slope: float, intercept: float) -> nn.Module:
    """A copy of a stage (or single-stage) network whose output logit is ``slope * logit + intercept``."""
    out = copy.deepcopy(module)
    with torch.no_grad():
        if isinstance(out, CheckoutNet):
            out.calibration.copy_(torch.tensor([slope * float(out.calibration[0]),
                                                slope * float(out.calibration[1]) + intercept]))
        else:  # a ScoreMLP: folded into the output layer
            last = out.net[-1]
            last.weight.mul_(slope)
            last.bias.mul_(slope).add_(intercept)
    return out.eval()


@torch.no_grad()
def predict_proba(
    module: nn.Module, preprocessor: ConversionPreprocessor, frame: pd.DataFrame, batch_size: int = 65536
) -> np.ndarray:
    """P(convert) per row of ``frame`` (raw feature columns), computed on the module's device."""
    return predict_matrix(module, preprocessor.transform(frame), batch_size)


@torch.no_grad()
def predict_matrix(module: nn.Module, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """P(convert) per row of an already transformed matrix (``ConversionPreprocessor.transform``)."""
    module.eval()
    device = next(module.parameters()).device
    x_all = torch.from_numpy(x)
    out = [torch.sigmoid(module(x_all[i : i + batch_size].to(device))).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


@torch.no_grad()
def predict_stages(module: nn.Module, x: np.ndarray, batch_size: int = 65536) -> np.ndarray | None:
    """(P(basket), P(convert | basket)) per row of a transformed matrix, shape (n, 2); None for a single stage."""
    if not isinstance(module, ConversionFunnel):
        return None
    module.eval()
    device = next(module.parameters()).device
    x_all, out = torch.from_numpy(x), []
    for i in range(0, len(x), batch_size):
        basket, checkout = module.stage_logits(x_all[i : i + batch_size].to(device))
        out.append(torch.sigmoid(torch.stack([basket, checkout], dim=1)).cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, 2))


def save_model_files(
    folder: Path, preprocessor: ConversionPreprocessor, module: nn.Module, hidden_sizes: list[int], dropout: float
) -> dict[str, str]:
    """Write the fitted state; returns the ``artifacts`` mapping for ``mlflow.pyfunc.log_model``."""
    folder.mkdir(parents=True, exist_ok=True)
    network: dict[str, Any] = {
        "kind": "funnel" if isinstance(module, ConversionFunnel) else "single",
        "n_features": len(preprocessor.feature_names),
        "hidden_sizes": hidden_sizes,
        "dropout": dropout,
    }
    if isinstance(module, ConversionFunnel):
        network["context"] = [int(i) for i in module.checkout.context]
        network["checkout_hidden_sizes"] = [layer.out_features for layer in module.checkout.f.net[:-1]
                                            if isinstance(layer, nn.Linear)]
        network["checkout_kpis"] = [int(i) for i in module.checkout.kpis]
    spec = {"preprocessor": preprocessor.to_dict(), "network": network}
    spec_path, weights_path = folder / "preprocessing.json", folder / "weights.pt"
    spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, weights_path)
    return {PREPROCESSING_ARTIFACT: str(spec_path), WEIGHTS_ARTIFACT: str(weights_path)}


def load_model_files(spec_path: str, weights_path: str) -> tuple[ConversionPreprocessor, nn.Module]:
    spec = json.loads(Path(spec_path).read_text())
    preprocessor = ConversionPreprocessor.from_dict(spec["preprocessor"])
    net = spec["network"]
    sizes, dropout = list(net["hidden_sizes"]), float(net["dropout"])
    if net.get("kind", "single") == "funnel":
        module: nn.Module = ConversionFunnel.build(
            net["n_features"], sizes, dropout, list(net["context"]), list(net["checkout_hidden_sizes"]),
            list(net["checkout_kpis"]),
        )
    else:
        module = ConversionMLP(net["n_features"], sizes, dropout)
    module.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    module.eval()
    return preprocessor, module


class ConversionPyfunc(PythonModel):
    """MLflow pyfunc: a pandas DataFrame of raw feature columns in, P(convert) per row out (float64 array).

    ``params={"output": "stages"}`` returns a frame of ``p_convert``, ``p_basket``, ``p_checkout`` instead.
    """

    def load_context(self, context: PythonModelContext) -> None:
        self.preprocessor, self.module = load_model_files(
            context.artifacts[PREPROCESSING_ARTIFACT], context.artifacts[WEIGHTS_ARTIFACT]
        )

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        output = (params or {}).get("output", "p_convert")
        if output == "p_convert":
            return predict_proba(self.module, self.preprocessor, model_input)
        if output != "stages":
            raise ValueError(f"output must be 'p_convert' or 'stages', not {output!r}")
        x = self.preprocessor.transform(model_input)
        stages = predict_stages(self.module, x)
        if stages is None:  # a single-stage model has no funnel to report
            return pd.DataFrame({"p_convert": predict_matrix(self.module, x), "p_basket": np.nan, "p_checkout": np.nan})
        return pd.DataFrame({"p_convert": predict_matrix(self.module, x), "p_basket": stages[:, 0],
                             "p_checkout": stages[:, 1]})


# MLflow executes this file under a module name of its own when it logs or loads the model; importing it as part
# of the package (training does) only defines the classes above.
if __name__ != "training.conversion.pyfunc":
    mlflow.models.set_model(ConversionPyfunc())
