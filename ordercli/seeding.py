"""Fill a database with realistic customers, orders and items, in batches.

Rows are generated lazily, one batch at a time, so memory stays flat whatever
`count` is. Each order batch is one transaction holding the orders together with
their items and correct totals: an interrupted seed leaves only whole orders.
"""

from __future__ import annotations

import datetime
import math
import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from peewee import chunked

from ordercli.db import backend, database, write_transaction
from ordercli.models import Customer, Order, OrderItem, Status, utcnow

SKUS = tuple(f"SKU-{n}" for n in range(1, 201))
UNIT_PRICES_CENTS = (199, 499, 999, 1499, 2499)
MAX_ITEMS_PER_ORDER = 5
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

ORDER_FIELDS = [Order.customer, Order.status, Order.total_cents, Order.created_at, Order.updated_at]
ITEM_FIELDS = [OrderItem.order, OrderItem.sku, OrderItem.quantity, OrderItem.unit_price_cents]
CUSTOMER_FIELDS = [Customer.name, Customer.email, Customer.created_at]
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


@dataclass(frozen=True)
class _NewOrder:
    customer_id: int
    status: str
    created_at: datetime.datetime
    items: list[tuple[str, int, int]]  # sku, quantity, unit price

    @property
    def total_cents(self) -> int:
        return sum(quantity * price for _, quantity, price in self.items)


def _status(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.55:
        return Status.PAID.value
    if draw < 0.90:
        return Status.DRAFT.value
    return Status.SHIPPED.value


def _generate_orders(
    rng: random.Random, customer_ids: list[int], count: int, now: datetime.datetime
) -> Iterator[_NewOrder]:
    window_seconds = SEED_WINDOW.total_seconds()
    for _ in range(count):
        yield _NewOrder(
            customer_id=rng.choice(customer_ids),
            status=_status(rng),
            created_at=now - datetime.timedelta(seconds=rng.random() * window_seconds),
            items=[
                (rng.choice(SKUS), rng.randint(1, 5), rng.choice(UNIT_PRICES_CENTS))
                for _ in range(rng.randint(1, MAX_ITEMS_PER_ORDER))
            ],
        )


def _insert_customers(rng: random.Random, count: int, created_at: datetime.datetime) -> list[int]:
    """Insert `count` customers; emails that already exist are drawn again, never fatal."""
    run_tag = f"{rng.getrandbits(32):08x}"
    names = [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(count)]
    pending = {f"user{n + 1}.{run_tag}@example.com": names[n] for n in range(count)}
    ids: list[int] = []
    batch_size = backend().max_bind_params(database.obj) // len(CUSTOMER_FIELDS)
    for _attempt in range(EMAIL_RETRIES):
        rejected: dict[str, str] = {}
        for batch in chunked(list(pending.items()), batch_size):
            with write_transaction():
                inserted = (
                    Customer.insert_many(
                        [(name, email, created_at) for email, name in batch], fields=CUSTOMER_FIELDS
                    )
                    .on_conflict_ignore()
                    .returning(Customer.id, Customer.email)
                    .tuples()
                    .execute()
                )
                got = {email: customer_id for customer_id, email in inserted}
            ids.extend(got.values())
            rejected.update((email, name) for email, name in batch if email not in got)
        if not rejected:
            return ids
        # Taken by an earlier or concurrent seed with the same --seed: draw new tags.
        pending = {
            f"{email.split('@')[0]}.{secrets.token_hex(3)}@example.com": name
            for email, name in rejected.items()
        }
    raise RuntimeError(f"could not find free emails for {len(pending)} customers")


def seed(
    count: int,
    customers: int | None = None,
    seed_value: int | None = None,
    progress: Progress | None = None,
) -> SeedResult:
    """Add `count` orders for `customers` new customers (default ceil(count / 8))."""
    started = time.perf_counter()
    rng = random.Random(seed_value)
    customer_count = customers or math.ceil(count / 8)
    now = utcnow()
    # Customers exist before the oldest order they may have placed.
    customer_ids = _insert_customers(rng, customer_count, now - SEED_WINDOW)
    customer_ids.sort()

    # The items statement is the widest: size batches so it fits the bind budget.
    budget = backend().max_bind_params(database.obj)
    orders_per_batch = max(1, budget // (MAX_ITEMS_PER_ORDER * len(ITEM_FIELDS)))
    orders_done = items_done = 0
    for batch in chunked(_generate_orders(rng, customer_ids, count, now), orders_per_batch):
        with write_transaction():
            rows = [
                (o.customer_id, o.status, o.total_cents, o.created_at, o.created_at) for o in batch
            ]
            returned = (
                Order.insert_many(rows, fields=ORDER_FIELDS).returning(Order.id).tuples().execute()
            )
            # One INSERT allocates ids in VALUES order on every backend, so the sorted
            # ids line up with the batch even when other writers interleave.
            order_ids = sorted(row[0] for row in returned)
            if len(order_ids) != len(batch):
                raise RuntimeError(f"inserted {len(order_ids)} of {len(batch)} orders")
            items = [
                (order_id, sku, quantity, price)
                for order_id, order in zip(order_ids, batch, strict=True)
                for sku, quantity, price in order.items
            ]
            OrderItem.insert_many(items, fields=ITEM_FIELDS).as_rowcount().execute()
        orders_done += len(batch)
        items_done += len(items)
        if progress is not None:
            progress(orders_done)
    return SeedResult(
        customers=len(customer_ids),
        orders=orders_done,
        items=items_done,
        seconds=time.perf_counter() - started,
    )
