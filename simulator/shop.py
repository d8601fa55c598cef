"""Run the simulated shop day by day and write every raw table of the contract, plus the planted truth.

``simulate()`` is the function; ``storefront simulate`` is its CLI. Days are generated in order (customer
history, coupons and experiment exposures carry over) and written as they finish, so memory stays bounded by
one day of events whatever the range. Every random draw comes from one seeded generator per day, so the same
arguments give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from feature_repo.contract import lake
from feature_repo.contract.schema import CHANNELS, DEVICES, LIST_TYPES, TABLES
from simulator import world as w
from simulator.kpis import draw_kpis
from simulator.scales import Scale, get_scale
from simulator.truth import TruthAccumulator

log = logging.getLogger(__name__)

US_PER_DAY = 86_400 * 1_000_000
EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()
WHAT_IF_IMPROVEMENTS = (0.05, 0.06, 0.07, 0.08)
COUPON_IDS = tuple(w.COUPONS)


@dataclass(frozen=True)
class DriftSwitch:
    """A change in the world from ``start`` on: ``slow_checkout`` (checkout latency x1.8) or ``mobile_shift``."""

    kind: Literal["slow_checkout", "mobile_shift"]
    start: dt.date

    @classmethod
    def parse(cls, text: str) -> DriftSwitch:
        """Parse ``kind@YYYY-MM-DD``."""
        kind, _, day = text.partition("@")
        if kind not in ("slow_checkout", "mobile_shift") or not day:
            raise ValueError(f"drift switch {text!r}: expected slow_checkout@YYYY-MM-DD or mobile_shift@YYYY-MM-DD")
        return cls(kind, dt.date.fromisoformat(day))  # type: ignore[arg-type]


@dataclass
class SimulationSummary:
    out: Path
    start: dt.date
    end: dt.date
    seed: int
    scale: str
    rows: dict[str, int] = field(default_factory=dict)
    write_seconds: dict[str, float] = field(default_factory=dict)  # parquet writing, per table
    seconds: float = 0.0  # the whole run, generation and writing

    @property
    def truth_path(self) -> Path:
        return self.out / lake.TRUTH_DIR / "truth.json"


def day_number(day: dt.date) -> int:
    return day.toordinal() - EPOCH_ORDINAL


def _ids(prefix: str, day: dt.date, n: int, width: int) -> np.ndarray:
    stamp = day.strftime("%Y%m%d")
    return np.array([f"{prefix}{stamp}-{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _timestamps(day: dt.date, micros: np.ndarray) -> pa.Array:
    return pa.array(day_number(day) * US_PER_DAY + micros.astype(np.int64), pa.timestamp("us", tz="UTC"))


@dataclass
class _CustomerState:
    """What carries over from one day to the next, per registered customer."""

    prior_orders: np.ndarray
    last_order_day: np.ndarray  # day number, or -1 for never
    coupon: np.ndarray  # index into COUPON_IDS of the valid coupon, 0 (none) when there is none
    coupon_until: np.ndarray  # exclusive day number
    coupon_offer: np.ndarray  # row of the offer in the offer log, -1 for none
    habit_until: np.ndarray  # day number until which the habituation factor applies
    exposure_day: np.ndarray  # (n_experiments, n_customers) day of first exposure, -1 before
    variant: np.ndarray  # (n_experiments, n_customers) 0 control, 1 treatment

    @classmethod
    def new(cls, n: int, n_experiments: int, rng: np.random.Generator) -> _CustomerState:
        return cls(
            prior_orders=np.zeros(n, np.int64),
            last_order_day=np.full(n, -1, np.int64),
            coupon=np.zeros(n, np.int64),
            coupon_until=np.zeros(n, np.int64),
            coupon_offer=np.full(n, -1, np.int64),
            habit_until=np.zeros(n, np.int64),
            exposure_day=np.full((n_experiments, n), -1, np.int64),
            variant=(rng.random((n_experiments, n)) < 0.5).astype(np.int64),
        )


@dataclass
class _OfferLog:
    """Offers are written at the end: whether a coupon was redeemed is only known after it expires."""

    rows: list[dict[str, np.ndarray]] = field(default_factory=list)
    count: int = 0
    redeemed: list[bool] = field(default_factory=list)

    def add(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        n = len(cols["customer"])
        self.rows.append(cols)
        self.redeemed.extend([False] * n)
        idx = np.arange(self.count, self.count + n)
        self.count += n
        return idx

    def column(self, name: str) -> np.ndarray:
        return np.concatenate([r[name] for r in self.rows]) if self.rows else np.array([])


class Shop:
    """One simulated shop over a date range. Use ``simulate()`` unless you need the pieces."""

    def __init__(
        self,
        start: dt.date,
        end: dt.date,
        seed: int,
        scale: Scale,
        drift: tuple[DriftSwitch, ...] = (),
        campaigns: w.CampaignPlan | str = w.DEFAULT_CAMPAIGN_PLAN,
    ):
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        self.start, self.end, self.seed, self.scale, self.drift = start, end, seed, scale, drift
        self.campaigns = w.get_campaign_plan(campaigns) if isinstance(campaigns, str) else campaigns
        # (segment, coupon) -> extra units per order line while the coupon is valid (none: 0)
        self._extra_units = np.array(
            [[0.0] + [self.campaigns.extra_units[g][c] for c in COUPON_IDS[1:]] for g in w.SEGMENTS], dtype=float
        )
        self.first_day = day_number(start)
        self.n_days = (end - start).days + 1
        root_rng = np.random.default_rng([seed, 0])
        self.world = w.build_world(scale, start, end, root_rng)
        self.prices = w.price_paths(self.world, self.first_day, self.n_days, root_rng)
        self.backend_load = root_rng.normal(0.0, 0.12, self.n_days)
        self.experiments = self._experiment_windows()
        self.state = _CustomerState.new(len(self.world.customers), len(self.experiments), root_rng)
        self.offers = _OfferLog()
        self.truth = TruthAccumulator(
            self.world, len(COUPON_IDS), len(self.experiments), WHAT_IF_IMPROVEMENTS, self.n_days
        )

    # --- configuration derived from the range ----------------------------------------------------------------
    def _experiment_windows(self) -> list[tuple[str, int, int]]:
        """(experiment id, first day number, last day number) for each planted experiment."""
        out = []
        for exp_id, (_, _, _, (lo, hi)) in w.EXPERIMENTS.items():
            first = self.first_day + int(lo * (self.n_days - 1))
            last = self.first_day + max(int(hi * (self.n_days - 1)), int(lo * (self.n_days - 1)))
            out.append((exp_id, first, last))
        return out

    def _drift_on(self, kind: str, day: dt.date) -> bool:
        return any(s.kind == kind and day >= s.start for s in self.drift)

    # --- one day ---------------------------------------------------------------------------------------------
    def simulate_day(self, i: int) -> dict[str, pa.Table]:
        """Generate day ``i`` (0-based) and return its partition of every daily table."""
        day = self.start + dt.timedelta(days=i)
        d = self.first_day + i
        rng = np.random.default_rng([self.seed, 1, i])
        world, cust, prod, st = self.world, self.world.customers, self.world.products, self.state
        traffic = float(w.seasonality(np.array([d]))[0] * w.WEEKDAY_TRAFFIC[day.weekday()])
        plan = self.campaigns

        if i >= plan.every_days and i % plan.every_days == 3:
            self._run_campaign(day, d, rng)

        # sessions: registered customers by their own rate, plus anonymous visitors
        registered = cust.signup <= d
        coupon_active = (st.coupon > 0) & (st.coupon_until > d)
        self.truth.add_coupon_days(cust.segment[registered], coupon_active[registered])
        seg_names = list(w.SEGMENTS)
        activity = np.ones(len(cust))
        for s_idx, seg in enumerate(seg_names):
            for k_idx, coupon in enumerate(COUPON_IDS[1:], start=1):
                mask = coupon_active & (cust.segment == s_idx) & (st.coupon == k_idx)
                activity[mask] = plan.activity[seg][coupon]
            if seg in plan.habituation:
                habituated = (cust.segment == s_idx) & (st.habit_until > d) & ~coupon_active
                activity[habituated] *= plan.habituation[seg]
        counts = rng.poisson(cust.session_rate * traffic * activity) * registered
        sess_cust = np.repeat(np.arange(len(cust)), counts)
        n_anon = rng.poisson(self.scale.anonymous_sessions_per_day * traffic)
        n_reg = len(sess_cust)
        n_s = n_reg + n_anon
        sess_cust = np.concatenate([sess_cust, np.full(n_anon, -1)])
        anon = sess_cust < 0
        ci = np.where(anon, 0, sess_cust)
        anon_seg = seg_names.index(w.ANONYMOUS_SEGMENT)
        factors = np.where(
            anon[:, None],
            world.segment_centroids[anon_seg] / (np.sqrt(w.LATENT_DIM) / 2.0)
            + rng.normal(0.0, 0.8, (n_s, w.LATENT_DIM)) / (np.sqrt(w.LATENT_DIM) / 2.0),
            cust.factors[ci],
        )
        segment = np.where(anon, anon_seg, cust.segment[ci])
        propensity = np.where(anon, w.SEGMENTS[w.ANONYMOUS_SEGMENT][2], cust.purchase_propensity[ci])

        # start times: fewer visits at night; sessions end before midnight so their events share the date
        hour_weights = np.array(
            [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 3.5, 4, 3.5, 3.5, 3.5, 3.5, 4, 4.5, 5, 5, 4, 3], dtype=float
        )
        hour = rng.choice(23, size=n_s, p=hour_weights / hour_weights.sum())
        start_us = (hour * 3600 + rng.uniform(0, 3600, n_s)) * 1e6
        duration_s = np.minimum(rng.lognormal(np.log(420.0), 0.8, n_s), 3599.0)
        order_sort = np.lexsort((sess_cust, start_us))  # sessions in time order: ids follow the clock
        sess_cust, anon, ci, factors, segment, propensity, start_us, duration_s = (
            a[order_sort] for a in (sess_cust, anon, ci, factors, segment, propensity, start_us, duration_s)
        )

        device_mix = w.DEVICE_MIX_MOBILE_SHIFT if self._drift_on("mobile_shift", day) else w.DEVICE_MIX
        device = rng.choice(len(DEVICES), size=n_s, p=device_mix)
        channel = rng.choice(len(CHANNELS), size=n_s, p=w.CHANNEL_MIX)
        kpis = draw_kpis(rng, device, float(self.backend_load[i]), self._drift_on("slow_checkout", day))

        # checkout probability: planted KPI effects + customer history + device and channel
        logit = np.full(n_s, w.CHECKOUT_LOGIT_BASE)
        for name, (beta, form, ref) in w.PLANTED_KPI_EFFECTS.items():
            logit += beta * (np.log(kpis[name] / ref) if form == "log" else kpis[name])
        prior = np.where(anon, 0, st.prior_orders[ci])
        last = np.where(anon | (st.last_order_day[ci] < 0), d - 365, st.last_order_day[ci])
        logit += w.HISTORY_EFFECTS["log1p_prior_orders"] * np.log1p(prior)
        logit += w.HISTORY_EFFECTS["log1p_days_since_last_order"] * np.log1p(d - last)
        logit += w.HISTORY_EFFECTS["anonymous"] * anon
        logit += np.array(list(w.DEVICE_EFFECTS.values()))[device]
        logit += np.array(list(w.CHANNEL_EFFECTS.values()))[channel]
        treated, exposures = self._expose(day, d, sess_cust, anon, start_us, logit)

        # lists and the products in them
        imp = self._impressions(rng, d, i, factors, segment, n_s)
        sess_of_imp = imp["session"]
        price = self.prices[i, imp["product"]]
        a = w.attractiveness(world, factors[sess_of_imp], imp["product"])
        p_click = w.position_bias(imp["position"]) * a
        p_cart = w.CART_GIVEN_CLICK_SCALE * a
        ratio = price / prod.list_price[imp["product"]]
        q = np.minimum(
            w.PURCHASE_PROBABILITY_CAP, propensity[sess_of_imp] * np.power(ratio, prod.elasticity[imp["product"]])
        )
        s = w.sigmoid(logit)

        clicked = rng.random(len(a)) < p_click
        carted = clicked & (rng.random(len(a)) < p_cart)
        checkout_session = rng.random(n_s) < s
        checked_out = carted & checkout_session[sess_of_imp]
        purchased = checked_out & (rng.random(len(a)) < q)
        converted = np.bincount(sess_of_imp, weights=purchased, minlength=n_s) > 0

        # the oracle: exact conversion probability per session, and what each KPI improvement would do
        basket = 1.0 - np.exp(np.bincount(sess_of_imp, weights=np.log1p(-p_click * p_cart * q), minlength=n_s))
        self.truth.add_conversion(logit, basket, kpis, converted)
        self.truth.add_experiment_outcomes(treated, logit, basket)
        quantity_mean = 1.0 + np.where(prod.is_repeat[imp["product"]], 0.4, 0.05)
        self.truth.add_margins(
            segment,
            anon,
            s,
            basket,
            sess_of_imp,
            p_click * p_cart * q,
            quantity_mean,
            price,
            prod.unit_cost[imp["product"]],
            self._extra_units,
        )

        orders, revenue = self._orders(rng, day, d, imp, purchased, price, sess_cust, anon, start_us, duration_s)
        for c in np.unique(sess_cust[converted & ~anon]):
            st.prior_orders[c] += 1
            st.last_order_day[c] = d

        session_ids = _ids("S", day, n_s, 6)
        sessions = {
            "session_id": session_ids,
            "customer_id": np.where(anon, None, cust.customer_id[ci]),
            "started_at": _timestamps(day, start_us),
            "device": np.array(DEVICES, dtype=object)[device],
            "channel": np.array(CHANNELS, dtype=object)[channel],
            "pageviews": 1 + np.bincount(imp["list_session"], minlength=n_s) + rng.poisson(2.5, n_s),
            "duration_s": np.round(duration_s, 1),
            **kpis,
            "converted": converted,
            "revenue": np.round(revenue, 2),
        }
        impressions = {
            "list_id": imp["list_id"],
            "session_id": session_ids[sess_of_imp],
            "shown_at": _timestamps(day, start_us[sess_of_imp] + imp["offset_s"] * duration_s[sess_of_imp] * 1e6),
            "list_type": imp["list_type"],
            "ranker": imp["ranker"],
            "query": imp["query"],
            "category": imp["category"],
            "product_id": prod.product_id[imp["product"]],
            "position": imp["position"],
            "price_shown": price,
            "clicked": clicked,
            "added_to_cart": carted,
            "checked_out": checked_out,
            "purchased": purchased,
        }
        orders["session_id"] = session_ids[orders.pop("session")]
        out = {
            "sessions": sessions,
            "impressions": impressions,
            "orders": orders,
            "exposures": exposures,
            **self._snapshots(day, d, i),
        }
        return {name: pa.table(cols, schema=TABLES[name].arrow_schema()) for name, cols in out.items()}

    def _expose(
        self, day: dt.date, d: int, sess_cust: np.ndarray, anon: np.ndarray, start_us: np.ndarray, logit: np.ndarray
    ) -> tuple[list[np.ndarray], dict[str, object]]:
        """First exposures of the day (earliest session in the window) and the treatment lift on the logit."""
        st = self.state
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("experiment_id", "unit_id", "variant", "first_exposed_at")}
        customer_ids = self.world.customers.customer_id
        treated_masks: list[np.ndarray] = []
        for e, (exp_id, first, last) in enumerate(self.experiments):
            _, lift, lost_share, _ = w.EXPERIMENTS[exp_id]
            if first <= d <= last:
                reg = np.flatnonzero(~anon)
                new = reg[st.exposure_day[e, sess_cust[reg]] < 0]
                # sessions are in time order, so the first occurrence of a customer is their earliest session
                custs, first_idx = np.unique(sess_cust[new], return_index=True)
                st.exposure_day[e, custs] = d
                variant = st.variant[e, custs]
                logged = np.ones(len(custs), bool)
                if lost_share > 0:
                    rng = np.random.default_rng([self.seed, 2, e, d])
                    logged = (variant == 0) | (rng.random(len(custs)) >= lost_share)
                cols["experiment_id"].append(np.full(logged.sum(), exp_id, dtype=object))
                cols["unit_id"].append(customer_ids[custs[logged]])
                cols["variant"].append(np.where(variant[logged] == 1, "treatment", "control").astype(object))
                cols["first_exposed_at"].append((d * US_PER_DAY + start_us[new[first_idx]][logged]).astype(np.int64))
            ci = np.where(anon, 0, sess_cust)
            in_window = first <= d <= last
            treated = in_window & ~anon & (st.exposure_day[e, ci] >= 0) & (st.variant[e, ci] == 1)
            logit += lift * treated
            treated_masks.append(treated)
        n = sum(len(a) for a in cols["unit_id"])
        return treated_masks, {
            "experiment_id": np.concatenate(cols["experiment_id"]) if n else np.array([], dtype=object),
            "unit_id": np.concatenate(cols["unit_id"]) if n else np.array([], dtype=object),
            "unit_type": np.full(n, "customer", dtype=object),
            "variant": np.concatenate(cols["variant"]) if n else np.array([], dtype=object),
            "first_exposed_at": pa.array(
                np.concatenate(cols["first_exposed_at"]) if n else np.array([], np.int64),
                pa.timestamp("us", tz="UTC"),
            ),
        }

    def _impressions(
        self, rng: np.random.Generator, d: int, i: int, factors: np.ndarray, segment: np.ndarray, n_s: int
    ) -> dict[str, np.ndarray]:
        """Lists shown in the day's sessions and the products at each position, in (list, position) order."""
        world, prod = self.world, self.world.products
        n_cat = len(w.CATEGORIES)
        cat_names = np.array(list(w.CATEGORIES), dtype=object)
        n_lists = 1 + rng.poisson(self.scale.extra_lists_per_session, n_s)
        list_session = np.repeat(np.arange(n_s), n_lists)
        n_l = len(list_session)
        list_type = rng.choice(len(LIST_TYPES), size=n_l, p=w.LIST_TYPE_MIX)
        # browsed category: the visitor's taste over categories (Gumbel-max sampling of a softmax)
        taste = factors[list_session] @ world.category_centroids.T * 1.5
        category = np.argmax(taste + rng.gumbel(size=(n_l, n_cat)), axis=1)
        category = np.where(list_type == 2, n_cat, category)  # recommendation lists draw from the whole catalog

        # pools of products on sale today, per category, in a random order of the day
        on_sale = np.flatnonzero((prod.launched <= d) & (prod.discontinued > d))
        pools = [on_sale[prod.category[on_sale] == c] for c in range(n_cat)] + [on_sale]
        pools = [rng.permutation(p) for p in pools]
        pool_size = np.array([len(p) for p in pools])
        pool_start = np.concatenate([[0], np.cumsum(pool_size)[:-1]])
        pool_flat = np.concatenate(pools)
        lo, hi = self.scale.list_length
        length = np.minimum(rng.integers(lo, hi + 1, n_l), pool_size[category])
        offset = rng.integers(0, np.maximum(pool_size[category], 1))
        list_of_imp = np.repeat(np.arange(n_l), length)
        slot = np.arange(len(list_of_imp)) - np.repeat(np.cumsum(length) - length, length)
        product = pool_flat[
            pool_start[category[list_of_imp]] + (offset[list_of_imp] + slot) % pool_size[category[list_of_imp]]
        ]

        # the logged ranker: popularity, a shuffle for 10% of browse lists, a noisy personal score for widgets
        ranker = np.where(list_type == 2, 2, np.where(rng.random(n_l) < w.RANDOMIZED_LIST_SHARE, 1, 0))
        sess_of_imp = list_session[list_of_imp]
        noise = rng.standard_normal(len(product))
        personal = w.attractiveness(world, factors[sess_of_imp], product)
        score = np.select(
            [ranker[list_of_imp] == 0, ranker[list_of_imp] == 1],
            [prod.popularity[product] + 0.3 * noise, noise],
            default=np.log(personal) + 0.5 * noise,
        )
        order = np.lexsort((-score, list_of_imp))
        product = product[order]  # list_of_imp is sorted already, so it is unchanged by the reordering
        position = slot + 1

        sub = rng.integers(0, 3, n_l)
        leaves = np.array([v[2] for v in w.CATEGORIES.values()], dtype=object)
        query = np.where(list_type == 1, leaves[np.minimum(category, n_cat - 1), sub], None)
        list_ids = _ids("L", self.start + dt.timedelta(days=i), n_l, 7)
        within_session = np.arange(n_l) - np.repeat(np.cumsum(n_lists) - n_lists, n_lists)
        return {
            "session": sess_of_imp,
            "list_session": list_session,
            "list_id": list_ids[list_of_imp],
            "list_type": np.array(LIST_TYPES, dtype=object)[list_type][list_of_imp],
            "ranker": np.array(("popularity", "randomized", "personalized"), dtype=object)[ranker][list_of_imp],
            "query": query[list_of_imp],
            "category": np.where(list_type == 0, cat_names[np.minimum(category, n_cat - 1)], None)[list_of_imp],
            "product": product,
            "position": position,
            "offset_s": ((within_session + 0.5 * rng.random(n_l)) / n_lists[list_session])[list_of_imp],
        }

    def _orders(
        self,
        rng: np.random.Generator,
        day: dt.date,
        d: int,
        imp: dict[str, np.ndarray],
        purchased: np.ndarray,
        price: np.ndarray,
        sess_cust: np.ndarray,
        anon: np.ndarray,
        start_us: np.ndarray,
        duration_s: np.ndarray,
    ) -> tuple[dict[str, object], np.ndarray]:
        """One order per converting session; a product bought from two lists is one line."""
        st, prod, cust = self.state, self.world.products, self.world.customers
        n_s = len(sess_cust)
        sess = imp["session"][purchased]
        product = imp["product"][purchased]
        key = np.unique(sess.astype(np.int64) * len(prod) + product)
        sess, product = key // len(prod), key % len(prod)
        unit_price = self.prices[day_number(day) - self.first_day, product]
        ci = np.where(anon[sess], 0, sess_cust[sess])
        has_coupon = ~anon[sess] & (st.coupon[ci] > 0) & (st.coupon_until[ci] > d)
        coupon = np.where(has_coupon, st.coupon[ci], 0)
        extra = np.where(has_coupon, self._extra_units[cust.segment[ci], coupon], 0.0)
        quantity = 1 + rng.poisson(np.where(prod.is_repeat[product], 0.4, 0.05) + extra)
        pct = np.array([w.COUPONS[c][1] for c in COUPON_IDS])[coupon] / 100.0
        discount = np.round(pct * unit_price * quantity, 2)
        first_line = np.r_[True, sess[1:] != sess[:-1]]
        free_ship = np.array([w.COUPONS[c][0] == "free_shipping" for c in COUPON_IDS])[coupon]
        # free shipping is worth the fee to the customer, but a line never gets more off than it costs
        shipping = np.where(free_ship & first_line, w.SHIPPING_FEE, 0.0)
        discount = discount + np.minimum(shipping, np.round(unit_price * quantity - discount, 2))
        promotion = np.where(has_coupon, np.array(COUPON_IDS, dtype=object)[coupon], None)
        for offer in np.unique(st.coupon_offer[ci[has_coupon]]):
            self.offers.redeemed[offer] = True
        redeemers = np.unique(ci[has_coupon])
        habit_segments = [list(w.SEGMENTS).index(s) for s in self.campaigns.habituation]
        habit = redeemers[np.isin(cust.segment[redeemers], habit_segments)]
        offer_day = st.coupon_until[habit] - self.campaigns.valid_days
        st.habit_until[habit] = np.maximum(st.habit_until[habit], offer_day + w.OUTCOME_WINDOW_DAYS)

        line_total = unit_price * quantity - discount
        registered = ~anon[sess]
        self.truth.add_customer_margin(
            d - self.first_day, ci[registered], (line_total - prod.unit_cost[product] * quantity)[registered]
        )
        revenue = np.bincount(sess, weights=line_total, minlength=n_s)
        order_number = np.cumsum(first_line)
        order_ids = _ids("O", day, int(order_number[-1]) if len(order_number) else 0, 6)
        ordered_us = start_us[sess] + duration_s[sess] * 1e6
        orders = {
            "order_id": order_ids[order_number - 1] if len(sess) else np.array([], dtype=object),
            "ordered_at": _timestamps(day, ordered_us),
            "session": sess,
            "customer_id": np.where(anon[sess], None, cust.customer_id[ci]),
            "product_id": prod.product_id[product],
            "quantity": quantity,
            "unit_price_paid": unit_price,
            "discount": discount,
            "promotion_id": promotion,
        }
        return orders, revenue

    def _run_campaign(self, day: dt.date, d: int, rng: np.random.Generator) -> None:
        """Offer coupons to a random slice of customers: some by randomisation (incl. none), the rest by policy."""
        st, cust = self.state, self.world.customers
        eligible = np.flatnonzero((cust.signup <= d) & ~((st.coupon > 0) & (st.coupon_until > d)))
        picked = np.sort(rng.choice(eligible, size=int(len(eligible) * self.campaigns.reach), replace=False))
        randomized = rng.random(len(picked)) < self.campaigns.randomized_share
        random_coupon = rng.integers(0, len(COUPON_IDS), len(picked))
        # the shop's current policy: reward frequent buyers, win back lapsed ones, nudge the rest
        lapsed = (st.last_order_day[picked] < 0) | (d - st.last_order_day[picked] > 60)
        policy_coupon = np.select(
            [st.prior_orders[picked] >= 4, lapsed],
            [COUPON_IDS.index("pct10"), COUPON_IDS.index("pct20")],
            default=np.where(
                rng.random(len(picked)) < 0.5, COUPON_IDS.index("pct5"), COUPON_IDS.index("free_shipping")
            ),
        )
        coupon = np.where(randomized, random_coupon, policy_coupon)
        offered_us = (6 * 3600 + rng.uniform(0, 3600, len(picked))) * 1e6 + d * US_PER_DAY
        rows = self.offers.add(
            {
                "customer": picked,
                "coupon": coupon,
                "offered_us": offered_us.astype(np.int64),
                "randomized": randomized,
                "day": np.full(len(picked), d),
                "habit_until": st.habit_until[picked].copy(),  # the truth's habituation term needs it
            }
        )
        gets = coupon > 0
        st.coupon[picked[gets]] = coupon[gets]
        st.coupon_until[picked[gets]] = d + self.campaigns.valid_days
        st.coupon_offer[picked[gets]] = rows[gets]

    def _snapshots(self, day: dt.date, d: int, i: int) -> dict[str, dict[str, object]]:
        prod, cust = self.world.products, self.world.customers
        on_sale = np.flatnonzero((prod.launched <= d) & (prod.discontinued > d))
        known = np.flatnonzero(cust.signup <= d)
        cat_names = np.array(list(w.CATEGORIES), dtype=object)
        catalog = {
            "snapshot_date": pa.array([day] * len(on_sale), pa.date32()),
            "product_id": prod.product_id[on_sale],
            "category_path": prod.subcategory[on_sale],
            "category": cat_names[prod.category[on_sale]],
            "brand": prod.brand[on_sale],
            "list_price": prod.list_price[on_sale],
            "price": self.prices[i, on_sale],
            "unit_cost": prod.unit_cost[on_sale],
            "is_repeat_purchase": prod.is_repeat[on_sale],
            "launched_on": pa.array(prod.launched[on_sale].astype(np.int32), pa.date32()),
        }
        customers = {
            "snapshot_date": pa.array([day] * len(known), pa.date32()),
            "customer_id": cust.customer_id[known],
            "signup_date": pa.array(cust.signup[known].astype(np.int32), pa.date32()),
            "country": cust.country[known],
            "acquisition_channel": cust.acquisition_channel[known],
        }
        defined = [(e, first, last) for e, first, last in self.experiments if first - 7 <= d]
        experiments = {
            "snapshot_date": pa.array([day] * len(defined), pa.date32()),
            "experiment_id": [e for e, _, _ in defined],
            "name": [w.EXPERIMENTS[e][0] for e, _, _ in defined],
            "unit_type": ["customer"] * len(defined),
            "variants": [["control", "treatment"]] * len(defined),
            "planned_weights": [[0.5, 0.5]] * len(defined),
            "start_date": pa.array([f for _, f, _ in defined], pa.int32()).cast(pa.date32()),
            "end_date": pa.array([last for _, _, last in defined], pa.int32()).cast(pa.date32()),
            "primary_metric": ["conversion_rate"] * len(defined),
            "guardrail_metrics": [["page_load_ms", "js_error_rate"]] * len(defined),
            "min_detectable_effect": [0.05] * len(defined),
        }
        return {"catalog": catalog, "customers": customers, "experiments": experiments}

    def offer_table(self) -> pa.Table:
        log_ = self.offers
        cust = self.world.customers
        if not log_.rows:
            return TABLES["promotion_offers"].arrow_schema().empty_table()
        coupon = log_.column("coupon").astype(np.int64)
        offered = log_.column("offered_us").astype(np.int64)
        day = log_.column("day").astype(np.int64)
        ids = np.array(
            [
                f"F{(dt.date(1970, 1, 1) + dt.timedelta(days=int(x))).strftime('%Y%m%d')}-{n:06d}"
                for n, x in enumerate(day, start=1)
            ],
            dtype=object,
        )
        kinds = np.array([w.COUPONS[c][0] for c in COUPON_IDS], dtype=object)
        return pa.table(
            {
                "offer_id": ids,
                "customer_id": cust.customer_id[log_.column("customer").astype(np.int64)],
                "promotion_id": np.array(COUPON_IDS, dtype=object)[coupon],
                "promotion_kind": kinds[coupon],
                "discount_pct": np.array([w.COUPONS[c][1] for c in COUPON_IDS])[coupon],
                "min_spend": np.array([w.COUPONS[c][2] for c in COUPON_IDS])[coupon],
                "offered_at": pa.array(offered, pa.timestamp("us", tz="UTC")),
                "expires_at": pa.array(offered + self.campaigns.valid_days * US_PER_DAY, pa.timestamp("us", tz="UTC")),
                "assignment": np.where(log_.column("randomized").astype(bool), "random", "policy").astype(object),
                "redeemed": np.array(log_.redeemed, dtype=bool),
            },
            schema=TABLES["promotion_offers"].arrow_schema(),
        )


