"""This machine's production services (PostgreSQL, Redis) for the integration tests: reach them or skip."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from config.settings import get_settings


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def production_feast_services(label: str = "feast") -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database for Feast's SQL registry and an empty, claimed Redis database number.

    Yields the settings overrides (``feast_registry_url``, ``redis_connection``) and drops/flushes both after;
    skips the test when a service is unreachable. ``label`` keeps two users in one process apart.
    """
    import psycopg2
    import redis
    from sqlalchemy.engine import make_url

    defaults = get_settings.__wrapped__()  # the configured services, whatever the tests changed
    registry_url = make_url(defaults.feast_registry_url)
    redis_host, _, redis_port = defaults.redis_connection.split(",")[0].partition(":")
    pg_host, pg_port = registry_url.host or "127.0.0.1", registry_url.port or 5432
    if not reachable(pg_host, pg_port):
        pytest.skip(f"PostgreSQL not reachable at {pg_host}:{pg_port} (the SQL registry needs it)")
    if not reachable(redis_host, int(redis_port or 6379)):
        pytest.skip(f"Redis not reachable at {redis_host}:{redis_port} (the production online store)")

    database = f"storefront_{label}_test_{os.getpid()}"
    try:
        admin = psycopg2.connect(
            host=pg_host, port=pg_port, user=registry_url.username or "postgres", password=registry_url.password,
            dbname="postgres", connect_timeout=5,
        )
    except psycopg2.OperationalError as err:
        pytest.skip(f"PostgreSQL at {pg_host}:{pg_port} refused the test's connection: {err}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{database}"')

    claim_key, db_number, client = "storefront:feast-test-claim", None, None
    for n in sorted(range(1, 16), key=lambda n: (n - os.getpid()) % 15):  # never db 0, where real data lives
        candidate = redis.Redis(host=redis_host, port=int(redis_port or 6379), db=n, socket_timeout=5)
        try:
            if candidate.dbsize() == 0 and candidate.set(claim_key, os.getpid(), nx=True):
                db_number, client = n, candidate
                break
        except redis.RedisError:  # fewer databases configured, or no access
            continue
    if client is None:
        admin.close()
        pytest.skip("no empty Redis database number (1..15) to claim for the test")
    try:
        yield {
            "feast_registry_url": registry_url.set(database=database).render_as_string(hide_password=False),
            "redis_connection": f"{redis_host}:{redis_port or 6379},db={db_number}",
        }
    finally:
        client.flushdb()
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
