"""One typed settings object for the whole platform.

Read from ``STOREFRONT_*`` environment variables (and a ``.env`` file if present) with the embedded defaults
below. Nothing is read at import time: call ``get_settings()``. ``.env.example`` lists every setting.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where data lives and how the simulated default shop is drawn."""

    model_config = SettingsConfigDict(env_prefix="STOREFRONT_", env_file=".env", extra="ignore")

    profile: Literal["embedded", "production"] = Field(
        "embedded", description="embedded: local files, SQLite and local Spark; production: the services"
    )
    lake_root: Path = Field(Path("var/lake"), description="Root of the data lake; raw tables live under raw/")
    seed: int = Field(7, description="Seed of the simulated shop")
    scale: Literal["tiny", "demo", "large"] = Field("demo", description="Size of the simulated shop")

    @property
    def raw_root(self) -> Path:
        return self.lake_root / "raw"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
