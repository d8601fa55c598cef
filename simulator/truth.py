"""The planted truth: accumulated exactly while the shop runs, written beside the data in ``_truth/``.

Files:

* ``truth.json``: every planted parameter and every oracle figure (conversion what-ifs, expected experiment
  lifts, promotion value by segment, drift switches), with the formulas they come from;
* ``products.parquet``: per product its category elasticity, quality, latent factors and the logged ranker's
  popularity score;
* ``customers.parquet``: per customer its segment, visit rate, purchase propensity and latent factors;
* ``segment_relevance.parquet``: true relevance (click probability when examined) per segment and product;
* ``promotion_uplift.parquet``: per offer the expected incremental 10-week profit of every coupon.

Oracle figures are expectations computed from the generating probabilities of the sessions that were
actually simulated, not from the sampled outcomes, so they carry no sampling noise of their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.contract.schema import ACQUISITION_CHANNELS, KPI_NAMES
from simulator import world as w

if TYPE_CHECKING:
    from simulator.shop import Shop

TRUTH_VERSION = 1


class TruthAccumulator:
    """Sums, day by day, the exact expectations the truth file reports."""

    def __init__(
        self, world: w.World, n_coupons: int, n_experiments: int, improvements: tuple[float, ...], n_days: int
    ):
        self.world = world
        self.improvements = improvements
        n_seg = len(w.SEGMENTS)
        self.sessions = 0
        self.non_converted = 0
        self.converted = 0
        self.expected_conversions = 0.0
        planted = len(w.PLANTED_KPI_EFFECTS)
        self.what_if_all = np.zeros((planted, len(improvements)))
        self.what_if_non_converted = np.zeros((planted, len(improvements)))
        self.exp_with = np.zeros(n_experiments)
        self.exp_without = np.zeros(n_experiments)
        self.exp_sessions = np.zeros(n_experiments)
        self.margin = np.zeros((n_seg, n_coupons))
        self.conversion_by_segment = np.zeros(n_seg)
        self.sessions_by_segment = np.zeros(n_seg)
        self.coupon_days = np.zeros(n_seg)  # registered customer-days holding a valid coupon, by segment
        self.registered_days = np.zeros(n_seg)
        # per customer and simulated day: the realized order margin (the noise the power table reports)
        self.realized_margin = np.zeros((len(world.customers), n_days), np.float32)

    def add_conversion(
        self, logit: np.ndarray, basket: np.ndarray, kpis: dict[str, np.ndarray], converted: np.ndarray
    ) -> None:
        """P(convert) = sigmoid(logit) * basket; a KPI improved by x% shifts the logit by its planted effect."""
        s = w.sigmoid(logit)
        self.sessions += len(s)
        self.converted += int(converted.sum())
        self.non_converted += int((~converted).sum())
        self.expected_conversions += float((s * basket).sum())
        for k, (name, (beta, form, _)) in enumerate(w.PLANTED_KPI_EFFECTS.items()):
            for j, pct in enumerate(self.improvements):
                shift = beta * (np.log(1.0 - pct) if form == "log" else -pct * kpis[name])
                delta = (w.sigmoid(logit + shift) - s) * basket
                self.what_if_all[k, j] += delta.sum()
                self.what_if_non_converted[k, j] += delta[~converted].sum()

    def add_experiment_outcomes(self, treated: list[np.ndarray], logit: np.ndarray, basket: np.ndarray) -> None:
        for e, (_, lift, _, _) in enumerate(w.EXPERIMENTS.values()):
            mask = treated[e]
            self.exp_sessions[e] += mask.sum()
            self.exp_with[e] += (w.sigmoid(logit[mask]) * basket[mask]).sum()
            self.exp_without[e] += (w.sigmoid(logit[mask] - lift) * basket[mask]).sum()

    def add_margins(
        self,
        segment: np.ndarray,
        anon: np.ndarray,
        s: np.ndarray,
        basket: np.ndarray,
        sess_of_imp: np.ndarray,
        p_buy: np.ndarray,
        quantity_mean: np.ndarray,
        price: np.ndarray,
        cost: np.ndarray,
        extra_units: np.ndarray,
    ) -> None:
        """Expected margin and conversion per session of registered customers under each coupon (multi-use).

        margin_k = s * sum_i P(buy_i) (E[qty_i] + extra_k[segment]) (price_i (1 - pct_k) - cost_i)
                   - shipping_k * s * basket; a coupon changes neither P(buy) nor the conversion s * basket.
        """
        n_s = len(s)
        reg = ~anon
        seg_of_imp = segment[sess_of_imp]
        for k, coupon in enumerate(w.COUPONS):
            kind, pct, _ = w.COUPONS[coupon]
            extra = extra_units[:, k]  # (segment,) extra units per order line under this coupon
            unit_margin = price * (1.0 - pct / 100.0) - cost
            per_session = np.bincount(
                sess_of_imp, weights=p_buy * (quantity_mean + extra[seg_of_imp]) * unit_margin, minlength=n_s
            )
            expected = s * per_session - (w.SHIPPING_FEE if kind == "free_shipping" else 0.0) * s * basket
            self.margin[:, k] += np.bincount(segment[reg], weights=expected[reg], minlength=len(w.SEGMENTS))
        self.conversion_by_segment += np.bincount(segment[reg], weights=(s * basket)[reg], minlength=len(w.SEGMENTS))
        self.sessions_by_segment += np.bincount(segment[reg], minlength=len(w.SEGMENTS))

    def add_coupon_days(self, segment: np.ndarray, holds_coupon: np.ndarray) -> None:
        """One day of registered customers: their segments and whether each holds a valid coupon."""
        self.registered_days += np.bincount(segment, minlength=len(w.SEGMENTS))
        self.coupon_days += np.bincount(segment, weights=holds_coupon, minlength=len(w.SEGMENTS))

    def add_customer_margin(self, day_index: int, customer: np.ndarray, margin: np.ndarray) -> None:
        """Realized margin (after discounts, at unit cost) of registered customers' order lines on one day."""
        np.add.at(self.realized_margin[:, day_index], customer, margin)

    # --- writing -------------------------------------------------------------------------------------------------
    def _promotion(self, shop: Shop, offers: pa.Table) -> tuple[dict, pa.Table]:
        plan = shop.campaigns
        seg_names = list(w.SEGMENTS)
        coupons = list(w.COUPONS)
        n = np.maximum(self.sessions_by_segment, 1)
        margin = self.margin / n[:, None]  # EUR per session, by segment and coupon
        conversion = self.conversion_by_segment / n  # P(order) per session, by segment (a coupon does not move it)
        cust = shop.world.customers
        index = {cid: i for i, cid in enumerate(cust.customer_id)}
        c_idx = np.array([index[c] for c in offers["customer_id"].to_pylist()], dtype=np.int64)
        d0 = (offers["offered_at"].cast(pa.int64()).to_numpy() // (86_400 * 1_000_000)).astype(np.int64)
        horizon = np.arange(shop.first_day, shop.first_day + shop.n_days + w.OUTCOME_WINDOW_DAYS + 1)
        weekday = np.array(w.WEEKDAY_TRAFFIC)[(horizon + 3) % 7]  # 1970-01-01 was a Thursday
        cum = np.concatenate([[0.0], np.cumsum(w.seasonality(horizon) * weekday)])

        def traffic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return cum[b - shop.first_day] - cum[a - shop.first_day]

        valid = traffic(d0, d0 + plan.valid_days)
        seg = cust.segment[c_idx]
        rate = cust.session_rate[c_idx]
        arm = np.asarray(offers["promotion_id"].to_pylist(), dtype=object)
        randomized = np.asarray(offers["assignment"].to_pylist(), dtype=object) == "random"
        habit_until = shop.offers.column("habit_until").astype(np.int64)  # per offer, the state at the offer
        habituation_weight = self._habituation_weight(shop, seg, rate, d0, habit_until, arm, conversion, traffic)
        # without the coupon, a customer habituated by an earlier redemption visits at the habituated rate
        habituated_valid = traffic(d0, np.clip(habit_until, d0, d0 + plan.valid_days))
        deltas = {}
        for k, coupon in enumerate(coupons):
            if coupon == "none":
                deltas[coupon] = np.zeros(len(c_idx))
                continue
            activity = np.array([plan.activity[s][coupon] for s in seg_names])[seg]
            habit = np.array([plan.habituation.get(s, 1.0) for s in seg_names])[seg]
            sessions_valid = rate * valid * activity
            p_redeem = 1.0 - np.exp(-sessions_valid * conversion[seg])
            deltas[coupon] = (
                sessions_valid * margin[seg, k]
                - rate * (valid - habituated_valid * (1.0 - habit)) * margin[seg, 0]
                - rate * habituation_weight * margin[seg, 0] * p_redeem * (1.0 - habit)
            )
        delta_matrix = np.column_stack([deltas[c] for c in coupons])
        complete = d0 + w.OUTCOME_WINDOW_DAYS <= shop.first_day + shop.n_days
        cum_margin = np.concatenate(
            [np.zeros((len(cust), 1)), np.cumsum(self.realized_margin, axis=1, dtype=np.float64)], axis=1
        )
        lo = np.clip(d0 - shop.first_day, 0, shop.n_days)
        hi = np.clip(d0 + w.OUTCOME_WINDOW_DAYS - shop.first_day, 0, shop.n_days)
        realized = np.where(complete, cum_margin[c_idx, hi] - cum_margin[c_idx, lo], np.nan)
        best = np.array(coupons, dtype=object)[np.argmax(delta_matrix, axis=1)]
        uplift = pa.table(
            {
                "offer_id": offers["offer_id"],
                "customer_id": offers["customer_id"],
                "segment": np.array(seg_names, dtype=object)[seg],
                "offered_at": offers["offered_at"],
                "outcome_complete": complete,
                "promotion_id": offers["promotion_id"],
                "assignment": offers["assignment"],
                **{f"delta_profit_{c}": np.round(deltas[c], 4) for c in coupons},
                "best_coupon": best,
                # what the offer's 10 weeks actually earned (margin after discounts, at unit cost; NaN while open)
                "realized_profit_10w": np.round(realized, 4),
            }
        )
        by_segment = {
            s: {c: round(float(deltas[c][seg == i].mean()), 4) if (seg == i).any() else None for c in coupons}
            for i, s in enumerate(seg_names)
        }
        summary = {
            "model": (
                "Weekly campaigns reach campaign_reach of the registered customers without a valid coupon; "
                "randomized_offer_share of the recipients get an arm (none or a coupon) at random, the rest the "
                "shop's policy coupon. While a coupon is valid (multi-use, no minimum spend, valid_days), the "
                "customer's visit rate is multiplied by coupon_activity[segment][coupon], each order line gets "
                "coupon_extra_units[segment][coupon] more units on average, and every order is discounted; after a "
                "redemption, habituating segments visit at habituation_factor x their rate until the 10-week window "
                "ends, in the weeks they hold no coupon. delta_profit_<coupon> = rate x [valid-week traffic x "
                "activity x margin_coupon - (valid-week traffic - habituated valid-week traffic x (1 - habituation)) "
                "x margin_none] - rate x margin_none x P(redeem) x (1 - habituation) x the later traffic only this "
                "redemption habituates (weeks without a coupon, not habituated already at the offer, no later "
                "redemption before), with the segment's margin per session under each coupon "
                "(expected_margin_per_session) and P(redeem) = 1 - exp(-sessions in the valid week x conversion)."
            ),
            "coupons": {c: {"kind": k, "discount_pct": p, "min_spend": m} for c, (k, p, m) in w.COUPONS.items()},
            "shipping_fee": w.SHIPPING_FEE,
            "campaign_plan": plan.name,
            "valid_days": plan.valid_days,
            "outcome_window_days": w.OUTCOME_WINDOW_DAYS,
            "coupon_activity": plan.activity,
            "coupon_extra_units": plan.extra_units,
            "habituation_factor": plan.habituation,
            "campaign_every_days": plan.every_days,
            "campaign_reach": plan.reach,
            "randomized_offer_share": plan.randomized_share,
            "coupon_day_share": {
                s: round(float(self.coupon_days[i] / max(self.registered_days[i], 1.0)), 6)
                for i, s in enumerate(seg_names)
            },
            "randomized_offers_with_complete_windows": {
                s: {c: int(((seg == i) & randomized & complete & (arm == c)).sum()) for c in coupons}
                for i, s in enumerate(seg_names)
            },
            "realized_profit_sd_none_arm": {
                s: (
                    round(float(np.std(realized[none_rows], ddof=1)), 4)
                    if (none_rows := (seg == i) & randomized & complete & (arm == "none")).sum() > 1
                    else None
                )
                for i, s in enumerate(seg_names)
            },
            "expected_margin_per_session": {
                s: {c: round(float(margin[i, k]), 4) for k, c in enumerate(coupons)} for i, s in enumerate(seg_names)
            },
            "mean_incremental_profit_per_offer": by_segment,
            "best_coupon_by_segment": {
                s: max((c for c in coupons), key=lambda c, s=s: by_segment[s][c] or 0.0) for s in seg_names
            },
            "subsidy_only_segments": [
                s for s in seg_names if all((by_segment[s][c] or 0.0) <= 0.0 for c in coupons if c != "none")
            ],
            "uplift_file": "promotion_uplift.parquet",
        }
        return summary, uplift

    def _habituation_weight(
        self,
        shop: Shop,
        seg: np.ndarray,
        rate: np.ndarray,
        d0: np.ndarray,
        habit_until: np.ndarray,
        arm: np.ndarray,
        conversion: np.ndarray,
        traffic: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Expected traffic, after the coupon expires, that a redemption of this offer alone puts under habituation.

        A redemption habituates the customer to the end of the offer's window, in the weeks it holds no coupon
        (probability: 1 - the segment's share of coupon days, as simulated). A week counts only where the customer
        would not be habituated anyway: not already at the offer (the state's ``habit_until``), and no redemption
        of a later campaign's coupon in between (per week, reach x the segment's coupon mix x P(redeem); both arms
        share those).
        """
        seg_names = list(w.SEGMENTS)
        coupons = list(w.COUPONS)
        plan = shop.campaigns
        week = plan.every_days
        coupon_days, registered_days = self.coupon_days, self.registered_days
        # the segment's coupon mix over all its offers (policy and randomized), and P(redeem) per coupon
        mix = np.zeros((len(seg_names), len(coupons)))
        np.add.at(mix, (seg, np.array([coupons.index(a) for a in arm], dtype=np.int64)), 1.0)
        mix /= np.maximum(mix.sum(axis=1, keepdims=True), 1.0)
        redeem_later = np.zeros(len(seg))
        for k, coupon in enumerate(coupons[1:], start=1):
            activity = np.array([plan.activity[s][coupon] for s in seg_names])[seg]
            p = 1.0 - np.exp(-rate * traffic(d0, d0 + plan.valid_days) * activity * conversion[seg])
            redeem_later += plan.reach * mix[seg, k] * p
        weight = np.zeros(len(seg))
        # the share of customer-days the segment held a coupon, as simulated
        no_coupon = (1.0 - coupon_days / np.maximum(registered_days, 1.0))[seg]
        end = d0 + w.OUTCOME_WINDOW_DAYS
        for j in range(-(-(w.OUTCOME_WINDOW_DAYS - plan.valid_days) // week)):
            lo = d0 + plan.valid_days + j * week
            free = (lo >= habit_until) * (1.0 - redeem_later) ** j  # j later campaigns came before this week
            weight += traffic(lo, np.minimum(lo + week, end)) * no_coupon * free
        return weight

    def write(self, folder: Path, shop: Shop, offers: pa.Table) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        world = shop.world
        prod, cust = world.products, world.customers
        cat_names = list(w.CATEGORIES)
        seg_names = list(w.SEGMENTS)

        what_if = {}
        for k, name in enumerate(w.PLANTED_KPI_EFFECTS):
            what_if[name] = {
                f"{pct:.2f}": {
                    "delta_conversion_rate": self.what_if_all[k, j] / max(self.sessions, 1),
                    "delta_conversions_per_100k_sessions": 1e5 * self.what_if_all[k, j] / max(self.sessions, 1),
                    "delta_conversion_rate_non_converted": (
                        self.what_if_non_converted[k, j] / max(self.non_converted, 1)
                    ),
                }
                for j, pct in enumerate(self.improvements)
            }
        ranked = sorted(what_if, key=lambda n: -what_if[n]["0.05"]["delta_conversion_rate"])
        max_len = max(shop.scale.list_length)
        experiments = {}
        for e, (exp_id, first, last) in enumerate(shop.experiments):
            name, lift, lost, _ = w.EXPERIMENTS[exp_id]
            experiments[exp_id] = {
                "name": name,
                "variants": ["control", "treatment"],
                "planned_weights": [0.5, 0.5],
                "start_date": _date(first),
                "end_date": _date(last),
                "checkout_logit_lift": lift,
                "expected_relative_lift_in_conversion": (
                    self.exp_with[e] / self.exp_without[e] - 1.0 if self.exp_without[e] > 0 else 0.0
                ),
                "treatment_sessions": int(self.exp_sessions[e]),
                "lost_treatment_exposure_share": lost,
                "expected_logged_treatment_share": 0.5 * (1 - lost) / (0.5 + 0.5 * (1 - lost)),
                "sample_ratio_mismatch": lost > 0,
                "is_aa_test": lift == 0.0,
            }
        promotion, uplift = self._promotion(shop, offers)

        truth = {
            "version": TRUTH_VERSION,
            "generator": {
                "seed": shop.seed,
                "scale": shop.scale.name,
                "start": str(shop.start),
                "end": str(shop.end),
                "days": shop.n_days,
            },
            "conversion": {
                "model": (
                    "P(convert) = sigmoid(logit) * basket, where basket = 1 - prod_i(1 - P(click_i) P(cart_i) q_i) "
                    "over the session's impressions; logit = checkout_logit_base + sum planted beta * f(kpi) + "
                    "history, device and channel effects (+ experiment lifts); f = log(kpi / reference) for 'log' "
                    "KPIs, f = kpi for 'linear' (count) KPIs."
                ),
                "checkout_logit_base": w.CHECKOUT_LOGIT_BASE,
                "planted_kpis": {
                    n: {"beta": b, "form": f, "reference": r, "stage": "checkout"}
                    for n, (b, f, r) in w.PLANTED_KPI_EFFECTS.items()
                },
                "stages_note": (
                    "The funnel a session goes through: 'basket' (a product is added to the cart; attractiveness and "
                    "position only, no KPI) then 'checkout' (one decision per session, sigmoid(logit)). Every planted "
                    "KPI acts on the checkout logit, so its effect belongs to the checkout stage."
                ),
                "noise_kpis": [k for k in KPI_NAMES if k not in w.PLANTED_KPI_EFFECTS],
                "correlated_noise_kpis": w.CORRELATED_NOISE_KPIS,
                "history_effects": w.HISTORY_EFFECTS,
                "device_effects": w.DEVICE_EFFECTS,
                "channel_effects": w.CHANNEL_EFFECTS,
                "sessions": self.sessions,
                "observed_conversion_rate": self.converted / max(self.sessions, 1),
                "expected_conversion_rate": self.expected_conversions / max(self.sessions, 1),
                "what_if": what_if,
                "what_if_note": (
                    "Mean change of P(convert) over every simulated session (and over the non-converted ones) when "
                    "the KPI is multiplied by (1 - improvement); noise KPIs have exactly zero effect."
                ),
                "planted_kpis_ranked_by_impact_at_5pct": ranked,
            },
            "ranking": {
                "graded_relevance": {"impression": 0, "click": 1, "cart": 2, "checkout": 3, "purchase": 4},
                "position_bias": {
                    "form": f"P(examine | position k) = k ** -{w.POSITION_BIAS_EXPONENT}",
                    "exponent": w.POSITION_BIAS_EXPONENT,
                    "values": [round(float(v), 6) for v in w.position_bias(np.arange(1, max_len + 1))],
                },
                "click": "P(click) = position_bias(position) * attractiveness(customer, product)",
                "cart_given_click": f"{w.CART_GIVEN_CLICK_SCALE} * attractiveness",
                "checkout_given_cart": "sigmoid(conversion logit), one decision per session",
                "purchase_given_checkout": (
                    "min(cap, purchase_propensity[segment] * (price / list_price) ** elasticity[category])"
                ),
                "purchase_probability_cap": w.PURCHASE_PROBABILITY_CAP,
                "randomized_list_share": w.RANDOMIZED_LIST_SHARE,
                "segment_relevance_file": "segment_relevance.parquet",
            },
            "recommendation": {
                "attractiveness": (
                    "sigmoid(attractiveness_bias + quality[product] + customer_factors . product_factors)"
                ),
                "attractiveness_bias": w.ATTRACTIVENESS_BIAS,
                "latent_dim": w.LATENT_DIM,
                "customer_factors_file": "customers.parquet",
                "product_factors_file": "products.parquet",
                "repeat_purchase_categories": list(w.REPEAT_PURCHASE_CATEGORIES),
            },
            "elasticity": {
                "by_category": {c: v[0] for c, v in w.CATEGORIES.items()},
                "model": (
                    "demand at checkout scales as (price / list_price) ** elasticity; price = list_price * "
                    "clip(weekly random factor * exp(seasonal_markup * (seasonality - 1)))"
                ),
                "seasonal_amplitude": w.SEASONAL_AMPLITUDE,
                "seasonal_markup": w.SEASONAL_MARKUP,
                "price_change_weekly_probability": w.PRICE_CHANGE_WEEKLY_PROBABILITY,
                "price_noise_sigma": w.PRICE_NOISE_SIGMA,
                "price_factor_bounds": list(w.PRICE_FACTOR_BOUNDS),
                "confounding": "prices rise with the season, which also raises traffic: log-log fits without "
                "seasonal controls are biased towards zero",
            },
            "promotion": promotion,
            "experiments": experiments,
            "drift": [{"kind": s.kind, "start": str(s.start), "effect": _DRIFT_EFFECTS[s.kind]} for s in shop.drift],
            "segments": {
                s: {
                    "share": v[0],
                    "visit_multiplier": v[1],
                    "purchase_propensity": v[2],
                    "acquisition_mix": dict(zip(ACQUISITION_CHANNELS, w.ACQUISITION_MIX[s], strict=True)),
                }
                for s, v in w.SEGMENTS.items()
            },
        }
        (folder / "truth.json").write_text(json.dumps(_rounded(truth), indent=2, sort_keys=False) + "\n")

        factor_cols = {f"factor_{j}": prod.factors[:, j] for j in range(w.LATENT_DIM)}
        _write(
            folder / "products.parquet",
            pa.table(
                {
                    "product_id": prod.product_id,
                    "category": np.array(cat_names, dtype=object)[prod.category],
                    "category_path": prod.subcategory,
                    "elasticity": prod.elasticity,
                    "quality": prod.quality,
                    "popularity_score": prod.popularity,
                    "list_price": prod.list_price,
                    "unit_cost": prod.unit_cost,
                    **factor_cols,
                }
            ),
        )
        _write(
            folder / "customers.parquet",
            pa.table(
                {
                    "customer_id": cust.customer_id,
                    "segment": np.array(seg_names, dtype=object)[cust.segment],
                    "session_rate": cust.session_rate,
                    "purchase_propensity": cust.purchase_propensity,
                    **{f"factor_{j}": cust.factors[:, j] for j in range(w.LATENT_DIM)},
                }
            ),
        )
        _write(folder / "segment_relevance.parquet", _segment_relevance(world))
        _write(folder / "promotion_uplift.parquet", uplift)
        return folder / "truth.json"


_DRIFT_EFFECTS = {
    "slow_checkout": "checkout_latency_ms multiplied by 1.8 (and payment latency through it)",
    "mobile_shift": f"device mix {w.DEVICE_MIX} -> {w.DEVICE_MIX_MOBILE_SHIFT} (desktop, mobile, tablet)",
}


def _segment_relevance(world: w.World, per_segment: int = 400) -> pa.Table:
    """Mean attractiveness per (segment, product) over a fixed sample of the segment's customers."""
    rng = np.random.default_rng(12345)
    cust, prod = world.customers, world.products
    rows = []
    for s_idx, seg in enumerate(w.SEGMENTS):
        members = np.flatnonzero(cust.segment == s_idx)
        sample = rng.choice(members, size=min(per_segment, len(members)), replace=False) if len(members) else members
        affinity = cust.factors[sample] @ prod.factors.T
        rel = w.sigmoid(w.ATTRACTIVENESS_BIAS + prod.quality[None, :] + affinity).mean(axis=0)
        rows.append(
            pa.table(
                {
                    "segment": np.full(len(prod), seg, dtype=object),
                    "product_id": prod.product_id,
                    "relevance": np.round(rel, 6),
                }
            )
        )
    return pa.concat_tables(rows)


def _write(path: Path, table: pa.Table) -> None:
    pq.write_table(table.replace_schema_metadata(None), path, compression="zstd", store_schema=False)


def _date(day_number: int) -> str:
    import datetime as dt

    return str(dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number)))


def _rounded(obj: object) -> object:
    """Round floats to 6 significant decimals so the JSON is readable and stable across platforms."""
    if isinstance(obj, float | np.floating):
        return float(f"{float(obj):.6g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def load_truth(raw_root: Path) -> dict:
    """Read ``truth.json`` of a simulated lake."""
    path = Path(raw_root) / "_truth" / "truth.json"
    if not path.exists():
        raise FileNotFoundError(f"no truth file at {path}: was this lake written by the simulator?")
    return json.loads(path.read_text())
