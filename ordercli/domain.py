"""The order statuses and the rules about them; importable without a database library.

Kept apart from models.py so the CLI can offer `--status` choices (and `--help`)
without importing Peewee, which imports every installed database driver.
"""

from __future__ import annotations

import enum

DEFAULT_URL = "sqlite:///orders.db"


class Status(enum.StrEnum):
    DRAFT = "draft"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


# The one rule table for status moves: target status -> the statuses it may be reached
# from. `pay`, `ship` and `cancel` each name one row; orders.change_status applies it.
# Nothing else changes an order's status (draft -> paid -> shipped, draft/paid -> cancelled).
TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    Status.PAID: (Status.DRAFT,),
    Status.SHIPPED: (Status.PAID,),
    Status.CANCELLED: (Status.DRAFT, Status.PAID),
}
CANCELLABLE = TRANSITIONS[Status.CANCELLED]
SPENT = (Status.PAID, Status.SHIPPED)  # a shipped order has been paid


class Period(enum.StrEnum):
    """`revenue --by`: calendar day, ISO week (starting Monday), calendar month; UTC."""

    day = "day"
    week = "week"
    month = "month"
