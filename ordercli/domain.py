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


CANCELLABLE = (Status.DRAFT, Status.PAID)
SPENT = (Status.PAID, Status.SHIPPED)  # a shipped order has been paid
