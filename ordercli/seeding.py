"""Fill a database with realistic customers, orders and items, in batches.

Rows are generated lazily, one batch at a time, so memory stays flat whatever
`count` is. Each order batch is one transaction holding the orders together with
their items and correct totals: an interrupted seed leaves only whole orders.
"""

from __future__ import annotations

import datetime
import functools
import math
import random
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import peewee
from peewee import chunked

from ordercli.bulk import BulkInsert
from ordercli.db import Connection
from ordercli.models import Customer, Order, OrderItem, Status
from ordercli.timeutil import utcnow

SKUS = tuple(f"SKU-{n}" for n in range(1, 201))
UNIT_PRICES_CENTS = (199, 499, 999, 1499, 2499)
MAX_ITEMS_PER_ORDER = 5
QUANTITIES = range(1, 6)
# Every (sku, quantity, unit price) an item can have: one draw picks all three, uniformly
# and independently, instead of three draws per item.
ORDER_LINES = tuple(
    (sku, quantity, price) for sku in SKUS for quantity in QUANTITIES for price in UNIT_PRICES_CENTS
)
SEED_WINDOW = datetime.timedelta(days=365)
FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Bea", "Carlos", "Chen", "Dana", "Elif", "Farah", "Grace",
    "Hugo", "Ines", "Jamal", "Kenji", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Rosa",
    "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Abara", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn",
    "Rossi", "Silva", "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zhang",
)  # fmt: skip

ORDER_FIELDS: list[peewee.Field] = [
    Order.customer,
    Order.status,
    Order.total_cents,
    Order.created_at,
    Order.updated_at,
]
ITEM_FIELDS: list[peewee.Field] = [
    OrderItem.order,
    OrderItem.sku,
    OrderItem.quantity,
    OrderItem.unit_price_cents,
]
CUSTOMER_FIELDS: list[peewee.Field] = [Customer.name, Customer.email, Customer.created_at]
EMAIL_RETRIES = 5

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SeedResult:
    customers: int
    orders: int
    items: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        rows = self.customers + self.orders + self.items
        return rows / self.seconds if self.seconds > 0 else 0.0


def _generate_orders(
    rng: random.Random, customer_ids: Sequence[int], count: int, now: datetime.datetime
) -> Iterator[tuple[tuple[Any, ...], list[tuple[str, int, int]]]]:
    """(order row, its items) pairs, drawn lazily from `rng`.

    Like a real shop's, later orders have later `created_at`: each order falls at a
    random point of its own 1/count slice of the last 365 days, so the times grow with
    the ids (and the created_at index is appended to, not scattered into).

    Written for speed (it runs once per order): draws are `random()` scaled by hand
    rather than `choice`/`randint`, which cost several Python calls each."""
    rand = rng.random
    n_customers = len(customer_ids)
    n_lines = len(ORDER_LINES)
    slice_seconds = SEED_WINDOW.total_seconds() / count
    oldest = now - SEED_WINDOW
    paid, draft, shipped = Status.PAID.value, Status.DRAFT.value, Status.SHIPPED.value
    timedelta = datetime.timedelta
    for n in range(count):
        items = [
            ORDER_LINES[int(rand() * n_lines)] for _ in range(1 + int(rand() * MAX_ITEMS_PER_ORDER))
        ]
        draw = rand()
        status = paid if draw < 0.55 else draft if draw < 0.90 else shipped
        created_at = oldest + timedelta(seconds=(n + rand()) * slice_seconds)
        total = sum(quantity * price for _, quantity, price in items)
        customer_id = customer_ids[int(rand() * n_customers)]
        yield (customer_id, status, total, created_at, created_at), items


