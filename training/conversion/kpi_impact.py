"""KPI impact analysis: which KPIs a conversion model leans on, and what improving each one is worth.

Model-agnostic: it needs ``predict(frame) -> P(convert)`` per row and a labelled holdout. Four views:

* **importance**: permutation importance on the holdout (``sklearn.inspection.permutation_importance``): the drop
  in ROC-AUC and the increase in log loss when one KPI's values are shuffled across sessions, mean and standard
  deviation over seeded repeats;
* **what-if**: every holdout session with one KPI improved by x (``kpi * (1 - x)`` for lower-is-better KPIs,
  ``kpi * (1 + x)`` capped at the KPI's upper bound for higher-is-better ones; counts are scaled too and stay
  continuous). The mean change of P(convert) is the change in expected conversion rate; times 100 000 it is the
  expected converted sessions per 100k sessions. Reported over all holdout sessions and over the non-converted
  ones, each with a 95% bootstrap interval, and the KPIs are ranked by the 5% figure over all sessions;
* **by funnel stage**: when ``predict`` returns the probabilities of two stages per session (P(basket) and
  P(convert | basket); P(convert) is their product), each what-if change is split between the stages by the
  Shapley rule for a product: the basket stage is credited ``(a1 - a0) (b0 + b1) / 2`` and the checkout stage
  ``(b1 - b0) (a0 + a1) / 2``, which add up to the change of ``a b`` exactly. Each part has its intervals too;
* **flips**: the common practice of counting sessions whose thresholded prediction goes from 0 to 1, reported
  beside the expected value at several thresholds to show how much it depends on the threshold (the expected
  value does not depend on one).

Two intervals, because they answer different questions. ``ci_*`` resamples the holdout's sessions with the
model held fixed: how precisely this model's figure is known for this population. ``model_ci_*`` (when
``refits`` are given: predict functions of the same model refitted on bootstrap resamples of its training data;
the conversion model resamples whole days)
adds the spread between refitted models: how precisely the data pin the effect down. Only the second is an
interval for the true effect; when KPIs are strongly collinear (see ``collinearity_r2``), it is wide, because
the data cannot say which of them the outcome responds to.

This module is the analysis only: :mod:`training.conversion.kpi_impact_report` renders a result (Markdown, HTML,
JSON, plots) and :mod:`training.conversion.kpi_impact_cli` runs both on a logged model from the command line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.inspection import permutation_importance
from sklearn.metrics import log_loss, roc_auc_score

from feature_repo.contract.schema import SESSION_KPIS
from training.shared.metrics import expected_calibration_error

logger = logging.getLogger(__name__)

# rows -> P(label) per row (n,), or the probabilities of the funnel's stages (n, S) whose product P(label) is
Predict = Callable[[pd.DataFrame], np.ndarray]
# ``overrides -> stage probabilities (n, S)`` for one fixed frame with the given columns replaced (:func:`bind_rows`)
Bound = Callable[[Mapping[str, np.ndarray]], np.ndarray]
Direction = Literal["decrease", "increase"]

HIGHER_IS_BETTER = frozenset({"cdn_hit_ratio"})
# Upper bounds of the contract's KPIs (cdn_hit_ratio <= 1): an improved value never leaves its range.
CONTRACT_UPPER_BOUNDS: dict[str, float] = {c.name: float(c.max) for c in SESSION_KPIS if c.max is not None}
FLIP_TOP_SHARES = (0.01, 0.02, 0.05, 0.10)
POPULATIONS = ("all", "non_converted")
PER_100K = 100_000


# --- results -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KpiImportance:
    """Permutation importance of one KPI on the holdout (positive: the model needs the KPI)."""

    kpi: str
    roc_auc_drop: float
    roc_auc_drop_std: float
    log_loss_increase: float
    log_loss_increase_std: float


@dataclass(frozen=True)
class StageDelta:
    """The part of a what-if change credited to one funnel stage (see the module docstring), with its intervals."""

    stage: str
    delta_conversion_rate: float
    ci_low: float
    ci_high: float
    model_ci_low: float | None = None
    model_ci_high: float | None = None


@dataclass(frozen=True)
class WhatIf:
    """Mean change of P(convert) when one KPI improves by ``improvement`` (0.05 = 5%) on a population of sessions."""

    kpi: str
    improvement: float
    population: str  # "all" holdout sessions or the "non_converted" ones
    sessions: int
    delta_conversion_rate: float  # absolute, e.g. 0.0009 = +0.09 percentage points
    ci_low: float  # 95% percentile bootstrap over sessions, the model held fixed
    ci_high: float
    model_ci_low: float | None = None  # 95%, with the spread of refitted models added; None without refits
    model_ci_high: float | None = None
    stages: tuple[StageDelta, ...] = ()  # the change split by funnel stage (one entry for a single-stage model)

    def stage_delta(self, stage: str) -> float:
        """The part of the change credited to ``stage``."""
        return self.stage(stage).delta_conversion_rate

    def stage(self, stage: str) -> StageDelta:
        for part in self.stages:
            if part.stage == stage:
                return part
        raise KeyError(f"no stage {stage!r} in {[p.stage for p in self.stages]}")

    @property
    def main_stage(self) -> str:
        """The stage credited with most of the change (the largest absolute part)."""
        return max(self.stages, key=lambda part: abs(part.delta_conversion_rate)).stage

    @property
    def delta_per_100k(self) -> float:
        """Expected additional converted sessions per 100 000 sessions."""
        return PER_100K * self.delta_conversion_rate

    @property
    def interval(self) -> tuple[float, float]:
        """The widest interval available: with model uncertainty when refits were given, else over sessions."""
        if self.model_ci_low is not None and self.model_ci_high is not None:
            return self.model_ci_low, self.model_ci_high
        return self.ci_low, self.ci_high

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta_per_100k": self.delta_per_100k}


@dataclass(frozen=True)
class FlipCount:
    """Sessions whose thresholded prediction goes from 0 to 1 when one KPI improves (the seed practice)."""

    kpi: str
    threshold_name: str
    threshold: float
    flips: int
    predicted_positive: int  # sessions at or above the threshold before the improvement


@dataclass
class KpiImpactResult:
    """Everything :func:`analyze_kpi_impact` found; ``to_dict`` is the JSON the report writes."""

    label: str
    kpis: tuple[str, ...]
    stages: tuple[str, ...]  # the funnel's stages, or one for a single-stage model
    directions: dict[str, str]
    improvements: tuple[float, ...]
    rank_at: float
    sessions: int
    converted: int
    mean_prediction: float
    importance: tuple[KpiImportance, ...]
    importance_rows: int
    importance_repeats: int
    what_if: tuple[WhatIf, ...]
    ranking: tuple[str, ...]  # KPIs by the what-if at ``rank_at`` over all sessions, largest gain first
    threshold: float
    threshold_rule: str
    flips: tuple[FlipCount, ...]
    collinearity_r2: dict[str, float]
    n_bootstrap: int
    n_refits: int
    seed: int
    seconds: float
    y_true: np.ndarray = field(repr=False)
    p: np.ndarray = field(repr=False)

    @property
    def base_rate(self) -> float:
        return self.converted / self.sessions

    def what_if_for(self, kpi: str, improvement: float | None = None, population: str = "all") -> WhatIf:
        pct = self.rank_at if improvement is None else improvement
        for row in self.what_if:
            if row.kpi == kpi and row.population == population and np.isclose(row.improvement, pct):
                return row
        raise KeyError(f"no what-if for {kpi} at {pct:.0%} on {population} sessions")

    def importance_for(self, kpi: str) -> KpiImportance:
        for row in self.importance:
            if row.kpi == kpi:
                return row
        raise KeyError(f"no importance for {kpi}")

    def flips_for(self, kpi: str, threshold_name: str = "default") -> FlipCount:
        for row in self.flips:
            if row.kpi == kpi and row.threshold_name == threshold_name:
                return row
        raise KeyError(f"no flip count for {kpi} at threshold {threshold_name!r}")

    def ranking_table(self) -> pd.DataFrame:
        """One row per KPI in ranking order: the what-if at ``rank_at``, importance, flips and collinearity."""
        rows = []
        for rank, kpi in enumerate(self.ranking, start=1):
            w, nc = self.what_if_for(kpi), self.what_if_for(kpi, population="non_converted")
            low, high = w.interval
            imp = self.importance_for(kpi)
            rows.append(
                {
                    "rank": rank,
                    "kpi": kpi,
                    "direction": self.directions[kpi],
                    "delta_per_100k": w.delta_per_100k,
                    "ci_low_per_100k": PER_100K * low,
                    "ci_high_per_100k": PER_100K * high,
                    "non_converted_delta_per_100k": nc.delta_per_100k,
                    **{f"{part.stage}_per_100k": PER_100K * part.delta_conversion_rate for part in w.stages},
                    "main_stage": w.main_stage,
                    "roc_auc_drop": imp.roc_auc_drop,
                    "log_loss_increase": imp.log_loss_increase,
                    "flips": self.flips_for(kpi).flips,
                    "collinearity_r2": self.collinearity_r2[kpi],
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "sessions": self.sessions,
            "converted": self.converted,
            "base_rate": self.base_rate,
            "mean_prediction": self.mean_prediction,
            "kpis": list(self.kpis),
            "stages": list(self.stages),
            "directions": self.directions,
            "improvements": list(self.improvements),
            "rank_at": self.rank_at,
            "ranking": list(self.ranking),
            "importance": [asdict(r) for r in self.importance],
            "importance_rows": self.importance_rows,
            "importance_repeats": self.importance_repeats,
            "what_if": [r.to_dict() for r in self.what_if],
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "flips": [asdict(r) for r in self.flips],
            "collinearity_r2": self.collinearity_r2,
            "n_bootstrap": self.n_bootstrap,
            "n_refits": self.n_refits,
            "seed": self.seed,
            "seconds": self.seconds,
            "ece": expected_calibration_error(self.y_true, self.p),
        }


# --- the analysis --------------------------------------------------------------------------------------------------
def default_directions(kpis: Sequence[str]) -> dict[str, Direction]:
    """Lower is better for every KPI but the contract's higher-is-better ones (``cdn_hit_ratio``)."""
    return {k: "increase" if k in HIGHER_IS_BETTER else "decrease" for k in kpis}


