"""The one clock. Everything that needs "now" calls `now_utc()`; tests move it with `frozen`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")

_offset = timedelta(0)
_frozen: datetime | None = None


def now_utc() -> datetime:
    """The current time, timezone-aware in UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def as_utc(value: datetime) -> datetime:
    """A datetime in UTC; naive values are taken to be UTC already (that is how we store them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Stop the clock at `at` (tests only)."""
    global _frozen
    previous, _frozen = _frozen, as_utc(at)
    try:
        yield
    finally:
        _frozen = previous


@contextlib.contextmanager
def shifted(by: timedelta) -> Iterator[None]:
    """Run the clock ahead by `by` (tests only), e.g. to pass a retry delay."""
    global _offset
    previous, _offset = _offset, _offset + by
    try:
        yield
    finally:
        _offset = previous
