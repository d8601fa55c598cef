"""Click parameter types shared by every stage's command line."""

from __future__ import annotations

import datetime as dt

import click


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD, converted to ``datetime.date``."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


ISO_DATE = IsoDate()
