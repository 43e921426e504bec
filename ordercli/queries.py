"""Read-side queries. Each returns plain data; rendering lives in render.py.

`list_orders`, `summarize_customers`, `list_customers` and `revenue` are one SELECT
each, whatever the data size: joins, counts and aggregates are computed by the database.
Each takes the open `Connection` first. Where engines want different query shapes, the
shape is chosen here, from what the engine offers (`conn.has(Feature...)`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

import peewee
from peewee import JOIN, SQL, Case, NodeList, fn

from ordercli.backends import Feature
from ordercli.db import Connection
from ordercli.domain import Period
from ordercli.errors import NotFound
from ordercli.models import SPENT, Customer, Order, OrderEvent, OrderItem, Status
from ordercli.timeutil import as_utc, utcnow

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


def email_contains(conn: Connection, needle: str) -> peewee.Node:
    """Case-insensitive substring match on the customer's email, wildcards literal.

    LOWER() on both sides instead of ILIKE or the column's collation, so it means the
    same on every backend (ASCII folding at least; SQLite's LOWER is ASCII-only)."""
    like = text_contains(Customer.email, needle)
    candidates = _email_candidates(needle) if conn.has(Feature.EMAIL_TRIGRAMS) else None
    return like if candidates is None else (Customer.id.in_(candidates) & like)


def _email_candidates(needle: str) -> peewee.Node | None:
    """Ids of the customers whose email may contain `needle`, from the trigram index.

    The FTS5 trigram table (migration 2) answers a quoted phrase of 3+ characters from
    its index; shorter needles have no trigram to look up. The exact LIKE is applied on
    top, so this may over-match but never miss."""
    if len(needle) < 3:
        return None
    phrase = '"' + needle.replace('"', '""') + '"'
    return NodeList(
        (SQL("SELECT rowid FROM customer_email_fts WHERE customer_email_fts MATCH ?", [phrase]),),
        parens=True,
    )


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


def _orders_query(join_type: str = JOIN.INNER, order_id: int | None = None) -> peewee.Select:
    items_of_order = OrderItem.order == Order.id
    if order_id is not None:
        # The same rows; said twice so that Citus sees the subquery is on one shard too
        # (with only the correlation it sent `show` to every shard).
        items_of_order &= OrderItem.order == order_id
    item_count = (OrderItem.select(fn.COUNT(OrderItem.id)).where(items_of_order)).alias(
        "item_count"
    )
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
    conn: Connection,
    statuses: Sequence[Status] = (),
    email: str | None = None,
    customer_id: int | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    limit: int = 50,
    include_archived: bool = False,
) -> Iterator[OrderRow]:
    """Orders newest first, filtered; `limit=0` streams them all."""
    query = list_query(conn, statuses, email, customer_id, since, until, limit, include_archived)
    for row in conn.iterate(query, stream=not limit):
        yield _order_row(row)