def improved_values(
    values: pd.Series | np.ndarray, direction: Direction, improvement: float, upper: float | None = None
) -> np.ndarray:
    """The KPI after an improvement of ``improvement`` (0.05 = 5%); nulls stay null, nothing crosses ``upper``."""
    x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    if direction == "decrease":
        return x * (1.0 - improvement)
    if direction != "increase":
        raise ValueError(f"direction must be 'decrease' or 'increase', not {direction!r}")
    better = x * (1.0 + improvement)
    if upper is None:
        return better
    return np.where(x > upper, x, np.minimum(better, upper))


def analyze_kpi_impact(
    predict: Predict,
    holdout: pd.DataFrame,
    kpis: Sequence[str],
    *,
    label: str,
    improve: Mapping[str, Direction] | None = None,
    improvements: Sequence[float] = (0.05, 0.06, 0.07, 0.08),
    n_bootstrap: int = 200,
    seed: int = 7,
    threshold: float | None = None,
    rank_at: float = 0.05,
    n_repeats: int = 5,
    importance_max_rows: int = 50_000,
    refits: Sequence[Predict] = (),
    refit_rows: int = 2_000,
    upper_bounds: Mapping[str, float] | None = None,
    counts: Collection[str] | None = None,
    stages: Sequence[str] | None = None,
) -> KpiImpactResult:
    """Importance, what-if and flip counts of ``kpis`` for the model behind ``predict`` on ``holdout``.

    Args:
        predict: rows (the holdout's columns) -> P(label) per row; called in batches of whole frames. It may
            also offer ``bind(frame)``, for scoring one frame many times with a few columns replaced
            (:func:`bind_rows`); so may each of ``refits``.
        holdout: the sessions, with every column ``predict`` needs and the 0/1 (or bool) ``label``.
        kpis: the columns to analyse; each is scaled, never shifted.
        improve: per KPI ``decrease`` or ``increase`` [default: decrease, except ``cdn_hit_ratio``].
        improvements: relative improvements (0.05 = 5%).
        n_bootstrap: session resamples for the intervals.
        seed: decides the bootstrap, the permutations and the subsamples.
        threshold: the flip count's headline threshold [default: the score above which as many sessions lie as
            converted, i.e. a classifier that predicts the base rate; F1-optimal thresholds are fitted on the
            same holdout and swing with a handful of sessions].
        rank_at: the improvement the ranking uses (must be one of ``improvements``).
        n_repeats: permutation repeats per KPI (0 skips the importance).
        importance_max_rows: permutation importance on at most this many sessions (a seeded subsample).
        refits: predict functions of the model refitted on bootstrap resamples of its training rows; with two
            or more, the what-if also gets ``model_ci_*`` (evaluated on ``refit_rows`` seeded sessions).
        upper_bounds: per KPI the largest value an increase may reach [default: the contract's maxima].
        counts: KPIs measured in whole events (errors, responses); an improved count between two integers is
            scored by interpolating the model's logits at both [default: KPIs whose values are all whole numbers].
        stages: names of the stages when ``predict`` returns one probability per funnel stage (n, S) [default:
            ``(label,)`` for one column, ``stage_1``, ``stage_2`` for two]. At most two stages.

    Returns:
        :class:`KpiImpactResult`; its ``ranking`` is by the what-if at ``rank_at`` over all sessions.
    """
    started = time.perf_counter()
    kpis = tuple(kpis)
    improvements = tuple(float(x) for x in improvements)
    if not kpis:
        raise ValueError("no KPIs to analyse")
    missing = [c for c in (*kpis, label) if c not in holdout.columns]
    if missing:
        raise KeyError(f"the holdout lacks column(s) {', '.join(missing)}")
    if not any(np.isclose(rank_at, x) for x in improvements):
        raise ValueError(f"rank_at {rank_at} is not one of the improvements {improvements}")
    if n_bootstrap < 20:
        raise ValueError(f"n_bootstrap={n_bootstrap}: a 95% interval needs at least 20 resamples")
    directions: dict[str, Direction] = {**default_directions(kpis), **dict(improve or {})}
    unknown = set(directions) - set(kpis)
    if unknown:
        raise KeyError(f"improve names KPI(s) not analysed: {sorted(unknown)}")
    bounds = dict(CONTRACT_UPPER_BOUNDS if upper_bounds is None else upper_bounds)

    frame = holdout.reset_index(drop=True)
    y = _labels(frame[label])
    scored = bind_rows(predict, frame)
    stages0 = scored({})
    stage_names = _stage_names(stages, stages0.shape[1], label)
    p0 = stages0.prod(axis=1)
    rng = np.random.default_rng(seed)

    importance = _permutation_importance(predict, frame, kpis, y, n_repeats, importance_max_rows, rng)
    rank_index = next(j for j, x in enumerate(improvements) if np.isclose(rank_at, x))
    scenarios = _Scenarios(
        kpis,
        directions,
        improvements,
        bounds,
        frozenset(k for k in kpis if _is_count(frame[k])) if counts is None else frozenset(counts),
    )
    deltas = scenarios.deltas(scored, frame, stages0)  # (n, K, P, 1 + S): the change, then its stage parts
    boot = _bootstrap_means(deltas, y, n_bootstrap, rng)  # (2 populations, B, K*P*(1+S))
    model_half = None
    if len(refits) >= 2:
        model_half = _model_half_widths(boot, y, frame, refits, scenarios, refit_rows, rng)
    elif refits:
        logger.warning("one refit gives no spread between models: model intervals need two or more")
    what_if = _what_if_rows(deltas, y, boot, kpis, improvements, stage_names, model_half)
    at_rank = {
        r.kpi: r.delta_conversion_rate for r in what_if if r.population == "all" and np.isclose(r.improvement, rank_at)
    }
    ranking = tuple(sorted(kpis, key=lambda k: -at_rank[k]))

    base_threshold = float(np.quantile(p0, 1.0 - y.mean()))
    headline = base_threshold if threshold is None else float(threshold)
    rule = (
        f"base-rate quantile: the top {y.mean():.2%} of scores are predicted to convert"
        if threshold is None
        else "given by the caller"
    )
    flips = _flip_counts(p0, p0[:, None] + deltas[:, :, rank_index, 0], kpis, headline, y.mean())

    result = KpiImpactResult(
        label=label,
        kpis=kpis,
        stages=stage_names,
        directions={k: directions[k] for k in kpis},
        improvements=improvements,
        rank_at=float(rank_at),
        sessions=len(frame),
        converted=int(y.sum()),
        mean_prediction=float(p0.mean()),
        importance=importance,
        importance_rows=min(len(frame), importance_max_rows),
        importance_repeats=n_repeats,
        what_if=tuple(what_if),
        ranking=ranking,
        threshold=headline,
        threshold_rule=rule,
        flips=flips,
        collinearity_r2=collinearity_r2(frame, kpis),
        n_bootstrap=n_bootstrap,
        n_refits=len(refits),
        seed=seed,
        seconds=time.perf_counter() - started,
        y_true=y,
        p=p0,
    )
    logger.info(
        "KPI impact on %d sessions in %.1f s: %s",
        len(frame),
        result.seconds,
        ", ".join(f"{k} {PER_100K * at_rank[k]:+.1f}/100k" for k in ranking[:5]),
    )
    return result