def _insert_customers(
    conn: Connection, rng: random.Random, count: int, created_at: datetime.datetime
) -> list[int]:
    """Insert `count` customers; emails that already exist are drawn again, never fatal."""
    run_tag = f"{rng.getrandbits(32):08x}"
    # Drawn lazily, batch by batch (a list of 1.25M rows for a 10M-order seed held
    # ~300 MB); the draws happen in the same order, so --seed gives the same rows.
    pending: Iterable[tuple[str, str, datetime.datetime]] = (
        (
            f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            f"user{n + 1}.{run_tag}@example.com",
            created_at,
        )
        for n in range(count)
    )
    insert = BulkInsert(
        conn,
        Customer,
        CUSTOMER_FIELDS,
        returning=[Customer.id, Customer.email],
        ignore_conflicts=True,
    )
    ids: list[int] = []
    for _attempt in range(EMAIL_RETRIES):
        rejected: list[tuple[str, str, datetime.datetime]] = []
        for batch in chunked(pending, insert.rows_per_statement):
            got = {
                email: customer_id
                for customer_id, email in conn.retrying(functools.partial(insert.execute, batch))
            }
            ids.extend(got.values())
            rejected.extend(row for row in batch if row[1] not in got)
        if not rejected:
            return ids
        # Taken by an earlier or concurrent seed with the same --seed: draw new tags.
        pending = [
            (name, f"{email.split('@')[0]}.{secrets.token_hex(3)}@example.com", when)
            for name, email, when in rejected
        ]
    raise RuntimeError(f"could not find free emails for {len(rejected)} customers")


def _write_batch(
    batch: Sequence[tuple[tuple[Any, ...], list[tuple[str, int, int]]]],
    insert_orders: BulkInsert,
    insert_items: BulkInsert,
) -> int:
    """Insert one batch of orders with their items (inside the caller's transaction)."""
    returned = insert_orders.execute([order for order, _ in batch])
    if len(returned) != len(batch):
        raise RuntimeError(f"inserted {len(returned)} of {len(batch)} orders")
    # One INSERT allocates ids in VALUES order on every backend, and a later statement
    # gets later ids, so the sorted ids line up with the batch even when other writers
    # interleave.
    items = [
        (order_id, sku, quantity, price)
        for (order_id,), (_, order_items) in zip(returned, batch, strict=True)
        for sku, quantity, price in order_items
    ]
    insert_items.execute(items)
    return len(items)


def orders_per_transaction(conn: Connection) -> int:
    """One full-width orders statement per transaction (4,096 on SQLite, 8,192 on
    PostgreSQL): the widest power of two the bind-parameter limit allows.

    Measured at 100k orders on SQLite: 177k rows/s with 1,024 orders per transaction,
    224k with 4,096, 245k with 16,384 — fewer commits mean fewer WAL checkpoints."""
    return _insert_orders(conn).rows_per_statement


def _insert_orders(conn: Connection) -> BulkInsert:
    return BulkInsert(conn, Order, ORDER_FIELDS, returning=[Order.id])


def seed(
    conn: Connection,
    count: int,
    customers: int | None = None,
    seed_value: int | None = None,
    progress: Progress | None = None,
) -> SeedResult:
    """Add `count` orders for `customers` new customers (default ceil(count / 8))."""
    started = time.perf_counter()
    conn.check_returning()
    rng = random.Random(seed_value)
    customer_count = customers or math.ceil(count / 8)
    now = utcnow()
    # Customers exist before the oldest order they may have placed.
    customer_ids = _insert_customers(conn, rng, customer_count, now - SEED_WINDOW)
    customer_ids.sort()

    insert_orders = _insert_orders(conn)
    insert_items = BulkInsert(conn, OrderItem, ITEM_FIELDS)
    orders_done = items_done = 0
    batches = chunked(
        _generate_orders(rng, customer_ids, count, now), insert_orders.rows_per_statement
    )
    for batch in batches:
        items_written = conn.retrying(
            functools.partial(_write_batch, batch, insert_orders, insert_items)
        )
        orders_done += len(batch)
        items_done += items_written
        if progress is not None:
            progress(orders_done)
    conn.after_bulk_load()
    return SeedResult(
        customers=len(customer_ids),
        orders=orders_done,
        items=items_done,
        seconds=time.perf_counter() - started,
    )
