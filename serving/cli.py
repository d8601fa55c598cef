"""``storefront serve``: run the serving API with uvicorn (settings from ``STOREFRONT_*``, see ``.env.example``)."""

from __future__ import annotations

import os

import click


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on [default: STOREFRONT_SERVING_HOST, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: STOREFRONT_SERVING_PORT, 8000].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes; each loads every champion and polls the registry itself.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="One log line per request (costs latency under load).")
def serve_command(host: str | None, port: int | None, workers: int, access_log: bool) -> None:
    """Serve the champions over HTTP: /v1/... predictions, /health, /ready, /metrics, /docs."""
    import uvicorn

    from config.settings import get_settings
    from serving.app import one_thread_per_request

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # uvicorn's worker processes are spawned: they read this
    one_thread_per_request()
    settings = get_settings()
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host or settings.serving_host,
        port=port or settings.serving_port,
        workers=workers,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=30,  # in-flight requests finish; then the prediction log is flushed
    )
