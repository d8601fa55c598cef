"""Session performance KPIs as real-user monitoring reports them: log-normal bodies, heavy tails, shared causes.

Each session draws a few latent causes (network quality, device CPU, backend load, third-party weight) and
every KPI is built from them plus its own noise, so KPIs that share a cause are correlated the way they are
in real RUM data (FCP, LCP and page load move together; INP, total blocking time and long tasks move
together; checkout and payment latency share the checkout backend).
"""

from __future__ import annotations

import numpy as np

from feature_repo.contract.schema import KPI_NAMES

# Per device (desktop, mobile, tablet): extra log-latency on the network and CPU side.
_DEVICE_NETWORK = np.array([0.0, 0.35, 0.2])
_DEVICE_CPU = np.array([0.0, 0.55, 0.3])
SLOW_CHECKOUT_FACTOR = 1.8  # the drift switch: checkout latency multiplier from its date on


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def _heavy_tail(rng: np.random.Generator, n: int, share: float = 0.02) -> np.ndarray:
    """Multiplier that makes ``share`` of sessions 2..10x slower (timeouts, cold caches, bad networks)."""
    return np.where(rng.random(n) < share, rng.uniform(2.0, 10.0, n), 1.0)


def draw_kpis(
    rng: np.random.Generator, device: np.ndarray, backend_load: float, slow_checkout: bool
) -> dict[str, np.ndarray]:
    """Draw every session KPI for sessions on ``device`` (indices into DEVICES); ``backend_load`` is the day's.

    Units follow the contract: milliseconds, counts, KiB, ratio.
    """
    n = len(device)
    net = rng.standard_normal(n) * 0.35 + _DEVICE_NETWORK[device] + np.log(_heavy_tail(rng, n, 0.03))
    cpu = rng.standard_normal(n) * 0.30 + _DEVICE_CPU[device]
    backend = backend_load + rng.standard_normal(n) * 0.25
    third_party = rng.standard_normal(n) * 0.4

    ttfb = _lognormal(rng, 180.0, 0.25, n) * np.exp(net + 0.5 * backend) * _heavy_tail(rng, n)
    server_render = _lognormal(rng, 110.0, 0.3, n) * np.exp(0.6 * backend)
    db_query = _lognormal(rng, 22.0, 0.4, n) * np.exp(0.8 * backend)
    fcp = ttfb + _lognormal(rng, 800.0, 0.25, n) * np.exp(0.8 * net + 0.3 * cpu)
    image_bytes = _lognormal(rng, 850.0, 0.45, n)
    # The largest element's own load and render delay (hero image, web font, client-side render) varies a lot
    # from page to page and is what separates LCP from FCP in real RUM data; page load waits for only part of it.
    hero = _lognormal(rng, 1000.0, 0.75, n) * np.exp(0.3 * net + 0.4 * np.log(image_bytes / 850.0))
    lcp = fcp + hero
    page_load = fcp + 0.35 * hero + _lognormal(rng, 1200.0, 0.4, n) * np.exp(0.5 * net + 0.2 * third_party)
    dom_content_loaded = fcp * rng.uniform(1.05, 1.4, n)
    tti = fcp + _lognormal(rng, 1100.0, 0.4, n) * np.exp(0.6 * cpu + 0.3 * third_party)
    inp = _lognormal(rng, 170.0, 0.35, n) * np.exp(0.9 * cpu + 0.2 * third_party) * _heavy_tail(rng, n, 0.01)
    tbt = _lognormal(rng, 220.0, 0.25, n) * np.power(inp / 170.0, 0.9)
    long_tasks = rng.poisson(np.clip(tbt / 90.0, 0.0, 200.0))
    third_party_ms = _lognormal(rng, 280.0, 0.35, n) * np.exp(third_party + 0.4 * cpu)
    api = _lognormal(rng, 85.0, 0.3, n) * np.exp(0.7 * backend)
    search = api * _lognormal(rng, 2.6, 0.35, n) * _heavy_tail(rng, n)
    cart = _lognormal(rng, 140.0, 0.4, n) * np.exp(0.5 * backend)
    checkout = _lognormal(rng, 420.0, 0.4, n) * np.exp(0.5 * backend) * _heavy_tail(rng, n)
    if slow_checkout:
        checkout *= SLOW_CHECKOUT_FACTOR
    payment = 0.6 * checkout + _lognormal(rng, 550.0, 0.35, n)
    recommendation = _lognormal(rng, 120.0, 0.4, n) * np.exp(0.5 * backend)
    js_errors = rng.poisson(0.8 * np.exp(0.9 * rng.standard_normal(n) + 0.5 * third_party))
    http_5xx = rng.poisson(0.55 * np.exp(1.5 * np.clip(backend, -1.0, 2.0)))
    http_4xx = rng.poisson(0.25, n)
    page_weight = image_bytes + _lognormal(rng, 1100.0, 0.35, n)
    cdn_hit = rng.beta(18.0, 2.0, n)
    cls = np.clip(_lognormal(rng, 0.05, 0.9, n), 0.0, 10.0)

    values = {
        "page_load_ms": page_load,
        "ttfb_ms": ttfb,
        "fcp_ms": fcp,
        "lcp_ms": lcp,
        "inp_ms": inp,
        "cls": cls,
        "tti_ms": tti,
        "total_blocking_time_ms": tbt,
        "dom_content_loaded_ms": dom_content_loaded,
        "server_render_ms": server_render,
        "api_latency_ms": api,
        "search_latency_ms": search,
        "cart_latency_ms": cart,
        "checkout_latency_ms": checkout,
        "payment_latency_ms": payment,
        "recommendation_latency_ms": recommendation,
        "db_query_ms": db_query,
        "third_party_script_ms": third_party_ms,
        "js_error_count": js_errors,
        "http_5xx_count": http_5xx,
        "http_4xx_count": http_4xx,
        "long_task_count": long_tasks,
        "image_bytes_kb": image_bytes,
        "page_weight_kb": page_weight,
        "cdn_hit_ratio": cdn_hit,
    }
    assert tuple(values) == KPI_NAMES, "KPI draw out of step with the contract"
    return {
        k: (v.astype(np.int64) if v.dtype.kind == "i" else np.round(v, 3 if k in ("cls", "cdn_hit_ratio") else 1))
        for k, v in values.items()
    }