def _labels(values: pd.Series) -> np.ndarray:
    y = pd.to_numeric(values.astype("float64"), errors="raise").to_numpy()
    if np.isnan(y).any() or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("the label must be 0/1 or bool without nulls")
    if y.min() == y.max():
        raise ValueError(f"the holdout's {len(y)} sessions hold one class only: nothing to analyse")
    return y.astype(np.int64)


def _stage_names(stages: Sequence[str] | None, width: int, label: str) -> tuple[str, ...]:
    if width > 2:
        raise ValueError(f"predict returned {width} stage probabilities per row: the split supports one or two")
    names = tuple(stages) if stages is not None else ((label,) if width == 1 else tuple(f"stage_{i + 1}" for i in
                                                                                          range(width)))
    if len(names) != width:
        raise ValueError(f"{len(names)} stage names {names} for {width} stage probabilities per row")
    return names


def _predict(predict: Predict, frame: pd.DataFrame) -> np.ndarray:
    """P(label) per row: the product of the stage probabilities."""
    return _checked(predict(frame), len(frame)).prod(axis=1)


def _checked(values: Any, n: int) -> np.ndarray:
    """Probabilities as (n, S): one column per funnel stage (one for a plain P(label))."""
    p = np.asarray(values, dtype=np.float64)
    p = p.reshape(-1, 1) if p.ndim <= 1 else p
    if p.ndim != 2 or len(p) != n:
        raise ValueError(f"predict returned {len(p)} values for {n} rows")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("predict must return probabilities in [0, 1]")
    return p


