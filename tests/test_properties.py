"""Property tests: `list` and `summary` agree with a plain Python model of the contract.

Hypothesis draws small shops (emails over an alphabet of LIKE wildcards, the escape
character, quotes and mixed case; random active flags, statuses, archived flags,
timestamps in a two-hour window, items) and random filters, writes the shop into the
backend's database, and compares the JSON output with the same question answered in
Python. Email needles are drawn both shorter than 3 characters and 3 or longer: on
SQLite the longer ones go through the FTS5 trigram index, the shorter ones do not.

The database fixture is per test, not per example, so each example empties the tables
before arranging its shop.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import add_customer, add_order, describe, opened
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from ordercli.db import database

UTC = datetime.UTC
STATUSES = ("draft", "paid", "shipped", "cancelled")
SPENT = ("paid", "shipped")
# LIKE's wildcards, the escape characters (ordercli's "!", SQL's usual "\"), an FTS5
# phrase quote, and letters in both cases.
ALPHABET = 'aAbB%_\\.@!"'
T0 = datetime.datetime(2026, 3, 1, 10, 0, 0)
STEP = datetime.timedelta(minutes=20)
GRID = 7  # created_at is T0 + k * STEP (+ a fraction of a second) for k < GRID
FRACTIONS = (0, 250_000)  # microseconds: timestamps keep them on every backend
ZONES = (None, datetime.UTC, datetime.timezone(datetime.timedelta(hours=1)),
         datetime.timezone(-datetime.timedelta(hours=5, minutes=30)))  # fmt: skip
DEFAULT_LIMIT = 50

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    # Shrinking a failure re-arranges the database per step: skip the costly explain phase.
    phases=[phase for phase in Phase if phase is not Phase.explain],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- the shop --------------------------------------------------------------------------------


@dataclass
class Customer:
    email: str
    name: str
    is_active: bool
    id: int = 0


@dataclass
class Order:
    customer: int  # index into Shop.customers
    status: str
    is_archived: bool
    created_at: datetime.datetime  # naive UTC
    items: list[tuple[int, int]]  # (quantity, unit_price_cents)
    id: int = 0

    @property
    def total_cents(self) -> int:
        return sum(q * p for q, p in self.items)


@dataclass
class Shop:
    customers: list[Customer]
    orders: list[Order]


emails = st.text(alphabet=ALPHABET, min_size=1, max_size=8)
moments = st.builds(
    lambda k, us: T0 + k * STEP + datetime.timedelta(microseconds=us),
    st.integers(0, GRID - 1),
    st.sampled_from(FRACTIONS),
)


@st.composite
def shops(draw: Any) -> Shop:
    # Unique ignoring case: a backend may compare emails case-insensitively (MySQL).
    addresses = draw(st.lists(emails, min_size=1, max_size=5, unique_by=str.lower))
    customers = [
        Customer(email, f"Customer {n}", draw(st.booleans())) for n, email in enumerate(addresses)
    ]
    item = st.tuples(st.integers(1, 5), st.sampled_from((0, 199, 499, 999, 2499)))
    order = st.builds(
        Order,
        st.integers(0, len(customers) - 1),
        st.sampled_from(STATUSES),
        st.booleans(),
        moments,
        st.lists(item, min_size=1, max_size=3),
    )
    return Shop(customers, draw(st.lists(order, min_size=1, max_size=8)))


def _arrange(url: str, shop: Shop) -> None:
    """Empty the tables (the database outlives the example) and write the shop, in one
    transaction (one commit to flush instead of one per row)."""
    with opened(url) as conn, database.atomic():
        if conn.backend.name == "citus":
            # Citus refuses DML on a reference table (customer) after a many-connection
            # DML on a table that references it, in one transaction.
            database.execute_sql("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
        for table in ("order_event", "order_item", "orders", "customer"):
            database.execute_sql(f"DELETE FROM {table}")
        for customer in shop.customers:
            customer.id = add_customer(customer.email, customer.name, customer.is_active)
        for n, order in enumerate(shop.orders):
            order.id = add_order(
                shop.customers[order.customer].id,
                order.status,
                [(f"SKU-{n}-{i}", q, p) for i, (q, p) in enumerate(order.items)],
                created_at=order.created_at,
                is_archived=order.is_archived,
            )


# --- filters ---------------------------------------------------------------------------------


@st.composite
def needles(draw: Any, shop: Shop) -> str:
    """1 to 4 characters, both sides of the 3-character trigram threshold: a substring of
    one of the shop's emails (as is, or with its case flipped at random) or random text."""
    length = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(("substring", "substring", "flipped", "random")))
    long_enough = [c.email for c in shop.customers if len(c.email) >= length]
    if kind == "random" or not long_enough:
        return str(draw(st.text(alphabet=ALPHABET, min_size=length, max_size=length)))
    email = draw(st.sampled_from(long_enough))
    start = draw(st.integers(0, len(email) - length))
    needle = email[start : start + length]
    if kind == "flipped":
        flips = draw(st.lists(st.booleans(), min_size=length, max_size=length))
        pairs = zip(needle, flips, strict=True)
        needle = "".join(ch.swapcase() if flip else ch for ch, flip in pairs)
    return needle


