"""Airflow-only glue for Storefront ML: asset names, run dates, accelerator routing, failure callbacks.

Light to import (DAG files import it at parse time): no heavy dependency, no I/O, no settings read at import.
"""