def bind_rows(predict: Predict, frame: pd.DataFrame) -> Bound:
    """``overrides -> predict(frame with the columns in overrides replaced)``, checked, for one fixed ``frame``.

    The analysis scores the same sessions hundreds of times with one KPI changed. A ``predict`` that has a
    ``bind(frame)`` method returning such a function (the conversion model's: it transforms ``frame`` once and
    rewrites only the changed KPI columns of its input matrix) is used as it is; any other is called on
    ``frame.assign(**overrides)``.
    """
    bind = getattr(predict, "bind", None)
    if callable(bind):
        bound: Bound = bind(frame)
    else:

        def bound(overrides: Mapping[str, np.ndarray]) -> np.ndarray:
            return predict(frame.assign(**overrides) if overrides else frame)

    def scored(overrides: Mapping[str, np.ndarray]) -> np.ndarray:
        return _checked(bound(overrides), len(frame))

    return scored


class _FramePredictor:
    """What ``permutation_importance`` scores: it shuffles the KPI columns, the rest of the row stays put."""

    def __init__(self, predict: Predict, frame: pd.DataFrame, kpis: tuple[str, ...]) -> None:
        self.predict_fn, self.frame, self.kpis = predict, frame, list(kpis)
        self.scored = bind_rows(predict, frame)

    def fit(self, *_: Any) -> _FramePredictor:  # pragma: no cover - sklearn's estimator protocol
        return self

    def predict_proba(self, kpi_rows: pd.DataFrame) -> np.ndarray:
        if kpi_rows.index.equals(self.frame.index):  # what sklearn passes: every row, in order, one column shuffled
            return self.scored({k: kpi_rows[k].to_numpy() for k in self.kpis}).prod(axis=1)
        rows = self.frame.loc[kpi_rows.index].copy()
        rows[self.kpis] = kpi_rows.to_numpy()
        return _predict(self.predict_fn, rows)


