"""Watching the models in production: data drift reports (Evidently), alert routing, A/B readouts.

Heavy libraries (Evidently, MLflow) are imported inside the functions that use them, so importing this package
from a DAG file costs nothing at parse time.
"""