def list_query(
    conn: Connection,
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
    # Without one MariaDB starts from `customer` (the covering summary index makes the
    # join look cheap) and sorts every order to find the newest 50: 1.1 s at 200k orders,
    # linear. STRAIGHT_JOIN keeps orders first: a backward walk of the primary key.
    join_type = JOIN.INNER
    if not email and conn.has(Feature.STRAIGHT_JOIN):
        join_type = "STRAIGHT_JOIN"
    query = _orders_query(join_type).order_by(Order.id.desc())
    if statuses:
        query = query.where(Order.status.in_([s.value for s in statuses]))
    if email:
        query = query.where(email_contains(conn, email))
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
    conn: Connection,
    limit: int = 50,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> list[SummaryRow]:
    """Top active customers by money spent, in one SELECT with one GROUP BY."""
    rows = conn.iterate(summary_query(conn, limit, since, until))
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
    conn: Connection,
    limit: int = 50,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> peewee.Select:
    """The one SELECT with one GROUP BY behind `summary`."""
    if conn.has(Feature.SHARDED_ORDERS):
        return _summary_query_grouping_orders(limit, since, until)
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


def _summary_query_grouping_orders(
    limit: int, since: datetime.datetime | None, until: datetime.datetime | None
) -> peewee.Select:
    """`summary` as orders grouped by customer first, then joined to the customers.

    The same rows as summary_query's join-then-group; for engines that can push the
    GROUP BY down to where the orders are but not a join whose outer side is elsewhere
    (Citus: customer is a reference table, orders are sharded; the plain LEFT JOIN made
    the coordinator pull every order)."""
    is_spent = Order.status.in_([s.value for s in SPENT])
    per_customer = (
        Order.select(
            Order.customer.alias("customer_id"),
            fn.COUNT(Order.id).alias("orders"),
            fn.SUM(Case(None, [(is_spent, 1)], 0)).alias("paid_orders"),
            fn.SUM(Case(None, [(is_spent, Order.total_cents)], 0)).alias("spent_cents"),
            fn.MAX(Order.created_at).alias("last_order_at"),
        )
        .where(
            Order.is_archived == False,  # noqa: E712
            *_window(Order.created_at, since, until),
        )
        .group_by(Order.customer)
        .alias("per_customer")
    )
    query = (
        Customer.select(
            Customer.id.alias("customer_id"),
            Customer.email,
            Customer.name,
            fn.COALESCE(per_customer.c.orders, 0).alias("orders"),
            fn.COALESCE(per_customer.c.paid_orders, 0).alias("paid_orders"),
            fn.COALESCE(per_customer.c.spent_cents, 0).alias("spent_cents"),
            per_customer.c.last_order_at.alias("last_order_at"),
        )
        .join(per_customer, JOIN.LEFT_OUTER, on=(per_customer.c.customer_id == Customer.id))
        .where(Customer.is_active == True)  # noqa: E712
        .order_by(SQL("spent_cents").desc(), Customer.id.asc())
    )
    if limit:
        query = query.limit(limit)
    return query


def show_order(conn: Connection, order_id: int) -> dict[str, Any]:
    """One order with its customer, items and status history (three SELECTs)."""
    row = (
        _orders_query(order_id=order_id)
        .select_extend(
            Order.updated_at,
            Customer.name,
            Customer.is_active,
            Customer.created_at.alias("customer_created_at"),
        )
        .where(Order.id == order_id)
        .first(conn.database)
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
        for sku, quantity, price in cast(Iterable[tuple[str, int, int]], conn.execute(items))
    ]
    order["events"] = [
        {**event, "created_at": as_utc(event["created_at"])}
        for event in cast(Iterable[dict[str, Any]], conn.execute(events))
    ]
    return order


# --- customers -------------------------------------------------------------------------------


class CustomerRow(NamedTuple):
    """One customer as `customers` reports it (the contract's JSON fields, in order)."""

    id: int
    name: str
    email: str
    is_active: bool
    created_at: datetime.datetime | None
    orders: int
    spent_cents: int
    last_order_at: datetime.datetime | None


CUSTOMER_FIELDS = CustomerRow._fields


def text_contains(column: peewee.Node, needle: str) -> peewee.Node:
    """Case-insensitive substring of `column`, wildcards literal (as `--email` matches)."""
    pattern = f"%{escape_like(needle.lower())}%"
    return NodeList((fn.LOWER(column), SQL("LIKE"), pattern, SQL(f"ESCAPE '{LIKE_ESCAPE}'")))


def customers_query(
    conn: Connection,
    email: str | None = None,
    name: str | None = None,
    include_inactive: bool = False,
    limit: int = 50,
) -> peewee.Select:
    """The one SELECT behind `customers`: the chosen customers (newest first, limited in
    a derived table, so only their orders are read) left-joined to their non-archived
    orders and grouped."""
    chosen = Customer.select(
        Customer.id, Customer.name, Customer.email, Customer.is_active, Customer.created_at
    )
    if not include_inactive:
        chosen = chosen.where(Customer.is_active == True)  # noqa: E712
    if email:
        chosen = chosen.where(email_contains(conn, email))
    if name:
        chosen = chosen.where(text_contains(Customer.name, name))
    chosen = chosen.order_by(Customer.id.desc())
    if limit:
        chosen = chosen.limit(limit)
    c = chosen.alias("c")
    is_spent = Order.status.in_([s.value for s in SPENT])
    columns = [c.c.id, c.c.name, c.c.email, c.c.is_active, c.c.created_at]
    return (
        peewee.Select(
            [c],
            [
                *columns,
                fn.COUNT(Order.customer).alias("orders"),
                fn.COALESCE(fn.SUM(Case(None, [(is_spent, Order.total_cents)], 0)), 0).alias(
                    "spent_cents"
                ),
                fn.MAX(Order.created_at).alias("last_order_at"),
            ],
        )
        .join(
            Order,
            JOIN.LEFT_OUTER,
            on=(Order.customer == c.c.id) & (Order.is_archived == False),  # noqa: E712
        )
        .group_by(*columns)
        .order_by(c.c.id.desc())
    )


def list_customers(
    conn: Connection,
    email: str | None = None,
    name: str | None = None,
    include_inactive: bool = False,
    limit: int = 50,
) -> Iterator[CustomerRow]:
    """Customers newest first with their orders, spent and last order; `limit=0` streams."""
    query = customers_query(conn, email, name, include_inactive, limit)
    for row in conn.iterate(query, stream=not limit):
        customer_id, name_, email_, is_active, created_at, orders, spent, last_order_at = row
        yield CustomerRow(
            customer_id,
            name_,
            email_,
            bool(is_active),
            as_utc(created_at),
            int(orders),
            int(spent),
            as_utc(last_order_at),
        )


# --- revenue ---------------------------------------------------------------------------------


class RevenueRow(NamedTuple):
    """One period as `revenue` reports it (the contract's JSON fields, in order)."""

    period: datetime.date
    orders: int
    revenue_cents: int
    customers: int


REVENUE_FIELDS = RevenueRow._fields


def revenue_query(
    conn: Connection,
    period: Period,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> peewee.Select:
    """The one SELECT with one GROUP BY behind `revenue`: the engine truncates the dates."""
    start = peewee.Alias(conn.backend.period_start(period.value, Order.created_at), "period_start")
    query = Order.select(
        start,
        fn.COUNT(Order.id).alias("orders"),
        fn.SUM(Order.total_cents).alias("revenue_cents"),
        fn.COUNT(NodeList((SQL("DISTINCT"), Order.customer))).alias("customers"),
    ).where(
        Order.status.in_([s.value for s in SPENT]),
        Order.is_archived == False,  # noqa: E712
        *_window(Order.created_at, since, until),
    )
    # By position: the expression may carry parameters, which would not match a
    # repeated GROUP BY expression once they are numbered ($1 vs $4).
    return query.group_by(SQL("1")).order_by(SQL("1")).tuples()


_FIRST_INSTANT = datetime.datetime.min + datetime.timedelta(microseconds=1)


def period_of(moment: datetime.date, period: Period) -> datetime.date:
    """The first day of the period holding `moment` (a date, or a naive UTC datetime)."""
    day = moment.date() if isinstance(moment, datetime.datetime) else moment
    if period is Period.week:
        return day - datetime.timedelta(days=day.weekday())
    if period is Period.month:
        return day.replace(day=1)
    return day


def next_period(start: datetime.date, period: Period) -> datetime.date:
    if period is Period.day:
        return start + datetime.timedelta(days=1)
    if period is Period.week:
        return start + datetime.timedelta(days=7)
    return (start + datetime.timedelta(days=32)).replace(day=1)


def _as_date(value: Any) -> datetime.date:
    """A period start as the engine returned it (date, datetime or text) as a date."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value)[:10])


def revenue(
    conn: Connection,
    period: Period,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    now: datetime.datetime | None = None,
) -> list[RevenueRow]:
    """Money taken per period, oldest first, every period of the range present (zeros
    where nothing was sold). The range runs from the period of `since` (else the first
    period with a counted order) to the period of the last instant before `until` (else
    the current period, or a later one holding an order)."""
    query = revenue_query(conn, period, since, until)
    found = {
        _as_date(start): RevenueRow(_as_date(start), int(orders), int(cents), int(customers))
        for start, orders, cents, customers in conn.iterate(query)
    }
    if since is not None:
        first = period_of(since, period)
    elif found:
        first = min(found)
    else:
        return []
    if until is not None:
        # the last instant before `until` (which is later than `since`, and not year 1's
        # first instant: parse_utc refuses instants before it)
        last = period_of(max(until, _FIRST_INSTANT) - datetime.timedelta(microseconds=1), period)
    else:
        last = period_of(now or utcnow(), period)
        if found:
            last = max(last, max(found))  # an order dated in the future is still shown
    rows = []
    current = first
    while current <= last:
        rows.append(found.get(current) or RevenueRow(current, 0, 0, 0))
        try:
            current = next_period(current, period)
        except OverflowError:  # the period of 9999-12-31 was the last one
            break
    return rows