def _score(estimator: _FramePredictor, kpi_rows: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    p = estimator.predict_proba(kpi_rows)
    return {"roc_auc": float(roc_auc_score(y, p)), "neg_log_loss": -float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))}


def _permutation_importance(
    predict: Predict,
    frame: pd.DataFrame,
    kpis: tuple[str, ...],
    y: np.ndarray,
    n_repeats: int,
    max_rows: int,
    rng: np.random.Generator,
) -> tuple[KpiImportance, ...]:
    if n_repeats <= 0:
        return tuple(KpiImportance(k, float("nan"), float("nan"), float("nan"), float("nan")) for k in kpis)
    if len(frame) > max_rows:  # subsampled here: sklearn's max_samples would score the baseline on all rows
        rows = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
        frame, y = frame.iloc[rows].reset_index(drop=True), y[rows]
    kpi_rows = frame[list(kpis)].apply(pd.to_numeric, errors="coerce").astype("float64")
    out = permutation_importance(
        _FramePredictor(predict, frame, kpis),
        kpi_rows,
        y,
        scoring=_score,
        n_repeats=n_repeats,
        random_state=int(rng.integers(2**31 - 1)),
    )
    auc, ll = out["roc_auc"], out["neg_log_loss"]  # importance = baseline score - permuted score
    return tuple(
        KpiImportance(
            k,
            float(auc.importances_mean[i]),
            float(auc.importances_std[i]),
            float(ll.importances_mean[i]),
            float(ll.importances_std[i]),
        )
        for i, k in enumerate(kpis)
    )


