"""Property tests for pay, ship, cancel, customers and revenue against a Python model.

The shops and filters are test_properties' (emails over LIKE wildcards and escape
characters, random active/archived flags, statuses, items); revenue spreads the orders
over some ten weeks so that days, ISO weeks and months all group several of them.
Status moves are random sequences of pay/ship/cancel (sometimes --dry-run, sometimes
with an unknown id) checked against the contract's rule table, written out here.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Any

from helpers import describe, opened
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties import (
    PROPERTY_SETTINGS,
    UTC,
    ZONES,
    Shop,
    Window,
    _arrange,
    _json,
    _limit_args,
    _limited,
    _render,
    _utc,
    needles,
    shops,
)

from ordercli.db import database

FEWER = settings(PROPERTY_SETTINGS, max_examples=30)
SPENT = ("paid", "shipped")
# The contract's moves, restated here rather than imported: command -> (sources, target)
MOVES = {
    "pay": ({"draft"}, "paid"),
    "ship": ({"paid"}, "shipped"),
    "cancel": ({"draft", "paid"}, "cancelled"),
}


# --- customers -------------------------------------------------------------------------------


def _expected_customers(
    shop: Shop, email: str | None, name: str | None, include_inactive: bool, limit: int | None
) -> list[dict[str, Any]]:
    rows = []
    for index, customer in enumerate(shop.customers):
        if not include_inactive and not customer.is_active:
            continue
        if email is not None and email.lower() not in customer.email.lower():
            continue
        if name is not None and name.lower() not in customer.name.lower():
            continue
        mine = [o for o in shop.orders if o.customer == index and not o.is_archived]
        rows.append(
            {
                "id": customer.id,
                "name": customer.name,
                "email": customer.email,
                "is_active": customer.is_active,
                "orders": len(mine),
                "spent_cents": sum(o.total_cents for o in mine if o.status in SPENT),
                "last_order_at": max(o.created_at for o in mine).replace(tzinfo=UTC)
                if mine
                else None,
            }
        )
    rows.sort(key=lambda r: r["id"], reverse=True)
    return _limited(rows, limit)


@FEWER
@given(shop=shops(), data=st.data())
def test_customers_json_is_the_filtered_customers_with_their_figures(db_url, cli, shop, data):
    _arrange(db_url, shop)
    for _ in range(4):
        email = data.draw(st.one_of(st.none(), needles(shop)))
        name = data.draw(st.one_of(st.none(), st.sampled_from(["customer", "R 1", "%", "_", "0"])))
        include_inactive = data.draw(st.booleans())
        limit = data.draw(st.one_of(st.none(), st.integers(0, 4)))
        args = ["customers", "--format", "json", *_limit_args(limit)]
        if email is not None:
            args += ["--email", email]
        if name is not None:
            args += ["--name", name]
        if include_inactive:
            args.append("--include-inactive")
        rows = _json(cli(db_url, *args))
        got = []
        for row in rows:
            assert _utc(row.pop("created_at")) is not None
            got.append({**row, "last_order_at": _utc(row["last_order_at"])})
        assert got == _expected_customers(shop, email, name, include_inactive, limit), args


# --- revenue ---------------------------------------------------------------------------------


def _start(moment: datetime.datetime, by: str) -> datetime.date:
    day = moment.date()
    if by == "day":
        return day
    if by == "week":
        return datetime.date.fromisocalendar(*day.isocalendar()[:2], 1)
    return day.replace(day=1)


def _expected_revenue(shop: Shop, by: str, window: Window) -> list[dict[str, Any]]:
    assert window.until is not None  # the range then ends there, not today
    sold: dict[datetime.date, list[Any]] = defaultdict(list)
    for order in shop.orders:
        if order.status in SPENT and not order.is_archived and window.holds(order.created_at):
            sold[_start(order.created_at, by)].append(order)
    if window.since is not None:
        first = _start(window.since, by)
    elif sold:
        first = min(sold)
    else:
        return []
    last = _start(window.until - datetime.timedelta(microseconds=1), by)
    rows = []
    day = first
    while day <= last:  # walk day by day: independent of how periods are stepped
        if _start(datetime.datetime.combine(day, datetime.time()), by) == day:
            orders = sold.get(day, [])
            rows.append(
                {
                    "period": day.isoformat(),
                    "orders": len(orders),
                    "revenue_cents": sum(o.total_cents for o in orders),
                    "customers": len({o.customer for o in orders}),
                }
            )
        day += datetime.timedelta(days=1)
    return rows


BASE = datetime.datetime(2026, 1, 26, 0, 0, 0)  # a Monday, late in a month
SPAN_HOURS = 24 * 70


@st.composite
def spread_shops(draw: Any) -> Shop:
    shop = draw(shops())
    for order in shop.orders:
        hours = draw(st.integers(0, SPAN_HOURS))
        order.created_at = BASE + datetime.timedelta(
            hours=hours, microseconds=draw(st.sampled_from((0, 999_999)))
        )
    return shop


@st.composite
def bounded_windows(draw: Any) -> Window:
    """--until always given (else the range would run to today); --since sometimes."""
    moment = st.builds(
        lambda h: BASE + datetime.timedelta(hours=h), st.integers(-48, SPAN_HOURS + 48)
    )
    until = draw(moment)
    since = draw(st.one_of(st.none(), moment.filter(lambda m: m < until)))
    args = ["--until", _render(until, draw(st.sampled_from(ZONES)))]
    if since is not None:
        args += ["--since", _render(since, draw(st.sampled_from(ZONES)))]
    return Window(since, until, args)


@FEWER
@given(shop=spread_shops(), data=st.data())
def test_revenue_json_is_the_money_per_period_with_zeros(db_url, cli, shop, data):
    _arrange(db_url, shop)
    for _ in range(4):
        by = data.draw(st.sampled_from(["day", "week", "month", "WEEK", "Month"]))
        window = data.draw(bounded_windows())
        args = ["revenue", "--format", "json", "--by", by, *window.args]
        assert _json(cli(db_url, *args)) == _expected_revenue(shop, by.lower(), window), args


# --- pay, ship, cancel -----------------------------------------------------------------------


@FEWER
@given(shop=shops(), data=st.data())
def test_status_moves_follow_the_rule_table_all_or_nothing(db_url, cli, shop, data):
    _arrange(db_url, shop)
    statuses = {order.id: order.status for order in shop.orders}
    events = 0
    missing = max(statuses) + 1000
    for _ in range(5):
        command = data.draw(st.sampled_from(sorted(MOVES)))
        # Indices, not ids: the ids differ from one example to the next (the database
        # outlives the example), and Hypothesis must draw the same data when it replays.
        picks = st.lists(st.integers(0, len(shop.orders) - 1), min_size=1, max_size=5)
        ids = [shop.orders[n].id for n in data.draw(picks)]
        if data.draw(st.integers(0, 9)) == 0:
            ids.append(missing)
        dry_run = data.draw(st.booleans())
        args = [command, *map(str, ids), "--format", "json", *(["--dry-run"] if dry_run else [])]
        result = cli(db_url, *args)
        sources, target = MOVES[command]
        unique = list(dict.fromkeys(ids))
        refused = [
            i
            for i in unique
            if i == missing or (statuses[i] != target and statuses[i] not in sources)
        ]
        if refused:
            assert result.exit_code == 1, describe(result)
            assert result.stdout == "" and result.stderr.startswith("Error:"), describe(result)
            # Unknown ids are reported first; otherwise the refused ones.
            named = missing if missing in refused else refused[0]
            assert str(named) in result.stderr, (refused, result.stderr)
        else:
            expected = [
                {
                    "id": i,
                    "previous_status": statuses[i],
                    "status": target,
                    "changed": statuses[i] in sources,
                }
                for i in unique
            ]
            assert _json(result) == expected, args
            if not dry_run:
                events += sum(1 for row in expected if row["changed"])
                statuses.update(dict.fromkeys(unique, target))
        with opened(db_url):
            stored = dict(database.execute_sql("SELECT id, status FROM orders").fetchall())
            logged = database.execute_sql("SELECT COUNT(*) FROM order_event").fetchone()[0]
        assert stored == statuses, args
        assert logged == events, args
