"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from feast_services import production_feast_services


@pytest.fixture
def production_services() -> Iterator[dict[str, str]]:
    """A fresh Feast SQL registry database and a claimed empty Redis database (:func:`production_feast_services`)."""
    with production_feast_services() as overrides:
        yield overrides