@dataclass(frozen=True)
class _Scenarios:
    """The what-if grid: each KPI, alone, improved by each of ``improvements``."""

    kpis: tuple[str, ...]
    directions: Mapping[str, Direction]
    improvements: tuple[float, ...]
    bounds: Mapping[str, float]
    counts: frozenset[str]

    def deltas(self, scored: Bound, frame: pd.DataFrame, stages0: np.ndarray) -> np.ndarray:
        """Per session, KPI and improvement: the change of P(convert) and its parts by stage, shape (n, K, P, 1 + S).

        ``scored``: :func:`bind_rows` of the model on ``frame``; ``stages0``: its stage probabilities as they are.

        A count KPI improved to 2.85 errors is scored between the model's answers at 2 and 3 errors, interpolated
        on the logit scale (0.15 x logit P(2) + 0.85 x logit P(3), per stage): the model never saw a fractional
        count, so what it says between two integers is not learnt from data (on a log1p input, reading it off
        directly understates an effect linear in the count by about a quarter), and on the logit scale the
        interpolation is exact for an effect linear in the count's logit, which is how a rate 5% lower acts in a
        logistic model.
        """
        n, n_stages = stages0.shape
        deltas = np.empty((n, len(self.kpis), len(self.improvements), 1 + n_stages))
        for i, kpi in enumerate(self.kpis):
            for j, pct in enumerate(self.improvements):
                better = improved_values(frame[kpi], self.directions[kpi], pct, self.bounds.get(kpi))
                if kpi not in self.counts:
                    deltas[:, i, j] = _split(stages0, scored({kpi: better}))
                    continue
                low = np.floor(better)
                weight = np.nan_to_num(better - low, nan=0.0)
                p = scored({kpi: low})
                if (weight > 0).any():
                    high = scored({kpi: low + 1.0})
                    w = weight[:, None]
                    p = np.where(w > 0, _sigmoid((1.0 - w) * _logit(p) + w * _logit(high)), p)
                deltas[:, i, j] = _split(stages0, p)
        return deltas