DAILY_TABLES = ("catalog", "customers", "experiments", "sessions", "impressions", "orders", "exposures")


def simulate(
    start: dt.date,
    end: dt.date,
    out: Path,
    *,
    seed: int = 7,
    scale: str | Scale = "demo",
    drift: tuple[DriftSwitch, ...] = (),
    campaigns: str = w.DEFAULT_CAMPAIGN_PLAN,
    overwrite: bool = False,
) -> SimulationSummary:
    """Write a simulated shop's raw tables for ``start``..``end`` (inclusive) under ``out`` and its truth file.

    ``out`` is the raw root: ``out/<table>/dt=YYYY-MM-DD/part-00000.parquet`` and ``out/_truth/``. Refuses to
    write into a folder that already holds raw tables unless ``overwrite`` is set (then they are replaced).
    ``campaigns`` names the coupon campaign plan (``simulator.world.CAMPAIGN_PLANS``).
    """
    began = time.perf_counter()
    scale_ = scale if isinstance(scale, Scale) else get_scale(scale)
    out = Path(out)
    existing = [t for t in (*TABLES, lake.TRUTH_DIR) if (out / t).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; pass overwrite=True (--overwrite)")
    for t in existing:
        shutil.rmtree(out / t)
    shop = Shop(start, end, seed, scale_, tuple(drift), campaigns)
    summary = SimulationSummary(out=out, start=start, end=end, seed=seed, scale=scale_.name)
    summary.rows = {t: 0 for t in TABLES}
    summary.write_seconds = {t: 0.0 for t in TABLES}

    def write(name: str, day: dt.date, table: pa.Table) -> None:
        t0 = time.perf_counter()
        lake.write_parquet(TABLES[name], table, lake.partition_dir(out, name, day) / lake.PART_FILE)
        summary.write_seconds[name] += time.perf_counter() - t0
        summary.rows[name] += table.num_rows

    log.info(
        "simulating %s..%s (%d days) at scale %s, seed %d into %s", start, end, shop.n_days, scale_.name, seed, out
    )
    for i in range(shop.n_days):
        day = start + dt.timedelta(days=i)
        for name, table in shop.simulate_day(i).items():
            write(name, day, table)
        if (i + 1) % max(1, shop.n_days // 10) == 0 or i + 1 == shop.n_days:
            done = ", ".join(f"{k}={v:,}" for k, v in summary.rows.items() if k != "promotion_offers")
            log.info("day %d/%d (%s): %s", i + 1, shop.n_days, day, done)
    offers = shop.offer_table()
    by_day = dict(lake.split_by_date(TABLES["promotion_offers"], offers))
    empty = TABLES["promotion_offers"].arrow_schema().empty_table()
    for i in range(shop.n_days):  # an empty partition says "no offers that day", unlike a missing one
        day = start + dt.timedelta(days=i)
        write("promotion_offers", day, by_day.get(day, empty))
    shop.truth.write(out / lake.TRUTH_DIR, shop, offers)
    summary.seconds = time.perf_counter() - began
    log.info(
        "wrote %s rows in %.1f s; truth in %s", f"{sum(summary.rows.values()):,}", summary.seconds, summary.truth_path
    )
    return summary


def summary_json(summary: SimulationSummary) -> str:
    return json.dumps(
        {
            "out": str(summary.out),
            "start": str(summary.start),
            "end": str(summary.end),
            "seed": summary.seed,
            "scale": summary.scale,
            "rows": summary.rows,
            "seconds": round(summary.seconds, 2),
            "write_seconds": {k: round(v, 3) for k, v in summary.write_seconds.items()},
        },
        indent=2,
    )
