"""Serving API under load: latency percentiles at a fixed request rate, with the Redis online store.

What it does, all on loopback and bounded in time and requests:

1. production-like online store: the newest feature date of the lake is materialized (Spark offline store, Feast
   SQL registry in a fresh PostgreSQL database) into an empty, claimed Redis database number;
2. the service (``storefront serve``, production profile, ``--workers`` uvicorn workers, pinned to
   ``--server-cpus``) in its own process, on the trained champions of ``--var-root`` (e.g. after ``make demo``);
3. a load generator in another process sends each endpoint's requests open-loop at ``--rate`` per second for
   ``--duration`` seconds (at most ``--max-requests``): latency is measured from each request's scheduled send
   time, so a slow server cannot hide its queueing (no coordinated omission);
4. the same customers' feature reads through Feast's own feature server (``feast serve``, same Redis, same
   registry), at the same rate: the baseline for the online read.

Printed per endpoint: p50/p95/p99/max latency (ms), achieved throughput, error count, and where the time goes
inside the service (``Server-Timing``: feature read, model, serialization; the rest is HTTP, routing and
validation). Target (issue 9): recommendations p99 <= 10 ms at 200 req/s over 60 s on 2 cores, zero errors.

    python benchmarks/serving_load.py --var-root var                     # after `make demo`
    python benchmarks/serving_load.py --var-root var --endpoints conversion --rate 100 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
ENDPOINTS = ("recommendations", "conversion", "rankings", "promotions", "prices", "feast_serve")
MODEL_OF = {"recommendations": "recommendation", "conversion": "conversion", "rankings": "ranking",
            "promotions": "promotion", "prices": "elasticity"}


# --- services ---------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@contextmanager
def production_online_store(base_env: dict[str, str], redis_db: int) -> Iterator[dict[str, str]]:
    """A fresh Feast SQL registry database and Redis database ``redis_db`` (must be empty; flushed after)."""
    import psycopg2
    import redis
    from sqlalchemy.engine import make_url

    from config.settings import Settings

    defaults = Settings()
    url = make_url(defaults.feast_registry_url)
    host, _, port = defaults.redis_connection.split(",")[0].partition(":")
    client = redis.Redis(host=host, port=int(port or 6379), db=redis_db, socket_timeout=5)
    if client.dbsize() != 0:
        raise SystemExit(f"Redis database {redis_db} is not empty: pick an empty one with --redis-db")
    database = f"storefront_serving_bench_{os.getpid()}"
    admin = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username or "postgres",
                             password=url.password, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    try:
        yield {
            **base_env,
            "STOREFRONT_PROFILE": "production",
            "STOREFRONT_FEAST_REGISTRY_URL": url.set(database=database).render_as_string(hide_password=False),
            # bounded waits: a Redis that stops answering becomes a fallback within 50 ms, not a hung request
            "STOREFRONT_REDIS_CONNECTION": f"{host}:{port or 6379},db={redis_db},socket_timeout=0.05,"
                                           "socket_connect_timeout=0.05",
        }
    finally:
        client.flushdb()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def materialize_newest_date(env: dict[str, str]) -> dt.date:
    """Apply the definitions and materialize the lake's newest customer_history date (a child process)."""
    code = (
        "import datetime as dt, sys\n"
        "from config.settings import get_settings\n"
        "from feature_repo import store\n"
        "root = get_settings().features_root / 'customer_history'\n"
        "day = max(dt.date.fromisoformat(p.name[3:]) for p in root.glob('dt=*'))\n"
        "store.apply(); store.materialize_days([day]); print(day.isoformat())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=900, check=False)
    if out.returncode != 0:
        raise SystemExit(f"materialize failed:\n{out.stderr[-3000:]}")
    return dt.date.fromisoformat(out.stdout.strip().splitlines()[-1])


@contextmanager
def process(args: list[str], env: dict[str, str], ready_url: str, cpus: str | None) -> Iterator[None]:
    """A server subprocess (pinned to ``cpus`` with taskset) that is up once ``ready_url`` answers 200."""
    import httpx

    command = (["taskset", "-c", cpus] if cpus else []) + args
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{args[0]} exited: {proc.stderr.read().decode()[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{ready_url} not ready after 300 s")
            time.sleep(0.5)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean shutdown: the prediction log is flushed
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- requests -----------------------------------------------------------------------------------------------------
def request_specs(endpoint: str, lake: Path, feature_refs: list[str], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` requests (method, path, json) drawn from the lake's customers, products and sessions."""
    import pandas as pd

    from feature_repo.contract.lake import read_table
    from feature_repo.contract.schema import CATALOG, CUSTOMERS, KPI_NAMES, SESSIONS

    rng = random.Random(seed)
    raw = lake / "raw"
    if endpoint in ("recommendations", "promotions", "feast_serve", "conversion"):
        customers = read_table(raw, CUSTOMERS).to_pandas()["customer_id"].astype(str).unique().tolist()
    if endpoint in ("rankings", "prices"):
        products = read_table(raw, CATALOG).to_pandas()["product_id"].astype(str).unique().tolist()
    specs = []
    if endpoint == "conversion":
        sessions = read_table(raw, SESSIONS).to_pandas().tail(5000)
        records = sessions.to_dict("records")
    for _ in range(n):
        if endpoint == "recommendations":
            customer = "anonymous" if rng.random() < 0.1 else rng.choice(customers)
            specs.append({"method": "GET", "path": f"/v1/recommendations/{customer}?k=10"})
        elif endpoint == "promotions":
            specs.append({"method": "GET", "path": f"/v1/promotions/{rng.choice(customers)}"})
        elif endpoint == "prices":
            specs.append({"method": "GET", "path": f"/v1/prices/{rng.choice(products)}"})
        elif endpoint == "rankings":
            specs.append({"method": "POST", "path": "/v1/rankings",
                          "json": {"product_ids": rng.sample(products, 24), "objective": "hybrid"}})
        elif endpoint == "feast_serve":
            specs.append({"method": "POST", "path": "/get-online-features",
                          "json": {"features": feature_refs, "entities": {"customer_id": [rng.choice(customers)]}}})
        else:
            s = rng.choice(records)
            specs.append({"method": "POST", "path": "/v1/conversion/score", "json": {
                "customer_id": None if pd.isna(s["customer_id"]) else str(s["customer_id"]),
                "device": s["device"], "channel": s["channel"],
                "kpis": {k: None if pd.isna(s[k]) else float(s[k]) for k in KPI_NAMES}}})
    return specs


def _server_timing(header: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name and dur:
            out[name] = float(dur)
    return out


class _Connection:
    """One keep-alive HTTP/1.1 connection: a request is pre-encoded bytes, a response is read by Content-Length.

    The generator must cost far less than the server it measures (both share 2 cores here): a general HTTP client
    spends milliseconds of CPU per request, this a few tens of microseconds.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> tuple[int, dict[str, str]]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers


def _encode(host: str, spec: dict[str, Any]) -> bytes:
    body = b"" if spec.get("json") is None else json.dumps(spec["json"]).encode()
    head = f"{spec['method']} {spec['path']} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    return (head + "\r\n").encode() + body


async def _drive(base_url: str, specs: list[dict[str, Any]], rate: float, duration: float) -> dict[str, Any]:
    host, port = base_url.removeprefix("http://").split(":")
    n = min(len(specs), int(rate * duration))
    requests = [_encode(host, s) for s in specs[: n + 20]]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stages: dict[str, list[float]] = {}
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(_Connection(*await asyncio.open_connection(host, int(port))))
    for request in requests[n:]:  # warm the connections and the server's caches, not measured
        connection = await pool.get()
        await connection.call(request)
        pool.put_nowait(connection)

    async def one(request: bytes, scheduled: float) -> None:
        connection = await pool.get()
        try:
            status, headers = await asyncio.wait_for(connection.call(request), timeout=10.0)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as err:
            errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
            connection.writer.close()
            connection = _Connection(*await asyncio.open_connection(host, int(port)))
            return
        finally:
            pool.put_nowait(connection)
        latencies.append((time.perf_counter() - scheduled) * 1000.0)
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
        for name, ms in _server_timing(headers.get("server-timing")).items():
            stages.setdefault(name, []).append(ms)

    start = time.perf_counter() + 0.1
    tasks = []
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(requests[i], scheduled)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().writer.close()
    return {"sent": n, "wall_s": wall, "latencies_ms": latencies, "errors": errors, "stages_ms": stages}


def _drive_in_process(base_url: str, specs: list[dict[str, Any]], rate: float, duration: float, queue: Any) -> None:
    queue.put(asyncio.run(_drive(base_url, specs, rate, duration)))


def drive(base_url: str, specs: list[dict[str, Any]], rate: float, duration: float, cpus: str | None) -> dict:
    """Run the load generator in a separate (spawned) process; its raw results."""
    assert base_url.startswith(f"http://{LOOPBACK}:"), "loopback only"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_drive_in_process, args=(base_url, specs, rate, duration, queue))
    proc.start()
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(proc.pid, {int(c) for c in cpus.split(",")})
    result = queue.get(timeout=duration + 300)
    proc.join(timeout=30)
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarize(name: str, result: dict[str, Any], rate: float) -> dict[str, Any]:
    lat = result["latencies_ms"]
    row = {
        "endpoint": name, "target_rate": rate, "sent": result["sent"],
        "throughput": round(len(lat) / result["wall_s"], 1) if result["wall_s"] else 0.0,
        "errors": sum(result["errors"].values()), "error_kinds": result["errors"],
        **{f"p{q}_ms": round(percentile(lat, q), 2) for q in (50, 95, 99)},
        "max_ms": round(max(lat), 2) if lat else float("nan"),
        "stages_ms": {k: {"p50": round(statistics.median(v), 3), "p99": round(percentile(v, 99), 3)}
                      for k, v in result["stages_ms"].items()},
    }
    stages = ", ".join(f"{k} p50 {v['p50']:.3f} / p99 {v['p99']:.3f}" for k, v in row["stages_ms"].items())
    print(f"{name:16s} sent {row['sent']:6d}  thr {row['throughput']:7.1f}/s  errors {row['errors']:4d}  "
          f"p50 {row['p50_ms']:7.2f}  p95 {row['p95_ms']:7.2f}  p99 {row['p99_ms']:7.2f}  max {row['max_ms']:8.2f} ms"
          + (f"\n{'':16s} inside the service (ms): {stages}" if stages else ""), flush=True)
    return row


# --- main ---------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--var-root", type=Path, default=REPO / "var", help="Trained platform (MLflow champions)")
    parser.add_argument("--lake-root", type=Path, default=None, help="[default: <var-root>/lake]")
    parser.add_argument("--mlflow-tracking-uri", default=None, help="[default: the var root's SQLite store]")
    parser.add_argument("--endpoints", nargs="+", choices=ENDPOINTS, default=["recommendations", "conversion",
                                                                               "feast_serve"])
    parser.add_argument("--rate", type=float, default=200.0, help="Requests per second per endpoint")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per endpoint")
    parser.add_argument("--max-requests", type=int, default=20_000, help="Per endpoint, at most")
    parser.add_argument("--server-cpus", default="0,1", help="taskset CPU list of the servers ('' for none)")
    parser.add_argument("--client-cpus", default=None, help="CPU list of the load generator [default: any]")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the service")
    parser.add_argument("--redis-db", type=int, default=13, help="An empty Redis database number to use")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here")
    args = parser.parse_args(argv)
    if args.rate * args.duration > args.max_requests:
        args.duration = args.max_requests / args.rate
    var_root = args.var_root.resolve()
    lake = (args.lake_root or var_root / "lake").resolve()
    base_env = {**os.environ, "STOREFRONT_VAR_ROOT": str(var_root), "STOREFRONT_LAKE_ROOT": str(lake),
                "SPARK_LOCAL_IP": LOOPBACK, "GX_ANALYTICS_ENABLED": "false"}
    if args.mlflow_tracking_uri:
        base_env["STOREFRONT_MLFLOW_TRACKING_URI"] = args.mlflow_tracking_uri
    print(f"load average {os.getloadavg()[0]:.2f} at start; {os.cpu_count()} CPUs; server on CPUs "
          f"{args.server_cpus or 'any'}, {args.workers} worker(s); {args.rate:g} req/s for {args.duration:g} s",
          flush=True)

    results = []
    with production_online_store(base_env, args.redis_db) as env:
        began = time.perf_counter()
        day = materialize_newest_date(env)
        print(f"materialized {day} into Redis db {args.redis_db} in {time.perf_counter() - began:.0f} s", flush=True)
        from serving.features import CUSTOMER_HISTORY_REFS

        refs = list(CUSTOMER_HISTORY_REFS)
        n = int(args.rate * args.duration) + 20
        service = [e for e in args.endpoints if e != "feast_serve"]
        if service:
            port = free_port()
            server = [str(Path(sys.executable).with_name("storefront")), "serve", "--host", LOOPBACK,
                      "--port", str(port), "--workers", str(args.workers)]
            with process(server, env, f"http://{LOOPBACK}:{port}/ready", args.server_cpus or None):
                import httpx

                models = httpx.get(f"http://{LOOPBACK}:{port}/ready").json()["models"]
                print("champions:", {m: s["version"] for m, s in models.items()}, flush=True)
                for endpoint in service:
                    if models[MODEL_OF[endpoint]]["version"] is None:
                        print(f"{endpoint:16s} skipped: no {MODEL_OF[endpoint]} champion "
                              f"({models[MODEL_OF[endpoint]]['status']})", flush=True)
                        continue
                    specs = request_specs(endpoint, lake, refs, n, args.seed)
                    raw = drive(f"http://{LOOPBACK}:{port}", specs, args.rate, args.duration, args.client_cpus)
                    results.append(summarize(endpoint, raw, args.rate))
        if "feast_serve" in args.endpoints:
            port = free_port()
            feast_env = {**env}
            from feature_repo.store import feast_environment  # the ${STOREFRONT_*} the yaml reads

            os.environ.update({k: v for k, v in env.items() if k.startswith("STOREFRONT_")})
            from config.settings import get_settings

            get_settings.cache_clear()
            feast_env.update(feast_environment())
            feast = [str(Path(sys.executable).with_name("feast")), "-c", str(REPO / "feature_repo"), "-f",
                     str(REPO / "feature_repo" / "feature_store.production.yaml"), "serve", "-h", LOOPBACK,
                     "-p", str(port), "--no-access-log", "-w", "1",
                     "--max-requests", "1000000"]  # its default (1000) restarts the worker mid-run
            with process(feast, feast_env, f"http://{LOOPBACK}:{port}/health", args.server_cpus or None):
                specs = request_specs("feast_serve", lake, refs, n, args.seed)
                raw = drive(f"http://{LOOPBACK}:{port}", specs, args.rate, args.duration, args.client_cpus)
                results.append(summarize("feast_serve", raw, args.rate))
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