def _split(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(n, 1 + S): the change of the stages' product, then each stage's Shapley share of it (S = 1 or 2)."""
    total = after.prod(axis=1) - before.prod(axis=1)
    if before.shape[1] == 1:
        return np.column_stack([total, total])
    (a0, b0), (a1, b1) = before.T, after.T
    return np.column_stack([total, (a1 - a0) * (b0 + b1) / 2.0, (b1 - b0) * (a0 + a1) / 2.0])


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1.0 - 1e-12)
    return np.log(q) - np.log1p(-q)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def _is_count(values: pd.Series) -> bool:
    """Whole, non-negative numbers only (a KPI measured in events, not in time or bytes)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    x = x[np.isfinite(x)]
    return len(x) > 0 and bool((x >= 0).all() and (x == np.round(x)).all())


def _bootstrap_counts(n: int, n_bootstrap: int, rng: np.random.Generator, chunk: int = 50) -> Iterator[np.ndarray]:
    """Yields (chunk, n) matrices: how often each session is drawn in each resample."""
    for start in range(0, n_bootstrap, chunk):
        draws = rng.integers(0, n, size=(min(chunk, n_bootstrap - start), n))
        yield np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)


def _bootstrap_means(deltas: np.ndarray, y: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Resampled means of the flattened deltas: shape (2, B, F), [all sessions, non-converted sessions]."""
    n = deltas.shape[0]
    flat = deltas.reshape(n, -1)
    non_converted = (y == 0).astype(np.float64)
    out = []
    for counts in _bootstrap_counts(n, n_bootstrap, rng):
        all_means = counts @ flat / n
        nc_counts = counts * non_converted
        nc_means = nc_counts @ flat / np.maximum(nc_counts.sum(axis=1, keepdims=True), 1.0)
        out.append(np.stack([all_means, nc_means]))
    return np.concatenate(out, axis=1)


def _what_if_rows(
    deltas: np.ndarray,
    y: np.ndarray,
    boot: np.ndarray,
    kpis: tuple[str, ...],
    improvements: tuple[float, ...],
    stages: tuple[str, ...],
    model_half: np.ndarray | None,
) -> list[WhatIf]:
    """One row per population, KPI and improvement; ``model_half``: (2, F) half-widths with the refits' spread."""
    low, high = np.percentile(boot, [2.5, 97.5], axis=1)  # (2, F)
    masks = {"all": np.ones(len(y), bool), "non_converted": y == 0}
    shape = deltas.shape[1:]  # (K, P, 1 + S)
    rows = []
    for m, population in enumerate(POPULATIONS):
        means = deltas[masks[population]].mean(axis=0).reshape(-1)
        half = None if model_half is None else model_half[m]
        for i, kpi in enumerate(kpis):
            for j, pct in enumerate(improvements):
                f0, *parts = (int(np.ravel_multi_index((i, j, c), shape)) for c in range(shape[2]))
                est, lo, hi, mlo, mhi = _interval(means, low[m], high[m], half, f0)
                stage_parts = tuple(
                    StageDelta(stage, *_interval(means, low[m], high[m], half, f))
                    for stage, f in zip(stages, parts, strict=True)
                )
                rows.append(
                    WhatIf(kpi, pct, population, int(masks[population].sum()), est, lo, hi, mlo, mhi, stage_parts)
                )
    return rows


def _interval(
    means: np.ndarray, low: np.ndarray, high: np.ndarray, half: np.ndarray | None, f: int
) -> tuple[float, float, float, float | None, float | None]:
    """Estimate, session interval and (with refits) model interval of flattened figure ``f``."""
    est = float(means[f])
    if half is None:
        return est, float(low[f]), float(high[f]), None, None
    return est, float(low[f]), float(high[f]), est - float(half[f]), est + float(half[f])


def _model_half_widths(
    boot: np.ndarray,
    y: np.ndarray,
    frame: pd.DataFrame,
    refits: Sequence[Predict],
    scenarios: _Scenarios,
    refit_rows: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Half-widths of ``model_ci_*``: t(m-1) * sqrt(variance between refits + variance over sessions), (2, F).

    Each refitted model is scored on the same seeded subsample of sessions, so the spread between refits is the
    model's (training data) uncertainty alone; the session bootstrap adds the holdout's sampling uncertainty.
    With a handful of refits a percentile interval is too coarse, hence the t quantile on their standard error.
    """
    n = len(frame)
    rows_idx = np.sort(rng.choice(n, size=min(n, refit_rows), replace=False))
    sub = frame.iloc[rows_idx].reset_index(drop=True)
    non_converted = y[rows_idx] == 0
    per_refit = []
    for refit in refits:
        scored = bind_rows(refit, sub)
        d = scenarios.deltas(scored, sub, scored({}))
        per_refit.append(np.stack([d.mean(axis=0).reshape(-1), d[non_converted].mean(axis=0).reshape(-1)]))
    model_var = np.var(np.stack(per_refit), axis=0, ddof=1)  # (2, F)
    session_var = np.var(boot, axis=1, ddof=1)
    return stats.t.ppf(0.975, len(refits) - 1) * np.sqrt(model_var + session_var)


def _flip_counts(
    p0: np.ndarray, p1: np.ndarray, kpis: tuple[str, ...], headline: float, base_rate: float
) -> tuple[FlipCount, ...]:
    """0 -> 1 crossings per KPI (``p1``: (n, K) predictions after the improvement) at several thresholds."""
    thresholds = {"default": headline}
    thresholds |= {f"top {share:.0%}": float(np.quantile(p0, 1.0 - share)) for share in FLIP_TOP_SHARES}
    thresholds |= {f"base rate ({base_rate:.1%})": float(np.quantile(p0, 1.0 - base_rate)), "0.5": 0.5}
    out = []
    for name, t in thresholds.items():
        below = p0 < t
        crossed = (below[:, None] & (p1 >= t)).sum(axis=0)
        positive = int((~below).sum())
        out.extend(FlipCount(k, name, t, int(crossed[i]), positive) for i, k in enumerate(kpis))
    return tuple(out)


def collinearity_r2(frame: pd.DataFrame, kpis: Sequence[str]) -> dict[str, float]:
    """R² of each KPI regressed linearly on all the other KPIs (log1p scale for non-negative KPIs).

    Near 1, the sessions hardly vary in that KPI with the others held fixed, so no model fitted on them can tell
    its effect apart from theirs: its what-if and importance are then not attributable to it alone.
    """
    kpis = list(kpis)
    values = frame[kpis].apply(pd.to_numeric, errors="coerce").astype("float64")
    values = values.fillna(values.median())
    x = values.to_numpy()
    nonneg = (x >= 0).all(axis=0)
    x[:, nonneg] = np.log1p(x[:, nonneg])
    std = x.std(axis=0)
    varying = std > 1e-12
    out = dict.fromkeys(kpis, 0.0)
    if varying.sum() < 2:
        return out
    z = (x[:, varying] - x[:, varying].mean(axis=0)) / std[varying]
    precision = np.linalg.pinv(np.corrcoef(z, rowvar=False))
    vif = np.diag(precision)  # variance inflation factor = 1 / (1 - R²)
    for name, v in zip(np.asarray(kpis)[varying], vif, strict=True):
        out[str(name)] = float(np.clip(1.0 - 1.0 / max(v, 1.0), 0.0, 1.0))
    return out
