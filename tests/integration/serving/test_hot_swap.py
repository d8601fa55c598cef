"""Hot swap: the champion alias moves while clients keep calling; the new version takes over and no call fails.

A real uvicorn server (in a thread) answers four client threads that call without pause; the alias moves from v1
to v2 mid-traffic; the poller (every 0.2 s here) loads v2 in the background and swaps it in.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pandas as pd
from serving_stack import SCORE, ServingStack, payload, uvicorn_server, wait_ready

from config.settings import Settings
from serving.app import create_app


def test_the_alias_moves_mid_traffic_and_no_request_fails(
    serving_stack: ServingStack, stack_settings: Settings, sessions: pd.DataFrame
) -> None:
    from training.shared import registry

    old, new = serving_stack.versions[:2]
    request = payload(sessions.iloc[3], serving_stack.known_customers[0])
    stop = threading.Event()
    results: list[tuple[float, float, int, str | None]] = []  # (sent, answered, status, version)
    lock = threading.Lock()

    def client_loop(base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post(SCORE, json=request)
                    version = response.json()["model"]["version"] if response.status_code == 200 else None
                    status = response.status_code
                except httpx.HTTPError as err:  # a dropped connection counts as a failed request
                    status, version = -1, type(err).__name__
                with lock:
                    results.append((sent, time.monotonic(), status, version))

    try:
        with uvicorn_server(create_app(stack_settings)) as base_url:
            with httpx.Client(base_url=base_url) as probe:
                assert wait_ready(probe)["models"]["conversion"]["version"] == old
            threads = [threading.Thread(target=client_loop, args=(base_url,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            moved_at = time.monotonic()
            registry.set_alias("conversion", new)
            deadline = moved_at + 60
            while time.monotonic() < deadline:
                with lock:
                    if sum(1 for t, _, _, v in results if t > moved_at and v == new) >= 20:
                        break
                time.sleep(0.1)
            stop.set()
            for thread in threads:
                thread.join()
    finally:
        stop.set()
        registry.set_alias("conversion", old)

    statuses = Counter(status for _, _, status, _ in results)
    assert statuses == Counter({200: len(results)}), statuses
    versions = [v for _, _, _, v in sorted(results)]
    assert versions[0] == old and versions[-1] == new
    # once a client got the new version, the old one never came back: no request sent after that answer got old
    # (with four clients, a request sent before it may still finish on the old model a moment later)
    first_new_answer = min(answered for _, answered, _, v in results if v == new)
    late_old = [(sent, answered) for sent, answered, _, v in results if v == old and sent > first_new_answer]
    assert not late_old, late_old
    assert sum(1 for v in versions if v == old) >= 10  # traffic ran before the move too
