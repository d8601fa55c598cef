"""The simulated shop's static world and the effects planted in it.

Everything a model should recover is a named constant or a seeded draw here, and ends up in the truth file:

* conversion: a session checks out with probability ``sigmoid(logit)`` where only ``PLANTED_KPI_EFFECTS``
  move the logit (plus customer history, device, channel); the other KPIs are noise, several of them
  strongly correlated with planted ones (FCP and page load with LCP, total blocking time with INP, payment
  latency with checkout latency);
* ranking: clicks follow ``position_bias(pos) * attractiveness(customer, product)``; carts, checkout and
  purchase cascade from clicks, and price lowers the purchase probability through the category elasticity;
* recommendation: attractiveness is ``sigmoid(ATTRACTIVENESS_BIAS + quality_p + u_c . v_p)`` with customer and
  product factors clustered by segment and category;
* elasticity: purchase probability at checkout scales as ``(price / list_price) ** elasticity[category]``,
  with prices that move partly at random and partly with the season (so naive fits are confounded);
* promotion: weekly campaigns (``CampaignPlan``: a sample of the customers, or most of the file), part
  randomized; coupon effects on visits and basket size by segment (some segments only get subsidized), and
  habituation for deal seekers;
* experiments and drift: see ``simulator.shop``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from feature_repo.contract.schema import ACQUISITION_CHANNELS, CHANNELS, DEVICES
from simulator.scales import Scale

LATENT_DIM = 8

# Top-level category -> (constant price elasticity, median list price EUR, subcategories).
CATEGORIES: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "grocery": (-0.6, 6.0, ("coffee", "snacks", "pantry")),
    "books": (-0.9, 18.0, ("fiction", "cookbooks", "children")),
    "beauty": (-1.2, 22.0, ("skincare", "haircare", "fragrance")),
    "home": (-1.6, 45.0, ("kitchen", "bedding", "decor")),
    "toys": (-1.9, 30.0, ("puzzles", "outdoor-toys", "building")),
    "sports": (-2.2, 55.0, ("running", "fitness", "cycling")),
    "fashion": (-2.6, 40.0, ("shoes", "jackets", "accessories")),
    "electronics": (-3.0, 160.0, ("audio", "phones", "computers")),
}
REPEAT_PURCHASE_CATEGORIES = ("grocery", "beauty")
BRANDS_PER_CATEGORY = 6

# Customer segments: share, mean sessions multiplier, base purchase propensity at checkout.
SEGMENTS: dict[str, tuple[float, float, float]] = {
    "loyal": (0.20, 2.2, 0.24),
    "deal_seeker": (0.20, 0.9, 0.14),
    "occasional": (0.30, 0.6, 0.18),
    "newcomer": (0.15, 0.8, 0.16),
    "high_value": (0.15, 1.4, 0.22),
}
ANONYMOUS_SEGMENT = "occasional"
# How each segment was acquired, over feature_repo.contract.schema.ACQUISITION_CHANNELS (organic, paid_search,
# social, email, referral, affiliate, offline). Deal seekers mostly come from affiliates (coupon and cashback
# sites), newcomers from social campaigns, loyal customers from referrals and e-mail, high-value ones from paid
# search and the printed catalogue: a shop's CRM records this, and it is what lets a policy tell segments apart.
ACQUISITION_MIX: dict[str, tuple[float, ...]] = {
    "loyal": (0.36, 0.14, 0.06, 0.18, 0.16, 0.03, 0.07),
    "deal_seeker": (0.12, 0.10, 0.10, 0.04, 0.03, 0.58, 0.03),
    "occasional": (0.38, 0.26, 0.16, 0.06, 0.08, 0.03, 0.03),
    "newcomer": (0.22, 0.22, 0.36, 0.04, 0.10, 0.04, 0.02),
    "high_value": (0.34, 0.30, 0.06, 0.10, 0.08, 0.02, 0.10),
}

# --- conversion: the planted KPI effects ---------------------------------------------------------------------
# logit contribution = beta * log(kpi / reference) for "log" KPIs, beta * kpi for "linear" (count) KPIs.
PLANTED_KPI_EFFECTS: dict[str, tuple[float, str, float]] = {
    "lcp_ms": (-0.90, "log", 2500.0),
    "inp_ms": (-0.60, "log", 200.0),
    "checkout_latency_ms": (-0.80, "log", 450.0),
    "search_latency_ms": (-0.45, "log", 250.0),
    "js_error_count": (-0.35, "linear", 0.0),
    "http_5xx_count": (-0.80, "linear", 0.0),
}
# Noise KPIs built from the same latent causes as a planted one (naive importance can credit them).
CORRELATED_NOISE_KPIS: dict[str, str] = {
    "fcp_ms": "lcp_ms",
    "page_load_ms": "lcp_ms",
    "tti_ms": "lcp_ms",
    "total_blocking_time_ms": "inp_ms",
    "long_task_count": "inp_ms",
    "payment_latency_ms": "checkout_latency_ms",
    "api_latency_ms": "search_latency_ms",
}
CHECKOUT_LOGIT_BASE = 0.4  # offsets the mean KPI penalties so the demo shop converts about 3.3% of sessions
HISTORY_EFFECTS = {
    "log1p_prior_orders": 0.35,  # per log(1 + orders before this session)
    "log1p_days_since_last_order": -0.08,  # per log(1 + days); customers who never ordered use 365 days
    "anonymous": -0.30,
}
DEVICE_EFFECTS = {"desktop": 0.0, "mobile": -0.25, "tablet": -0.10}
CHANNEL_EFFECTS = {
    "direct": 0.10,
    "organic_search": 0.0,
    "paid_search": 0.05,
    "email": 0.30,
    "social": -0.35,
    "referral": 0.0,
    "affiliate": 0.05,
}
DEVICE_MIX = (0.42, 0.48, 0.10)
DEVICE_MIX_MOBILE_SHIFT = (0.22, 0.70, 0.08)
CHANNEL_MIX = (0.22, 0.28, 0.15, 0.12, 0.10, 0.08, 0.05)

# --- ranking ---------------------------------------------------------------------------------------------------
POSITION_BIAS_EXPONENT = 0.8  # examination probability of position k is k ** -0.8
ATTRACTIVENESS_BIAS = -1.6
CART_GIVEN_CLICK_SCALE = 0.6  # P(cart | click) = 0.6 * attractiveness
RANDOMIZED_LIST_SHARE = 0.10
LIST_TYPE_MIX = (0.55, 0.30, 0.15)  # category_page, search, recommendation
PURCHASE_PROBABILITY_CAP = 0.95

# --- elasticity and prices ------------------------------------------------------------------------------------
SEASONAL_AMPLITUDE = 0.25  # traffic multiplier 1 + 0.25 * sin(...) over a year
SEASONAL_MARKUP = 0.30  # log price moves 0.30 * seasonal deviation: prices rise with demand (confounding)
PRICE_CHANGE_WEEKLY_PROBABILITY = 0.35
PRICE_NOISE_SIGMA = 0.2
PRICE_FACTOR_BOUNDS = (0.65, 1.35)
WEEKDAY_TRAFFIC = (0.95, 0.95, 1.0, 1.0, 1.05, 1.1, 1.0)  # Monday .. Sunday

# --- promotion -------------------------------------------------------------------------------------------------
# promotion_id -> (kind, percent off, minimum spend EUR)
COUPONS: dict[str, tuple[str, float, float]] = {
    "none": ("none", 0.0, 0.0),
    "pct5": ("percent_off", 5.0, 0.0),
    "pct10": ("percent_off", 10.0, 0.0),
    "pct20": ("percent_off", 20.0, 0.0),
    "free_shipping": ("free_shipping", 0.0, 0.0),
}
SHIPPING_FEE = 4.90  # what free shipping costs the shop per order
OUTCOME_WINDOW_DAYS = 70  # promotion value is judged on the 10 weeks after the offer


@dataclass(frozen=True)
class CampaignPlan:
    """How the shop sends coupons, and what a coupon does to each segment while it is valid.

    Every ``every_days`` (from the 11th simulated day) a campaign goes to ``reach`` of the registered customers who
    hold no valid coupon; ``randomized_share`` of its recipients get an arm (none or a coupon, equally likely), the
    rest the shop's own policy coupon. While a coupon is valid (``valid_days``), per segment and coupon: the visit
    rate is multiplied by ``activity`` (the e-mail and the coupon bring visits) and each order line gets ``extra_units``
    more units on average (quantity is 1 + Poisson(base + extra): the customer stocks up at the discount). Neither
    changes a session's conversion or the price response. After redeeming, a segment in ``habituation`` visits at
    that factor x its rate, in the weeks it holds no coupon, until the offer's 10-week window ends.
    """

    name: str
    every_days: int
    valid_days: int
    reach: float
    randomized_share: float
    activity: dict[str, dict[str, float]]
    extra_units: dict[str, dict[str, float]]
    habituation: dict[str, float]


_NO_EXTRA_UNITS = {s: {c: 0.0 for c in COUPONS if c != "none"} for s in SEGMENTS}
CAMPAIGN_PLANS: dict[str, CampaignPlan] = {
    p.name: p
    for p in (
        # the default: a weekly sample of 8% of the customers, 40% of them randomized (about 50 randomized offers
        # per segment and coupon in the demo lake's closed windows); coupons last two weeks and only bring visits
        CampaignPlan(
            name="sampled",
            every_days=7,
            valid_days=14,
            reach=0.08,
            randomized_share=0.40,
            activity={
                "loyal": {"pct5": 1.0, "pct10": 1.0, "pct20": 1.05, "free_shipping": 1.0},  # coupons only subsidize
                "deal_seeker": {"pct5": 1.3, "pct10": 1.8, "pct20": 2.6, "free_shipping": 1.4},
                "occasional": {"pct5": 1.25, "pct10": 1.6, "pct20": 1.7, "free_shipping": 1.5},
                "newcomer": {"pct5": 1.2, "pct10": 1.3, "pct20": 1.4, "free_shipping": 1.9},
                "high_value": {"pct5": 1.0, "pct10": 1.05, "pct20": 1.1, "free_shipping": 1.05},
            },
            extra_units=_NO_EXTRA_UNITS,
            habituation={"deal_seeker": 0.55},
        ),
        # issue 18: what real campaigns look like. Every week to 80% of the file, half of the recipients randomized
        # (the Hillstrom test randomized 64,000 customers at once); a coupon lasts until the next campaign, so every
        # customer is eligible every week; coupons bring visits and bigger baskets from the responding segments.
        CampaignPlan(
            name="file",
            every_days=7,
            valid_days=7,
            reach=0.8,
            randomized_share=0.5,
            activity={
                "loyal": {"pct5": 1.0, "pct10": 1.0, "pct20": 1.05, "free_shipping": 1.0},
                "deal_seeker": {"pct5": 1.6, "pct10": 3.6, "pct20": 4.5, "free_shipping": 1.6},
                "occasional": {"pct5": 1.4, "pct10": 3.2, "pct20": 3.4, "free_shipping": 2.6},
                "newcomer": {"pct5": 1.2, "pct10": 1.6, "pct20": 1.8, "free_shipping": 4.0},
                "high_value": {"pct5": 1.0, "pct10": 1.05, "pct20": 1.1, "free_shipping": 1.05},
            },
            extra_units={
                "loyal": {"pct5": 0.0, "pct10": 0.0, "pct20": 0.0, "free_shipping": 0.0},
                "deal_seeker": {"pct5": 0.2, "pct10": 1.0, "pct20": 1.4, "free_shipping": 0.2},
                "occasional": {"pct5": 0.1, "pct10": 0.9, "pct20": 1.0, "free_shipping": 0.6},
                "newcomer": {"pct5": 0.0, "pct10": 0.2, "pct20": 0.3, "free_shipping": 1.0},
                "high_value": {"pct5": 0.0, "pct10": 0.0, "pct20": 0.0, "free_shipping": 0.0},
            },
            habituation={"deal_seeker": 0.55},
        ),
    )
}
DEFAULT_CAMPAIGN_PLAN = "sampled"


def get_campaign_plan(name: str) -> CampaignPlan:
    try:
        return CAMPAIGN_PLANS[name]
    except KeyError:
        raise ValueError(f"unknown campaign plan {name!r}; choose one of {', '.join(CAMPAIGN_PLANS)}") from None


# --- experiments -----------------------------------------------------------------------------------------------
# id -> (name, logit lift of the checkout probability for the treatment, share of treatment exposures lost
#        from the log (a broken logger: sample-ratio mismatch), window as fractions of the simulated range)
EXPERIMENTS: dict[str, tuple[str, float, float, tuple[float, float]]] = {
    "exp_checkout_redesign": ("One-page checkout", 0.12, 0.0, (0.25, 0.75)),
    "aa_homepage": ("A/A check of the assignment service", 0.0, 0.0, (0.25, 0.75)),
    "exp_recs_widget": ("Recommendation widget on the cart page", 0.05, 0.12, (0.35, 0.85)),
}


def position_bias(position: np.ndarray) -> np.ndarray:
    """Probability that a visitor examines the item at a 1-based position."""
    return np.power(position.astype(np.float64), -POSITION_BIAS_EXPONENT)


def seasonality(days: np.ndarray) -> np.ndarray:
    """Traffic multiplier for day numbers (days since 1970-01-01): peaks in late November, low in spring."""
    phase = 2 * np.pi * ((days - 20_000 - 146) % 365.25) / 365.25  # 2024-10-27 + k years is the zero-crossing
    return 1.0 + SEASONAL_AMPLITUDE * np.sin(phase)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Products:
    product_id: np.ndarray  # str
    category: np.ndarray  # int index into CATEGORIES
    subcategory: np.ndarray  # str "category/sub"
    brand: np.ndarray  # str
    list_price: np.ndarray
    unit_cost: np.ndarray
    is_repeat: np.ndarray
    launched: np.ndarray  # day number
    discontinued: np.ndarray  # day number (exclusive), large for never
    quality: np.ndarray
    factors: np.ndarray  # (n, LATENT_DIM)
    popularity: np.ndarray  # the shop's logged popularity score (what its default ranker sorts by)
    elasticity: np.ndarray

    def __len__(self) -> int:
        return len(self.product_id)


@dataclass
class Customers:
    customer_id: np.ndarray  # str
    segment: np.ndarray  # int index into SEGMENTS
    signup: np.ndarray  # day number
    country: np.ndarray
    acquisition_channel: np.ndarray
    session_rate: np.ndarray  # mean sessions per day before seasonality and promotions
    factors: np.ndarray  # (n, LATENT_DIM)
    purchase_propensity: np.ndarray

    def __len__(self) -> int:
        return len(self.customer_id)


@dataclass
class World:
    products: Products
    customers: Customers
    category_centroids: np.ndarray
    segment_centroids: np.ndarray


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


COUNTRIES = ("DE", "FR", "NL", "AT", "BE", "IT", "ES", "PL", "SE", "DK")
COUNTRY_MIX = (0.34, 0.16, 0.10, 0.07, 0.06, 0.08, 0.07, 0.05, 0.04, 0.03)


def build_world(scale: Scale, start: dt.date, end: dt.date, rng: np.random.Generator) -> World:
    """Draw the products and customers of a shop that trades from ``start`` to ``end`` (inclusive)."""
    first_day, last_day = start.toordinal() - 719_163, end.toordinal() - 719_163  # day numbers since 1970-01-01
    n_days = last_day - first_day + 1
    cat_names = list(CATEGORIES)
    n_cat = len(cat_names)

    category_centroids = rng.normal(0.0, 0.9, size=(n_cat, LATENT_DIM))
    segment_centroids = rng.normal(0.0, 0.5, size=(len(SEGMENTS), LATENT_DIM))

    # products
    n_p = scale.n_products
    category = rng.integers(0, n_cat, size=n_p)
    sub_index = rng.integers(0, 3, size=n_p)
    subcategory = np.array(
        [f"{cat_names[c]}/{CATEGORIES[cat_names[c]][2][s]}" for c, s in zip(category, sub_index, strict=True)],
        dtype=object,
    )
    median_price = np.array([CATEGORIES[c][1] for c in cat_names])[category]
    list_price = np.round(median_price * np.exp(rng.normal(0.0, 0.5, size=n_p)), 2).clip(0.99, None) - 0.01
    list_price = np.round(list_price, 2)
    unit_cost = np.round(list_price * rng.uniform(0.40, 0.65, size=n_p), 2)
    brand_number = rng.integers(1, BRANDS_PER_CATEGORY + 1, n_p)
    brand = np.array(
        [f"{cat_names[c].capitalize()}Co {b}" for c, b in zip(category, brand_number, strict=True)], dtype=object
    )
    is_repeat = np.isin(category, [cat_names.index(c) for c in REPEAT_PURCHASE_CATEGORIES]) & (rng.random(n_p) < 0.8)
    # 85% on sale before the range starts, 15% launched inside it (cold start); 4% discontinued inside it.
    launched = np.where(
        rng.random(n_p) < 0.85,
        first_day - rng.integers(30, 720, size=n_p),
        first_day + rng.integers(1, max(2, n_days), size=n_p),
    )
    discontinued = np.where(
        rng.random(n_p) < 0.04, first_day + rng.integers(max(1, n_days // 3), max(2, n_days), size=n_p), 10**7
    )
    discontinued = np.maximum(discontinued, launched + 7)
    quality = rng.normal(0.0, 0.6, size=n_p)
    factors = category_centroids[category] + rng.normal(0.0, 0.45, size=(n_p, LATENT_DIM))
    factors /= np.sqrt(LATENT_DIM)
    # The shop's popularity score tracks quality only loosely: a learned ranker has room to win.
    popularity = quality + rng.normal(0.0, 0.8, size=n_p)
    elasticity = np.array([CATEGORIES[c][0] for c in cat_names])[category]
    products = Products(
        _ids("P", n_p, 6),
        category,
        subcategory,
        brand,
        list_price,
        unit_cost,
        is_repeat,
        launched,
        discontinued,
        quality,
        factors,
        popularity,
        elasticity,
    )

    # customers
    n_c = scale.n_customers
    seg_shares = np.array([s[0] for s in SEGMENTS.values()])
    segment = rng.choice(len(SEGMENTS), size=n_c, p=seg_shares / seg_shares.sum())
    new_inside = rng.random(n_c) < 0.12
    signup = np.where(
        new_inside, first_day + rng.integers(1, max(2, n_days), size=n_c), first_day - rng.integers(1, 1095, size=n_c)
    )
    newcomer = segment == list(SEGMENTS).index("newcomer")
    signup = np.where(newcomer & ~new_inside, first_day - rng.integers(1, 60, size=n_c), signup)
    activity = np.array([s[1] for s in SEGMENTS.values()])[segment]
    session_rate = scale.customer_sessions_per_day * activity * rng.lognormal(-0.3, 0.75, size=n_c)
    customer_factors = segment_centroids[segment] + rng.normal(0.0, 0.8, size=(n_c, LATENT_DIM))
    customer_factors /= np.sqrt(LATENT_DIM) / 2.0
    propensity = np.array([s[2] for s in SEGMENTS.values()])[segment]
    customers = Customers(
        customer_id=_ids("C", n_c, 7),
        segment=segment,
        signup=signup,
        country=np.array(COUNTRIES, dtype=object)[rng.choice(len(COUNTRIES), size=n_c, p=COUNTRY_MIX)],
        acquisition_channel=np.array(ACQUISITION_CHANNELS, dtype=object)[_acquisition_channel(segment, rng)],
        session_rate=session_rate,
        factors=customer_factors,
        purchase_propensity=propensity,
    )
    assert len(DEVICES) == len(DEVICE_MIX) and len(CHANNELS) == len(CHANNEL_MIX)
    return World(products, customers, category_centroids, segment_centroids)


def _acquisition_channel(segment: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index into ACQUISITION_CHANNELS per customer, drawn from the segment's mix (one uniform per customer, as
    ``rng.choice(..., p=...)`` draws, so the rest of the shop's random stream does not move)."""
    cdf = np.cumsum([ACQUISITION_MIX[s] for s in SEGMENTS], axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(len(segment))
    return (u[:, None] >= cdf[segment]).sum(axis=1)


def attractiveness(world: World, customer_factors: np.ndarray, product_index: np.ndarray) -> np.ndarray:
    """True probability that a visitor who examines a product clicks it (row-wise pairs)."""
    p = world.products
    affinity = np.einsum("ij,ij->i", customer_factors, p.factors[product_index])
    return sigmoid(ATTRACTIVENESS_BIAS + p.quality[product_index] + affinity)


def price_paths(world: World, first_day: int, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """Selling price of every product on every day, shape (n_days, n_products).

    Weekly, each product's random price factor is redrawn with some probability (identifying variation);
    on top, prices follow the season (the confounder a naive demand fit falls for).
    """
    p = world.products
    n_weeks = n_days // 7 + 1
    factor = np.empty((n_weeks, len(p)))
    current = np.exp(rng.normal(0.0, PRICE_NOISE_SIGMA, size=len(p)))
    for w in range(n_weeks):
        change = rng.random(len(p)) < PRICE_CHANGE_WEEKLY_PROBABILITY
        current = np.where(change, np.exp(rng.normal(0.0, PRICE_NOISE_SIGMA, size=len(p))), current)
        factor[w] = current
    days = first_day + np.arange(n_days)
    seasonal = np.exp(SEASONAL_MARKUP * (seasonality(days) - 1.0))
    weekly = factor[np.arange(n_days) // 7]
    multiplier = np.clip(weekly * seasonal[:, None], *PRICE_FACTOR_BOUNDS)
    return np.round(p.list_price[None, :] * multiplier, 2)