def _render(moment: datetime.datetime, zone: datetime.tzinfo | None) -> str:
    """A naive UTC moment as --since/--until text, in some zone (same instant)."""
    if zone is None:
        return moment.isoformat()
    return moment.replace(tzinfo=UTC).astimezone(zone).isoformat()


@dataclass
class Window:
    since: datetime.datetime | None
    until: datetime.datetime | None
    args: list[str]

    def holds(self, moment: datetime.datetime) -> bool:
        return (self.since is None or moment >= self.since) and (
            self.until is None or moment < self.until
        )


@st.composite
def windows(draw: Any) -> Window:
    """Bounds on the same grid as the orders, so inclusive/exclusive edges get hit."""
    bound = st.one_of(
        st.none(),
        st.none(),
        st.builds(
            lambda k, us: T0 + k * STEP + datetime.timedelta(microseconds=us),
            st.integers(-1, GRID),
            st.sampled_from(FRACTIONS),
        ),
    )
    since, until = draw(bound), draw(bound)
    if since is not None and until is not None:
        if since == until:
            until = None
        elif since > until:
            since, until = until, since
    args: list[str] = []
    for option, value in (("--since", since), ("--until", until)):
        if value is not None:
            if value.time() == datetime.time() and draw(st.booleans()):
                text = value.date().isoformat()  # a plain date is midnight UTC
            else:
                text = _render(value, draw(st.sampled_from(ZONES)))
            args += [option, text]
    return Window(since, until, args)


def _limit_args(limit: int | None) -> list[str]:
    return [] if limit is None else ["--limit", str(limit)]


def _limited(rows: list[Any], limit: int | None) -> list[Any]:
    limit = DEFAULT_LIMIT if limit is None else limit
    return rows[:limit] if limit else rows


