"""How big a simulated shop is: entity counts and daily traffic, per named scale."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Sizes of one simulated shop. Traffic is per day; list lengths are inclusive bounds."""

    name: str
    n_customers: int  # registered customers over the whole range (some sign up inside it)
    n_products: int
    customer_sessions_per_day: float  # mean sessions per registered customer per day
    anonymous_sessions_per_day: float
    list_length: tuple[int, int]
    extra_lists_per_session: float  # lists per session = 1 + Poisson(this)


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        # unit tests: a few hundred sessions a day, runs in seconds
        Scale(
            "tiny",
            n_customers=800,
            n_products=160,
            customer_sessions_per_day=0.35,
            anonymous_sessions_per_day=90,
            list_length=(6, 12),
            extra_lists_per_session=0.5,
        ),
        # the README's main job: about 3k sessions and 45k impressions a day
        Scale(
            "demo",
            n_customers=9000,
            n_products=1200,
            customer_sessions_per_day=0.25,
            anonymous_sessions_per_day=700,
            list_length=(8, 16),
            extra_lists_per_session=0.6,
        ),
        # benchmarks: about 20k sessions and 500k impressions a day (10M+ impressions in three weeks)
        Scale(
            "large",
            n_customers=150_000,
            n_products=20_000,
            customer_sessions_per_day=0.1,
            anonymous_sessions_per_day=5_000,
            list_length=(10, 30),
            extra_lists_per_session=0.6,
        ),
    )
}


def get_scale(name: str) -> Scale:
    try:
        return SCALES[name]
    except KeyError:
        raise ValueError(f"unknown scale {name!r}; choose one of {', '.join(SCALES)}") from None
