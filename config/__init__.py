"""Typed settings for every part of Storefront ML, read lazily from the environment with defaults in code."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
