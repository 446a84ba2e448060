"""Calendar months in Brussels time, in Python and in SQL.

A month is numbered `year × 12 + month − 1` so that SQL can step between months with plain
integer arithmetic on both databases. Timestamps are stored in UTC; which month a moment
belongs to depends on the Brussels offset (UTC+1, UTC+2 in summer), so bucketing needs the
zone: PostgreSQL knows it; SQLite does not, and gets the EU summer-time rule written out
(from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from magazine.clock import BRUSSELS


def month_no(day: date) -> int:
    return day.year * 12 + day.month - 1


def month_date(number: int) -> date:
    """The first day of month `number`."""
    return date(number // 12, number % 12 + 1, 1)


def month_label(number: int) -> str:
    return f"{number // 12}-{number % 12 + 1:02d}"


def parse_month(text: str) -> int | None:
    """'2026-03' → its number; None when it is not a month."""
    try:
        year, month = (int(part) for part in text.strip().split("-"))
    except ValueError:
        return None
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        return None
    return year * 12 + month - 1


def month_start_utc(number: int) -> datetime:
    """The moment month `number` begins in Brussels, as an aware datetime."""
    return datetime.combine(month_date(number), time(0), tzinfo=BRUSSELS)


@dataclass(frozen=True)
class Period:
    """Whole months `first`..`last` (inclusive), as month numbers."""

    first: int
    last: int

    @property
    def months(self) -> list[int]:
        return list(range(self.first, self.last + 1))

    @property
    def starts(self) -> datetime:
        return month_start_utc(self.first)

    @property
    def ends(self) -> datetime:
        """The first moment after the period."""
        return month_start_utc(self.last + 1)

    @property
    def first_day(self) -> date:
        return month_date(self.first)

    @property
    def last_day(self) -> date:
        from datetime import timedelta

        return month_date(self.last + 1) - timedelta(days=1)

    def label(self) -> str:
        return f"{month_label(self.first)} – {month_label(self.last)}"


class month_of(FunctionElement):
    """SQL: the Brussels month number of a UTC timestamp column (see the module doc)."""

    type = sa.Integer()
    inherit_cache = True


@compiles(month_of, "postgresql")
def _month_of_postgresql(element, compiler, **kw):
    column = compiler.process(element.clauses, **kw)
    local = f"(({column}) AT TIME ZONE 'Europe/Brussels')"
    return (f"(CAST(EXTRACT(YEAR FROM {local}) AS INTEGER) * 12 "
            f"+ CAST(EXTRACT(MONTH FROM {local}) AS INTEGER) - 1)")


@compiles(month_of, "sqlite")
def _month_of_sqlite(element, compiler, **kw):
    column = compiler.process(element.clauses, **kw)
    year = f"strftime('%Y', {column})"
    # The last Sunday of March (October): the Sunday before 1 April (1 November), 01:00 UTC.
    summer_from = f"datetime(date({year} || '-04-01', 'weekday 0', '-7 days'), '+1 hour')"
    summer_until = f"datetime(date({year} || '-11-01', 'weekday 0', '-7 days'), '+1 hour')"
    local = (f"datetime({column}, CASE WHEN datetime({column}) >= {summer_from} "
             f"AND datetime({column}) < {summer_until} THEN '+2 hours' ELSE '+1 hour' END)")
    return (f"(CAST(strftime('%Y', {local}) AS INTEGER) * 12 "
            f"+ CAST(strftime('%m', {local}) AS INTEGER) - 1)")


def month_of_day(column: ColumnElement) -> ColumnElement:
    """SQL: the month number of a DATE column (no zone involved)."""
    return sa.extract("year", column) * 12 + sa.extract("month", column) - 1
