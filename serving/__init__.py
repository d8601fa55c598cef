"""The serving API: FastAPI over the MLflow champions and the Feast online store (``create_app`` in ``app.py``).

Start it with ``storefront serve`` (or ``make serve``); ``docs/serving.md`` shows how to call it.
"""