def _json(result: Any) -> Any:
    assert result.exit_code == 0, describe(result)
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def _utc(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    assert text.endswith(("Z", "+00:00")), text
    return datetime.datetime.fromisoformat(text)


# --- list ------------------------------------------------------------------------------------


@dataclass
class ListQuery:
    statuses: list[str]
    email: str | None
    customer: int | None  # index into Shop.customers
    window: Window
    include_archived: bool
    limit: int | None

    def args(self, shop: Shop) -> list[str]:
        args = ["list", "--format", "json", *self.window.args, *_limit_args(self.limit)]
        for status in self.statuses:
            args += ["--status", status]
        if self.email is not None:
            args += ["--email", self.email]
        if self.customer is not None:
            args += ["--customer", str(shop.customers[self.customer].id)]
        if self.include_archived:
            args.append("--include-archived")
        return args

    def expected(self, shop: Shop) -> list[dict[str, Any]]:
        rows = []
        for order in shop.orders:
            customer = shop.customers[order.customer]
            if self.statuses and order.status not in self.statuses:
                continue
            if self.email is not None and self.email.lower() not in customer.email.lower():
                continue
            if self.customer is not None and order.customer != self.customer:
                continue
            if not self.window.holds(order.created_at):
                continue
            if order.is_archived and not self.include_archived:
                continue
            rows.append(
                {
                    "id": order.id,
                    "customer_id": customer.id,
                    "email": customer.email,
                    "status": order.status,
                    "total_cents": order.total_cents,
                    "item_count": len(order.items),
                    "is_archived": order.is_archived,
                    "created_at": order.created_at.replace(tzinfo=UTC),
                }
            )
        rows.sort(key=lambda r: r["id"], reverse=True)
        return _limited(rows, self.limit)


@st.composite
def list_queries(draw: Any, shop: Shop) -> ListQuery:
    return ListQuery(
        statuses=draw(
            st.one_of(st.just([]), st.lists(st.sampled_from(STATUSES), max_size=3, unique=True))
        ),
        email=draw(st.one_of(st.none(), needles(shop), needles(shop), needles(shop))),
        customer=draw(
            st.one_of(st.none(), st.none(), st.none(), st.integers(0, len(shop.customers) - 1))
        ),
        window=draw(windows()),
        include_archived=draw(st.booleans()),
        limit=draw(st.one_of(st.none(), st.integers(0, 6))),
    )


@PROPERTY_SETTINGS
@given(shop=shops(), data=st.data())
def test_list_json_is_the_filtered_orders_newest_first(db_url, cli, shop, data):
    _arrange(db_url, shop)
    for _ in range(4):
        query = data.draw(list_queries(shop))
        args = query.args(shop)
        rows = _json(cli(db_url, *args))
        got = [{**row, "created_at": _utc(row["created_at"])} for row in rows]
        expected = query.expected(shop)
        assert got == expected, args
        if query.email is not None:
            event(f"needle of {len(query.email)} chars, {'some' if expected else 'no'} rows")


# --- summary ---------------------------------------------------------------------------------


def _expected_summary(shop: Shop, window: Window, limit: int | None) -> list[dict[str, Any]]:
    rows = []
    for index, customer in enumerate(shop.customers):
        if not customer.is_active:
            continue
        counted = [
            o
            for o in shop.orders
            if o.customer == index and not o.is_archived and window.holds(o.created_at)
        ]
        paid = [o for o in counted if o.status in SPENT]
        rows.append(
            {
                "customer_id": customer.id,
                "email": customer.email,
                "name": customer.name,
                "orders": len(counted),
                "paid_orders": len(paid),
                "spent_cents": sum(o.total_cents for o in paid),
                "last_order_at": max(o.created_at for o in counted).replace(tzinfo=UTC)
                if counted
                else None,
            }
        )
    rows.sort(key=lambda r: (-r["spent_cents"], r["customer_id"]))
    return _limited(rows, limit)


@PROPERTY_SETTINGS
@given(shop=shops(), data=st.data())
def test_summary_json_is_the_active_customers_by_money_spent(db_url, cli, shop, data):
    _arrange(db_url, shop)
    for _ in range(3):
        window = data.draw(windows())
        limit = data.draw(st.one_of(st.none(), st.integers(0, 4)))
        args = ["summary", "--format", "json", *window.args, *_limit_args(limit)]
        rows = _json(cli(db_url, *args))
        got = [{**row, "last_order_at": _utc(row["last_order_at"])} for row in rows]
        assert got == _expected_summary(shop, window, limit), args


# --- the model itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("needle", "email", "matches"),
    [
        ("%", "a%b@x", True),
        ("%", "ab@x", False),
        ("a_b", "AXB@x", False),
        ("A_B", "xa_b@x", True),
        ("\\", "a\\b", True),
        ("!", "ab", False),
    ],
)
def test_the_model_matches_emails_literally_and_ignoring_ascii_case(needle, email, matches):
    """Guard the Python model: a wildcard-matching model would make the properties vacuous."""
    query = ListQuery([], needle, None, Window(None, None, []), False, None)
    shop = Shop([Customer(email, "c", True, 1)], [Order(0, "paid", False, T0, [(1, 1)], 1)])
    assert bool(query.expected(shop)) is matches
