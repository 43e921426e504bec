"""UTC in, UTC out: parsing user dates and normalising what the database returns."""

from __future__ import annotations

import datetime


def utcnow() -> datetime.datetime:
    """Naive UTC wall time, the form every timestamp column stores."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def parse_utc(text: str) -> datetime.datetime:
    """An ISO 8601 date or datetime as naive UTC; without an offset it already is UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            parsed = datetime.datetime.combine(datetime.date.fromisoformat(value), datetime.time())
        else:
            parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or datetime "
            "(e.g. 2026-01-31, 2026-01-31T18:00, 2026-01-31T18:00:00+01:00)"
        ) from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(datetime.UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00+14:00 is in the year 0 in UTC
            raise ValueError(
                f"{text!r} is outside the years 1 to 9999 once converted to UTC"
            ) from None
    return parsed


def as_utc(value: datetime.datetime | str | None) -> datetime.datetime | None:
    """A stored timestamp as an aware UTC datetime.

    Copes with rows other writers left: naive values are UTC, aware ones are
    converted, and SQLite text in any ISO form is parsed."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)
