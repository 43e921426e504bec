"""Read-side queries. Each returns plain data; rendering lives in render.py.

`list_orders` and `summarize_customers` are one SELECT each, whatever the data size:
the join, the item count and the aggregates are computed by the database.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

import peewee
from peewee import JOIN, SQL, Case, NodeList, fn

from ordercli.db import backend, database
from ordercli.errors import NotFound
from ordercli.models import SPENT, Customer, Order, OrderEvent, OrderItem, Status
from ordercli.timeutil import as_utc

LIKE_ESCAPE = "!"


class OrderRow(NamedTuple):
    """One order as `list` reports it (the contract's JSON fields, in order)."""

    id: int
    customer_id: int
    email: str
    status: str
    total_cents: int
    item_count: int
    is_archived: bool
    created_at: datetime.datetime | None


class SummaryRow(NamedTuple):
    """One customer as `summary` reports it."""

    customer_id: int
    email: str
    name: str
    orders: int
    paid_orders: int
    spent_cents: int
    last_order_at: datetime.datetime | None


ORDER_FIELDS = OrderRow._fields
SUMMARY_FIELDS = SummaryRow._fields


def escape_like(text: str) -> str:
    """Make `%`, `_` (and the escape character itself) match literally."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def email_contains(needle: str) -> peewee.Node:
    """Case-insensitive substring match on the customer's email, wildcards literal.

    LOWER() on both sides instead of ILIKE or the column's collation, so it means the
    same on every backend (ASCII folding at least; SQLite's LOWER is ASCII-only)."""
    pattern = f"%{escape_like(needle.lower())}%"
    like = NodeList(
        (fn.LOWER(Customer.email), SQL("LIKE"), pattern, SQL(f"ESCAPE '{LIKE_ESCAPE}'"))
    )
    candidates = backend().email_candidates(needle)
    return like if candidates is None else (Customer.id.in_(candidates) & like)


def _window(
    field: peewee.Field, since: datetime.datetime | None, until: datetime.datetime | None
) -> list[peewee.Expression]:
    conditions = []
    if since is not None:
        conditions.append(field >= since)
    if until is not None:
        conditions.append(field < until)
    return conditions


def _order_row(row: Sequence[Any]) -> OrderRow:
    """An order as the contract shapes it, from a raw row in ORDER_FIELDS order."""
    order_id, customer_id, email, status, total, item_count, archived, created_at = row[:8]
    return OrderRow(
        order_id,
        customer_id,
        email,
        status,
        int(total),
        int(item_count),
        bool(archived),
        as_utc(created_at),
    )


def _orders_query(join_type: str = JOIN.INNER) -> peewee.Select:
    item_count = (
        OrderItem.select(fn.COUNT(OrderItem.id)).where(OrderItem.order == Order.id)
    ).alias("item_count")
    return (
        Order.select(
            Order.id,
            Order.customer.alias("customer_id"),
            Customer.email,
            Order.status,
            Order.total_cents,
            item_count,
            Order.is_archived,
            Order.created_at,
        )
        .join(Customer, join_type, on=(Order.customer == Customer.id))
        .tuples()
    )


def list_orders(
    statuses: Sequence[Status] = (),
    email: str | None = None,
    customer_id: int | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    limit: int = 50,
    include_archived: bool = False,
) -> Iterator[OrderRow]:
    """Orders newest first, filtered; `limit=0` streams them all."""
    query = list_query(statuses, email, customer_id, since, until, limit, include_archived)
    for row in backend().iterate(database.obj, query, stream=not limit):
        yield _order_row(row)


def list_query(
    statuses: Sequence[Status] = (),
    email: str | None = None,
    customer_id: int | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    limit: int = 50,
    include_archived: bool = False,
) -> peewee.Select:
    """The one SELECT behind `list` (the benchmark runs its SQL through the raw driver)."""
    # With an email filter the planner should be free to start from the matching customers.
    join_type = JOIN.INNER if email else backend().newest_orders_join
    query = _orders_query(join_type).order_by(Order.id.desc())
    if statuses:
        query = query.where(Order.status.in_([s.value for s in statuses]))
    if email:
        query = query.where(email_contains(email))
    if customer_id is not None:
        query = query.where(Order.customer == customer_id)
    for condition in _window(Order.created_at, since, until):
        query = query.where(condition)
    if not include_archived:
        query = query.where(Order.is_archived == False)  # noqa: E712 (SQL, not Python)
    if limit:
        query = query.limit(limit)
    return query


def summarize_customers(
    limit: int = 50,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> list[SummaryRow]:
    """Top active customers by money spent, in one SELECT with one GROUP BY."""
    rows = backend().iterate(database.obj, summary_query(limit, since, until), stream=False)
    return [
        SummaryRow(
            customer_id,
            email,
            name,
            int(orders),
            int(paid_orders),
            int(spent),
            as_utc(last_order_at),
        )
        for customer_id, email, name, orders, paid_orders, spent, last_order_at in rows
    ]


def summary_query(
    limit: int = 50,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> peewee.Select:
    """The one SELECT with one GROUP BY behind `summary`."""
    is_spent = Order.status.in_([s.value for s in SPENT])
    joined = [
        Order.customer == Customer.id,
        Order.is_archived == False,  # noqa: E712
        *_window(Order.created_at, since, until),
    ]
    on = joined[0]
    for condition in joined[1:]:
        on &= condition
    spent = fn.COALESCE(fn.SUM(Case(None, [(is_spent, Order.total_cents)], 0)), 0)
    query = (
        Customer.select(
            Customer.id.alias("customer_id"),
            Customer.email,
            Customer.name,
            # customer_id, not id: every column summary reads is in the covering index.
            fn.COUNT(Order.customer).alias("orders"),
            fn.COALESCE(fn.SUM(Case(None, [(is_spent, 1)], 0)), 0).alias("paid_orders"),
            spent.alias("spent_cents"),
            fn.MAX(Order.created_at).alias("last_order_at"),
        )
        .join(Order, JOIN.LEFT_OUTER, on=on)
        .where(Customer.is_active == True)  # noqa: E712
        .group_by(Customer.id, Customer.email, Customer.name)
        .order_by(SQL("spent_cents").desc(), Customer.id.asc())
    )
    if limit:
        query = query.limit(limit)
    return query


def show_order(order_id: int) -> dict[str, Any]:
    """One order with its customer, items and status history (three SELECTs)."""
    row = (
        _orders_query()
        .select_extend(
            Order.updated_at,
            Customer.name,
            Customer.is_active,
            Customer.created_at.alias("customer_created_at"),
        )
        .where(Order.id == order_id)
        .first()
    )
    if row is None:
        raise NotFound(f"no order with id {order_id}")
    items = (
        OrderItem.select(OrderItem.sku, OrderItem.quantity, OrderItem.unit_price_cents)
        .where(OrderItem.order == order_id)
        .order_by(OrderItem.id)
        .tuples()
    )
    events = (
        OrderEvent.select(
            OrderEvent.id,
            OrderEvent.from_status,
            OrderEvent.to_status,
            OrderEvent.reason,
            OrderEvent.actor,
            OrderEvent.created_at,
        )
        .where(OrderEvent.order == order_id)
        .order_by(OrderEvent.id)
        .dicts()
    )
    order = _order_row(row)._asdict()
    updated_at, name, is_active, customer_created_at = row[8:]
    order["updated_at"] = as_utc(updated_at)
    order["customer"] = {
        "id": order["customer_id"],
        "name": name,
        "email": order["email"],
        "is_active": bool(is_active),
        "created_at": as_utc(customer_created_at),
    }
    order["items"] = [
        {
            "sku": sku,
            "quantity": quantity,
            "unit_price_cents": price,
            "line_total_cents": quantity * price,
        }
        for sku, quantity, price in cast(Iterable[tuple[str, int, int]], items)
    ]
    order["events"] = [
        {**event, "created_at": as_utc(event["created_at"])}
        for event in cast(Iterable[dict[str, Any]], events)
    ]
    return order
