"""Fixtures of the data tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark session for the whole test run (starting one takes 6 to 12 s)."""
    from feature_repo.features.spark_session import spark_session

    with spark_session("storefront-tests") as session:
        yield session
