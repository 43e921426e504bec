"""What keeps `summary` sub-second at 1B orders, and what it costs on writes (PostgreSQL).

    python benchmarks/rollup.py [--pg-url postgresql://root@127.0.0.1/postgres]
        [--reps 5] [--seed-count 100000] [--big 1000000] [--keep]

`summary` is one GROUP BY over customer LEFT JOIN orders: linear in orders (~0.35 s per
1M), so minutes at 1B. This script builds the alternative, a rollup the database keeps
up to date itself (the shop's own application writes these tables too, so it must be
triggers, not ordercli code), and measures it:

- `customer_totals`: one row per customer, exactly what the all-time summary computes
  (non-archived orders; paid/shipped count as spent; last_order_at = newest non-archived
  order of any status), with an index on (spent_cents DESC, customer_id) so the top-N is
  an index scan whatever the number of orders.
- `customer_month_totals`: the same per customer per calendar month, for --since/--until
  windows: whole months from the rollup, the partial edge days from orders.
- two ways to maintain them: (a) row-level triggers, one upsert per changed order;
  (b) statement-level triggers with transition tables, one upsert per customer per
  statement; (b1) is (b) without the month table, to price it separately.

Every timing compares runs interleaved in one process on fresh databases (the machine is
shared: compare ratios within one run). Correctness comes first: the rollups are compared
with a full recomputation after a mixed workload (seed, cancel, archive, direct UPDATEs of
totals/status/dates/customers, app-style insert-then-set-total, DELETEs). Progress goes to
stderr; a Markdown report to stdout. Every database it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ordercli.db import connect, database
from ordercli.domain import CANCELLABLE, SPENT
from ordercli.orders import archive_orders, cancel_orders
from ordercli.queries import summary_query

ORDERCLI = Path(sys.executable).with_name("ordercli")
PREFIX = "rollup_bench"
SPENT_SQL = "(" + ", ".join(f"'{s.value}'" for s in SPENT) + ")"
CANCELLABLE_SQL = "(" + ", ".join(f"'{s.value}'" for s in CANCELLABLE) + ")"
TOP = 50
CANCEL_BATCH = 1000
VARIANTS = ("none", "a", "b", "b1")
VARIANT_NAMES = {
    "none": "no rollup",
    "a": "(a) row-level triggers, both tables",
    "b": "(b) statement-level triggers, both tables",
    "b1": "(b1) statement-level, customer_totals only",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the DDL

TABLES = [
    # ON DELETE CASCADE, not RESTRICT: there is a row per customer (so the zero-spend fill
    # of the top-N is part of the same index scan), and the contract lets a customer
    # without orders be deleted. One with orders is still refused, by orders' own FK.
    """CREATE TABLE customer_totals (
        customer_id BIGINT PRIMARY KEY REFERENCES customer (id) ON DELETE CASCADE,
        orders INTEGER NOT NULL DEFAULT 0,
        paid_orders INTEGER NOT NULL DEFAULT 0,
        spent_cents BIGINT NOT NULL DEFAULT 0,
        last_order_at TIMESTAMP(6) WITHOUT TIME ZONE
    )""",
    "CREATE INDEX customer_totals_top_idx ON customer_totals (spent_cents DESC, customer_id)",
]
MONTH_TABLE = [
    # No FK to customer: a month row exists only while the customer has orders in it,
    # and orders already pin the customer (RESTRICT). An FK would cost a check per new row.
    """CREATE TABLE customer_month_totals (
        customer_id BIGINT NOT NULL,
        month DATE NOT NULL,
        orders INTEGER NOT NULL,
        paid_orders INTEGER NOT NULL,
        spent_cents BIGINT NOT NULL,
        last_order_at TIMESTAMP(6) WITHOUT TIME ZONE,
        PRIMARY KEY (customer_id, month)
    )"""
]

ADD = """
        orders = t.orders + excluded.orders,
        paid_orders = t.paid_orders + excluded.paid_orders,
        spent_cents = t.spent_cents + excluded.spent_cents,
        last_order_at = GREATEST(t.last_order_at, excluded.last_order_at)"""

# last_order_at is a MAX, which deltas cannot lower: when the newest live order of a
# customer goes (archived, deleted, moved, re-dated) and nothing newer came in, it is
# recomputed from orders through the covering index (a customer's ~8 entries).
# `removed >= new_last AND (added IS NULL OR added < removed)` is exactly that case.
ROW_LEVEL = [
    f"""CREATE FUNCTION rollup_apply_customer(
        p_customer BIGINT, d_orders INTEGER, d_paid INTEGER, d_spent BIGINT,
        added TIMESTAMP, removed TIMESTAMP) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        new_last TIMESTAMP;
    BEGIN
        INSERT INTO customer_totals AS t
            (customer_id, orders, paid_orders, spent_cents, last_order_at)
        VALUES (p_customer, d_orders, d_paid, d_spent, added)
        ON CONFLICT (customer_id) DO UPDATE SET {ADD}
        RETURNING t.last_order_at INTO new_last;
        IF removed >= new_last AND (added IS NULL OR added < removed) THEN
            UPDATE customer_totals SET last_order_at = (
                SELECT max(o.created_at) FROM orders o
                WHERE o.customer_id = p_customer AND NOT o.is_archived)
            WHERE customer_id = p_customer;
        END IF;
    END $$""",
    f"""CREATE FUNCTION rollup_apply_month(
        p_customer BIGINT, p_month DATE, d_orders INTEGER, d_paid INTEGER, d_spent BIGINT,
        added TIMESTAMP, removed TIMESTAMP) RETURNS void LANGUAGE plpgsql AS $$
    DECLARE
        left_orders INTEGER;
        new_last TIMESTAMP;
    BEGIN
        INSERT INTO customer_month_totals AS t
            (customer_id, month, orders, paid_orders, spent_cents, last_order_at)
        VALUES (p_customer, p_month, d_orders, d_paid, d_spent, added)
        ON CONFLICT (customer_id, month) DO UPDATE SET {ADD}
        RETURNING t.orders, t.last_order_at INTO left_orders, new_last;
        IF left_orders = 0 THEN
            DELETE FROM customer_month_totals WHERE customer_id = p_customer AND month = p_month;
        ELSIF removed >= new_last AND (added IS NULL OR added < removed) THEN
            UPDATE customer_month_totals SET last_order_at = (
                SELECT max(o.created_at) FROM orders o
                WHERE o.customer_id = p_customer AND NOT o.is_archived
                  AND o.created_at >= p_month AND o.created_at < p_month + interval '1 month')
            WHERE customer_id = p_customer AND month = p_month;
        END IF;
    END $$""",
    f"""CREATE FUNCTION rollup_orders_row() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        old_live BOOLEAN := TG_OP <> 'INSERT' AND NOT OLD.is_archived;
        new_live BOOLEAN := TG_OP <> 'DELETE' AND NOT NEW.is_archived;
        old_paid INTEGER := 0;
        old_spent BIGINT := 0;
        new_paid INTEGER := 0;
        new_spent BIGINT := 0;
        old_month DATE;
        new_month DATE;
    BEGIN
        IF old_live THEN
            old_month := date_trunc('month', OLD.created_at);
            IF OLD.status IN {SPENT_SQL} THEN
                old_paid := 1;
                old_spent := OLD.total_cents;
            END IF;
        END IF;
        IF new_live THEN
            new_month := date_trunc('month', NEW.created_at);
            IF NEW.status IN {SPENT_SQL} THEN
                new_paid := 1;
                new_spent := NEW.total_cents;
            END IF;
        END IF;
        IF old_live AND new_live AND OLD.customer_id = NEW.customer_id THEN
            IF new_paid = old_paid AND new_spent = old_spent
               AND OLD.created_at = NEW.created_at THEN
                RETURN NULL;  -- e.g. draft -> cancelled: nothing summary reads changed
            END IF;
            PERFORM rollup_apply_customer(NEW.customer_id, 0, new_paid - old_paid,
                new_spent - old_spent, NEW.created_at, OLD.created_at);
            IF old_month = new_month THEN
                PERFORM rollup_apply_month(NEW.customer_id, new_month, 0, new_paid - old_paid,
                    new_spent - old_spent, NEW.created_at, OLD.created_at);
            ELSE
                PERFORM rollup_apply_month(OLD.customer_id, old_month, -1, -old_paid,
                    -old_spent, NULL, OLD.created_at);
                PERFORM rollup_apply_month(NEW.customer_id, new_month, 1, new_paid,
                    new_spent, NEW.created_at, NULL);
            END IF;
            RETURN NULL;
        END IF;
        IF old_live THEN
            PERFORM rollup_apply_customer(OLD.customer_id, -1, -old_paid, -old_spent,
                NULL, OLD.created_at);
            PERFORM rollup_apply_month(OLD.customer_id, old_month, -1, -old_paid, -old_spent,
                NULL, OLD.created_at);
        END IF;
        IF new_live THEN
            PERFORM rollup_apply_customer(NEW.customer_id, 1, new_paid, new_spent,
                NEW.created_at, NULL);
            PERFORM rollup_apply_month(NEW.customer_id, new_month, 1, new_paid, new_spent,
                NEW.created_at, NULL);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION rollup_customer_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO customer_totals (customer_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER customer_rollup AFTER INSERT ON customer
        FOR EACH ROW EXECUTE FUNCTION rollup_customer_row()""",
    """CREATE TRIGGER orders_rollup_insert AFTER INSERT ON orders
        FOR EACH ROW EXECUTE FUNCTION rollup_orders_row()""",
    # Only updates of what summary reads fire it (cancel's updated_at does not count).
    """CREATE TRIGGER orders_rollup_update AFTER UPDATE ON orders FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status
              OR OLD.total_cents IS DISTINCT FROM NEW.total_cents
              OR OLD.is_archived IS DISTINCT FROM NEW.is_archived
              OR OLD.customer_id IS DISTINCT FROM NEW.customer_id
              OR OLD.created_at IS DISTINCT FROM NEW.created_at)
        EXECUTE FUNCTION rollup_orders_row()""",
    """CREATE TRIGGER orders_rollup_delete AFTER DELETE ON orders
        FOR EACH ROW EXECUTE FUNCTION rollup_orders_row()""",
]


def _changes(sources: Sequence[tuple[str, int]]) -> str:
    """The statement's live orders as signed rows: +1 from NEW TABLE, -1 from OLD TABLE."""
    return "\n            UNION ALL ".join(
        f"SELECT customer_id, created_at, status, total_cents, {sign} AS sign "
        f"FROM {table} WHERE NOT is_archived"
        for table, sign in sources
    )


def _deltas(sources: Sequence[tuple[str, int]], keys: str) -> str:
    """Per-key sums of the signed rows; keys whose totals and newest order are unchanged
    (draft -> cancelled, an updated_at bump) are left out, so they cost no upsert."""
    return f"""changes AS (
            {_changes(sources)}
        ), deltas AS (
            SELECT {keys},
                sum(sign)::int AS d_orders,
                coalesce(sum(sign) FILTER (WHERE status IN {SPENT_SQL}), 0)::int AS d_paid,
                coalesce(sum(sign * total_cents) FILTER (WHERE status IN {SPENT_SQL}), 0)
                    ::bigint AS d_spent,
                max(created_at) FILTER (WHERE sign > 0) AS added,
                max(created_at) FILTER (WHERE sign < 0) AS removed
            FROM changes GROUP BY {"1, 2" if "month" in keys else "1"}
        ), touched AS (
            SELECT * FROM deltas
            WHERE d_orders <> 0 OR d_paid <> 0 OR d_spent <> 0
               OR added IS DISTINCT FROM removed
        )"""


STALE = "c.removed >= u.last_order_at AND (c.added IS NULL OR c.added < c.removed)"
MONTH_KEY = "customer_id, date_trunc('month', created_at)::date AS month"


def statement_function(name: str, sources: Sequence[tuple[str, int]], months: bool) -> str:
    """A statement-level trigger function: one upsert per customer (and per customer and
    month) per statement, in key order so concurrent statements lock rows in one order.

    Inserts cannot lower a MAX or empty a month, so their function is the upsert alone."""
    removes = any(sign < 0 for _, sign in sources)
    customer_upsert = f"""INSERT INTO customer_totals AS t
                (customer_id, orders, paid_orders, spent_cents, last_order_at)
            SELECT customer_id, d_orders, d_paid, d_spent, added FROM touched
            ORDER BY customer_id
            ON CONFLICT (customer_id) DO UPDATE SET {ADD}"""
    month_upsert = f"""INSERT INTO customer_month_totals AS t
                (customer_id, month, orders, paid_orders, spent_cents, last_order_at)
            SELECT customer_id, month, d_orders, d_paid, d_spent, added FROM touched
            ORDER BY customer_id, month
            ON CONFLICT (customer_id, month) DO UPDATE SET {ADD}"""
    if not removes:
        body = f"WITH {_deltas(sources, 'customer_id')}\n        {customer_upsert};"
        if months:
            body += f"\n        WITH {_deltas(sources, MONTH_KEY)}\n        {month_upsert};"
        declare = ""
    else:
        declare = "DECLARE\n        stale BIGINT[];\n    "
        if months:
            declare += "    stale_c BIGINT[];\n        stale_m DATE[];\n"
            declare += "        empty_c BIGINT[];\n        empty_m DATE[];\n    "
        body = f"""WITH {_deltas(sources, "customer_id")}, upserted AS (
            {customer_upsert}
            RETURNING t.customer_id, t.last_order_at
        )
        SELECT array_agg(u.customer_id) INTO stale
        FROM upserted u JOIN touched c USING (customer_id) WHERE {STALE};
        IF stale IS NOT NULL THEN
            UPDATE customer_totals t SET last_order_at = (
                SELECT max(o.created_at) FROM orders o
                WHERE o.customer_id = t.customer_id AND NOT o.is_archived)
            WHERE t.customer_id = ANY (stale);
        END IF;"""
        if months:
            body += f"""
        WITH {_deltas(sources, MONTH_KEY)}, upserted AS (
            {month_upsert}
            RETURNING t.customer_id, t.month, t.orders, t.last_order_at
        )
        SELECT array_agg(u.customer_id) FILTER (WHERE u.orders = 0),
               array_agg(u.month) FILTER (WHERE u.orders = 0),
               array_agg(u.customer_id) FILTER (WHERE u.orders > 0 AND {STALE}),
               array_agg(u.month) FILTER (WHERE u.orders > 0 AND {STALE})
        INTO empty_c, empty_m, stale_c, stale_m
        FROM upserted u JOIN touched c USING (customer_id, month);
        IF empty_c IS NOT NULL THEN
            DELETE FROM customer_month_totals t
            USING unnest(empty_c, empty_m) AS e (customer_id, month)
            WHERE t.customer_id = e.customer_id AND t.month = e.month AND t.orders = 0;
        END IF;
        IF stale_c IS NOT NULL THEN
            UPDATE customer_month_totals t SET last_order_at = (
                SELECT max(o.created_at) FROM orders o
                WHERE o.customer_id = t.customer_id AND NOT o.is_archived
                  AND o.created_at >= t.month AND o.created_at < t.month + interval '1 month')
            FROM unnest(stale_c, stale_m) AS s (customer_id, month)
            WHERE t.customer_id = s.customer_id AND t.month = s.month;
        END IF;"""
    return f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    {declare}BEGIN
        {body}
        RETURN NULL;
    END $$"""


def statement_level(months: bool) -> list[str]:
    return [
        """CREATE FUNCTION rollup_customer_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO customer_totals (customer_id)
        SELECT id FROM new_customers ORDER BY id ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$""",
        """CREATE TRIGGER customer_rollup AFTER INSERT ON customer
        REFERENCING NEW TABLE AS new_customers
        FOR EACH STATEMENT EXECUTE FUNCTION rollup_customer_insert()""",
        statement_function("rollup_orders_insert", [("new_rows", 1)], months),
        statement_function("rollup_orders_update", [("new_rows", 1), ("old_rows", -1)], months),
        statement_function("rollup_orders_delete", [("old_rows", -1)], months),
        # A trigger with transition tables serves one event only.
        """CREATE TRIGGER orders_rollup_insert AFTER INSERT ON orders
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION rollup_orders_insert()""",
        """CREATE TRIGGER orders_rollup_update AFTER UPDATE ON orders
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION rollup_orders_update()""",
        """CREATE TRIGGER orders_rollup_delete AFTER DELETE ON orders
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION rollup_orders_delete()""",
    ]


def truncate_guard(months: bool) -> list[str]:
    """TRUNCATE fires no row or transition-table trigger: reset the rollup with it."""
    reset_months = "TRUNCATE customer_month_totals;" if months else ""
    return [
        f"""CREATE FUNCTION rollup_orders_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE customer_totals SET orders = 0, paid_orders = 0, spent_cents = 0,
            last_order_at = NULL
        WHERE orders <> 0 OR last_order_at IS NOT NULL;
        {reset_months}
        RETURN NULL;
    END $$""",
        """CREATE TRIGGER orders_rollup_truncate AFTER TRUNCATE ON orders
        FOR EACH STATEMENT EXECUTE FUNCTION rollup_orders_truncate()""",
    ]


# The full recomputation: the backfill when the rollup is installed on existing data, and
# the truth the maintained rollup is compared with.
TRUTH_TOTALS = f"""SELECT c.id AS customer_id,
        count(o.customer_id)::int AS orders,
        coalesce(sum(CASE WHEN o.status IN {SPENT_SQL} THEN 1 ELSE 0 END), 0)::int AS paid_orders,
        coalesce(sum(CASE WHEN o.status IN {SPENT_SQL} THEN o.total_cents ELSE 0 END), 0)
            ::bigint AS spent_cents,
        max(o.created_at) AS last_order_at
    FROM customer c LEFT JOIN orders o ON o.customer_id = c.id AND NOT o.is_archived
    GROUP BY c.id"""
TRUTH_MONTHS = f"""SELECT customer_id, date_trunc('month', created_at)::date AS month,
        count(*)::int AS orders,
        count(*) FILTER (WHERE status IN {SPENT_SQL})::int AS paid_orders,
        coalesce(sum(total_cents) FILTER (WHERE status IN {SPENT_SQL}), 0)::bigint AS spent_cents,
        max(created_at) AS last_order_at
    FROM orders WHERE NOT is_archived GROUP BY 1, 2"""


def install_ddl(variant: str) -> list[str]:
    """Everything a migration would run, in one transaction: writers are locked out while
    the tables are backfilled and the triggers attached, so nothing is counted twice or
    missed. (At 1B orders that lock would be held for the whole backfill: see the report.)"""
    if variant == "none":
        return []
    months = variant != "b1"
    ddl = ["LOCK TABLE customer, orders IN SHARE ROW EXCLUSIVE MODE", *TABLES]
    if months:
        ddl += MONTH_TABLE
    ddl += ROW_LEVEL if variant == "a" else statement_level(months)
    ddl += truncate_guard(months)
    ddl.append(f"INSERT INTO customer_totals {TRUTH_TOTALS}")
    if months:
        ddl.append(f"INSERT INTO customer_month_totals {TRUTH_MONTHS}")
    return ddl


# --------------------------------------------------------------------------- the reads

ALL_TIME_TOP = """SELECT c.id, c.email, c.name, t.orders, t.paid_orders, t.spent_cents,
        t.last_order_at
    FROM customer_totals t JOIN customer c ON c.id = t.customer_id
    WHERE c.is_active
    ORDER BY t.spent_cents DESC, t.customer_id
    LIMIT %s"""

# Whole months from the month rollup, the partial edge days from orders; one SELECT with
# one GROUP BY, as the contract asks of summary.
WINDOW_PARTS = f"""SELECT customer_id, orders, paid_orders, spent_cents, last_order_at
            FROM customer_month_totals
            WHERE month >= %(m1)s AND month < %(m2)s
            UNION ALL
            SELECT customer_id, 1, CASE WHEN status IN {SPENT_SQL} THEN 1 ELSE 0 END,
                CASE WHEN status IN {SPENT_SQL} THEN total_cents ELSE 0 END, created_at
            FROM orders
            WHERE NOT is_archived
              AND ((created_at >= %(since)s AND created_at < %(head_end)s)
                OR (created_at >= %(tail_start)s AND created_at < %(until)s))"""
WINDOW_TOP = f"""SELECT c.id, c.email, c.name, w.orders, w.paid_orders, w.spent_cents,
        w.last_order_at
    FROM (
        SELECT customer_id, sum(orders) AS orders, sum(paid_orders) AS paid_orders,
            sum(spent_cents) AS spent_cents, max(last_order_at) AS last_order_at
        FROM ({WINDOW_PARTS}) parts
        GROUP BY customer_id
    ) w JOIN customer c ON c.id = w.customer_id
    WHERE c.is_active AND w.spent_cents > 0
    ORDER BY w.spent_cents DESC, c.id
    LIMIT %(limit)s"""
# Per candidate, by key: LATERAL forces the customer-first plan (month rows by primary key,
# edge orders by the covering index); a plain `customer_id = ANY(...)` let the planner scan
# the edge days of every customer through the created_at index instead (measured: ~30x).
WINDOW_EXACT = f"""SELECT c.id, c.email, c.name, coalesce(m.orders, 0) + coalesce(e.orders, 0),
        coalesce(m.paid_orders, 0) + coalesce(e.paid_orders, 0),
        coalesce(m.spent_cents, 0) + coalesce(e.spent_cents, 0),
        GREATEST(m.last_order_at, e.last_order_at)
    FROM customer c
    CROSS JOIN LATERAL (
        SELECT sum(orders) AS orders, sum(paid_orders) AS paid_orders,
            sum(spent_cents) AS spent_cents, max(last_order_at) AS last_order_at
        FROM customer_month_totals
        WHERE customer_id = c.id AND month >= %(m1)s AND month < %(m2)s
    ) m
    CROSS JOIN LATERAL (
        SELECT count(*) AS orders, count(*) FILTER (WHERE status IN {SPENT_SQL}) AS paid_orders,
            sum(total_cents) FILTER (WHERE status IN {SPENT_SQL}) AS spent_cents,
            max(created_at) AS last_order_at
        FROM orders
        WHERE customer_id = c.id AND NOT is_archived
          AND ((created_at >= %(since)s AND created_at < %(head_end)s)
            OR (created_at >= %(tail_start)s AND created_at < %(until)s))
    ) e
    WHERE c.id = ANY(%(ids)s)"""
BOUND_PAGE = """SELECT t.customer_id, t.spent_cents
    FROM customer_totals t JOIN customer c ON c.id = t.customer_id
    WHERE c.is_active
    ORDER BY t.spent_cents DESC, t.customer_id
    LIMIT %s OFFSET %s"""


def _month_start(when: datetime.datetime) -> datetime.datetime:
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(month: datetime.datetime) -> datetime.datetime:
    return (month + datetime.timedelta(days=32)).replace(day=1)


def window_params(since: datetime.datetime, until: datetime.datetime) -> dict[str, Any]:
    """Split [since, until) into whole months [m1, m2) and the edge days around them."""
    m1 = _month_start(since)
    if m1 != since:
        m1 = _next_month(m1)
    m2 = _month_start(until)
    if m1 >= m2:  # no whole month inside: all of it comes from orders
        m1 = m2 = _month_start(since)
        head_end = tail_start = until
    else:
        head_end, tail_start = m1, m2
    return {
        "m1": m1.date(),
        "m2": m2.date(),
        "since": since,
        "until": until,
        "head_end": head_end,
        "tail_start": tail_start,
    }


def rows_of(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return [normal(row) for row in database.execute_sql(sql, params).fetchall()]


def normal(row: Sequence[Any]) -> tuple[Any, ...]:
    """A summary row with its numbers as ints, so rollup and GROUP BY rows compare equal."""
    cid, email, name, orders, paid, spent, last = row
    return (cid, email, name, int(orders), int(paid), int(spent), last)


def summary_rows(limit: int, since: Any = None, until: Any = None) -> list[tuple[Any, ...]]:
    """ordercli's own summary SELECT (the one `ordercli summary` runs)."""
    return [normal(r) for r in database.execute(summary_query(limit, since, until))]


def rollup_top(limit: int) -> list[tuple[Any, ...]]:
    return rows_of(ALL_TIME_TOP, (limit,))


def window_top(
    since: datetime.datetime, until: datetime.datetime, limit: int = TOP
) -> list[tuple[Any, ...]]:
    rows = rows_of(WINDOW_TOP, {**window_params(since, until), "limit": limit})
    if len(rows) < limit:  # too few spenders: the zero-spend fill needs every customer
        return summary_rows(limit, since, until)
    return rows


def window_refine(
    since: datetime.datetime, until: datetime.datetime, limit: int = TOP
) -> tuple[list[tuple[Any, ...]], int]:
    """Exact windowed top-N without aggregating the whole window ("bound and refine").

    A customer's spend in any window is at most their all-time spend, which
    customer_totals' index yields in descending order. Walk it in growing pages, compute
    the exact windowed figures of each page's customers (their month rows and edge-day
    orders, by key), and stop once the N-th best exact spend beats the bound of every
    customer not yet read. Returns the rows and how many customers were examined."""
    params = window_params(since, until)
    best: list[tuple[Any, ...]] = []
    offset, page = 0, 1000
    while True:
        bounds = database.execute_sql(BOUND_PAGE, (page, offset)).fetchall()
        if not bounds:
            break
        ids = [cid for cid, _ in bounds]
        exact = rows_of(WINDOW_EXACT, {**params, "ids": ids})
        best = sorted([*best, *(r for r in exact if r[5] > 0)], key=lambda r: (-r[5], r[0]))
        best = best[:limit]
        offset += len(bounds)
        if len(best) == limit and best[-1][5] > bounds[-1][1]:
            return best, offset
        page *= 2
    if len(best) < limit:
        return summary_rows(limit, since, until), offset
    return best, offset


# --------------------------------------------------------------------------- databases


class Server:
    """CREATE/DROP DATABASE on the server; remembers what it made, to drop it all."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=10)
        self.made: list[str] = []

    def url(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def create(self, name: str, template: str | None = None) -> str:
        self.drop(name)
        clause = f" TEMPLATE {template}" if template else ""
        for attempt in range(5):
            try:
                self.admin.execute(f"CREATE DATABASE {name}{clause}")
                break
            except psycopg.errors.ObjectInUse:  # a template still has a session closing
                if attempt == 4:
                    raise
                time.sleep(1)
        self.made.append(name)
        return self.url(name)

    def drop(self, name: str) -> None:
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self.made:
            self.made.remove(name)

    def drop_all(self) -> None:
        for name in list(reversed(self.made)):
            self.drop(name)


def trigger_seconds(url: str) -> float:
    """Time spent inside the rollup trigger functions (pg_stat_user_functions self time,
    with track_functions = 'pl'): the write cost itself, apart from the client and from
    the shared machine's scheduling noise that dominates the wall-clock difference."""
    last = -1.0
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(20):  # the seed's backend flushes its statistics as it exits
            (ms_total,) = conn.execute(
                "SELECT pg_stat_clear_snapshot(), coalesce(sum(self_time), 0) "
                "FROM pg_stat_user_functions WHERE funcname LIKE 'rollup%%'"
            ).fetchone()[1:]
            if float(ms_total) == last:
                break
            last = float(ms_total)
            time.sleep(0.1)
    return last / 1000


def run_ddl(url: str, statements: Sequence[str]) -> float:
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]
    return time.perf_counter() - started


def run_seed(url: str, count: int, seed_value: int) -> dict[str, Any]:
    """`ordercli seed` as users run it; its own JSON figures (process start-up excluded)."""
    out = subprocess.run(
        [str(ORDERCLI), "--db", url, "seed", "--count", str(count), "--seed", str(seed_value)]
        + ["--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


@contextlib.contextmanager
def ordercli_session(url: str) -> Iterator[None]:
    with connect(url):
        yield


def analyze(variant: str) -> None:
    if variant != "none":
        database.execute_sql("VACUUM (ANALYZE) customer_totals")
    if variant in ("a", "b"):
        database.execute_sql("VACUUM (ANALYZE) customer_month_totals")


def sizes(variant: str) -> dict[str, int]:
    """Bytes (table + indexes) and rows of each rollup table and of orders."""
    tables = ["orders"]
    if variant != "none":
        tables.append("customer_totals")
    if variant in ("a", "b"):
        tables.append("customer_month_totals")
    found: dict[str, int] = {}
    for table in tables:
        size, rows = database.execute_sql(
            f"SELECT pg_total_relation_size('{table}'), (SELECT count(*) FROM {table})"
        ).fetchone()
        found[f"{table}_bytes"], found[f"{table}_rows"] = int(size), int(rows)
    return found


def compact_sizes() -> dict[str, int]:
    """Bytes of each rollup table rewritten compactly (as a backfill leaves it): the
    trigger-maintained one also holds the dead versions every upsert leaves behind."""
    found: dict[str, int] = {}
    for table, key in (
        ("customer_totals", "customer_id"),
        ("customer_month_totals", "customer_id, month"),
    ):
        database.execute_sql(f"CREATE TABLE compact AS SELECT * FROM {table} ORDER BY {key}")
        database.execute_sql(f"ALTER TABLE compact ADD PRIMARY KEY ({key})")
        if table == "customer_totals":
            database.execute_sql("CREATE INDEX ON compact (spent_cents DESC, customer_id)")
        (size,) = database.execute_sql("SELECT pg_total_relation_size('compact')").fetchone()
        database.execute_sql("DROP TABLE compact")
        found[f"{table}_compact_bytes"] = int(size)
    return found


# --------------------------------------------------------------------------- checks


def compare_with_truth(variant: str) -> dict[str, int]:
    """Rows that differ between each rollup table and its full recomputation (both ways)."""
    checks = {"customer_totals": TRUTH_TOTALS}
    if variant in ("a", "b"):
        checks["customer_month_totals"] = TRUTH_MONTHS
    diffs: dict[str, int] = {}
    for table, truth in checks.items():
        columns = "customer_id, " + ("month, " if "month" in table else "")
        columns += "orders, paid_orders, spent_cents, last_order_at"
        (missing,) = database.execute_sql(
            f"SELECT count(*) FROM ({truth} EXCEPT ALL SELECT {columns} FROM {table}) d"
        ).fetchone()
        (extra,) = database.execute_sql(
            f"SELECT count(*) FROM (SELECT {columns} FROM {table} EXCEPT ALL {truth}) d"
        ).fetchone()
        diffs[table] = int(missing) + int(extra)
    return diffs


def sample_ids(rng: random.Random, sql: str, count: int, params: Any = None) -> list[int]:
    ids = [row[0] for row in database.execute_sql(sql, params).fetchall()]
    return rng.sample(ids, min(count, len(ids)))


def mixed_workload(rng: random.Random) -> dict[str, int]:
    """Every kind of write the shop and ordercli make; returns how many rows each touched."""
    done: dict[str, int] = {}
    live = "SELECT id FROM orders WHERE NOT is_archived"
    cancellable = f"{live} AND status IN {CANCELLABLE_SQL}"
    done["cancel"] = len(cancel_orders(sample_ids(rng, cancellable, 300), reason="bench"))
    newest = (
        "SELECT DISTINCT ON (customer_id) id FROM orders WHERE NOT is_archived "
        "ORDER BY customer_id, created_at DESC"
    )
    archived = sample_ids(rng, live, 150) + sample_ids(rng, newest, 150)
    archived = list(dict.fromkeys(archived))
    done["archive"] = len(archive_orders(archived))
    done["unarchive"] = len(archive_orders(archived[:60], undo=True))
    with database.atomic():
        ids = sample_ids(rng, live, 200)
        done["update total"] = database.execute_sql(
            "UPDATE orders SET total_cents = total_cents + 100 WHERE id = ANY(%s)", (ids,)
        ).rowcount
        ids = sample_ids(rng, f"{live} AND status = 'paid'", 100)
        done["paid->shipped"] = database.execute_sql(
            "UPDATE orders SET status = 'shipped' WHERE id = ANY(%s)", (ids,)
        ).rowcount
        ids = sample_ids(rng, f"{live} AND status = 'draft'", 100)
        done["draft->paid"] = database.execute_sql(
            "UPDATE orders SET status = 'paid' WHERE id = ANY(%s)", (ids,)
        ).rowcount
    # The app's pattern: an empty draft first, its items, then the total and status.
    customers = sample_ids(rng, "SELECT id FROM customer", 40)
    for n, customer_id in enumerate(customers):
        with database.atomic():
            created = "now() AT TIME ZONE 'UTC'" if n % 2 else "timestamp '2020-02-29 12:00'"
            (order_id,) = database.execute_sql(
                f"INSERT INTO orders (customer_id, created_at) VALUES (%s, {created}) RETURNING id",
                (customer_id,),
            ).fetchone()
            database.execute_sql(
                "INSERT INTO order_item (order_id, sku, quantity, unit_price_cents) "
                "VALUES (%s, 'SKU-1', 2, 499), (%s, 'SKU-2', 1, 999)",
                (order_id, order_id),
            )
            database.execute_sql(
                "UPDATE orders SET status = 'paid', total_cents = (SELECT sum(quantity * "
                "unit_price_cents) FROM order_item WHERE order_id = %s) WHERE id = %s",
                (order_id, order_id),
            )
    done["app insert+total"] = len(customers)
    with database.atomic():
        ids = sample_ids(rng, live, 100) + sample_ids(rng, newest, 50)
        done["re-date"] = database.execute_sql(
            "UPDATE orders SET created_at = created_at - interval '40 days' WHERE id = ANY(%s)",
            (ids,),
        ).rowcount
        ids = sample_ids(rng, newest, 30)
        done["move customer"] = database.execute_sql(
            "UPDATE orders SET customer_id = mod(customer_id, 97) + 1 WHERE id = ANY(%s)", (ids,)
        ).rowcount
        # Many rows of the same customers in one statement, every kind of change at once.
        busy = sample_ids(rng, "SELECT customer_id FROM orders GROUP BY 1 HAVING count(*) > 8", 5)
        done["mixed statement"] = database.execute_sql(
            "UPDATE orders SET status = CASE status WHEN 'draft' THEN 'paid' "
            "WHEN 'paid' THEN 'cancelled' ELSE status END, "
            "is_archived = (mod(id, 5) = 0), total_cents = total_cents + mod(id, 7) "
            "WHERE customer_id = ANY(%s)",
            (busy,),
        ).rowcount
    no_events = f"{live} AND id NOT IN (SELECT order_id FROM order_event)"
    with database.atomic():
        ids = sample_ids(rng, no_events, 20)
        ids += sample_ids(
            rng, f"SELECT id FROM ({newest}) n EXCEPT SELECT order_id FROM order_event", 20
        )
        done["delete"] = database.execute_sql(
            "DELETE FROM orders WHERE id = ANY(%s)", (list(set(ids)),)
        ).rowcount
    with database.atomic():
        (customer_id,) = database.execute_sql(
            "INSERT INTO customer (name, email) VALUES ('Gone Soon', 'gone@example.com') "
            "RETURNING id"
        ).fetchone()
        done["delete customer"] = database.execute_sql(
            "DELETE FROM customer WHERE id = %s", (customer_id,)
        ).rowcount
    refused = 0
    try:
        with database.atomic():
            database.execute_sql(
                "DELETE FROM customer WHERE id = (SELECT min(customer_id) FROM orders)"
            )
    except Exception:  # the refusal is the expected outcome
        refused = 1
    done["customer with orders refused"] = refused
    return done


def contention_probe(url: str) -> bool:
    """Whether a write to one order waits for an open transaction that wrote another order
    of the same customer (it does once both must update that customer's rollup row)."""
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        _, a, b = first.execute(
            "SELECT customer_id, min(id), max(id) FROM orders "
            "WHERE status = 'draft' AND NOT is_archived "
            "GROUP BY customer_id HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        first.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (a,))
        second.execute("SET lock_timeout = '500ms'")
        try:
            second.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (b,))
            blocked = False
        except psycopg.errors.LockNotAvailable:
            blocked = True
        second.rollback()
        first.rollback()
    return blocked


# --------------------------------------------------------------------------- timing


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def interleaved(actions: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Median seconds of each action: one warm-up, then `reps` rounds taking turns."""
    samples: dict[str, list[float]] = {name: [] for name in actions}
    for action in actions.values():
        action()
    for _ in range(reps):
        for name, action in actions.items():
            samples[name].append(timed(action)[0])
    return {name: statistics.median(values) for name, values in samples.items()}


def cancel_timings(rng: random.Random, singles: int) -> tuple[list[float], float]:
    """`cancel` of one order (`singles` times, after a warm-up) and of 1,000 orders."""
    pool = sample_ids(
        rng, f"SELECT id FROM orders WHERE status IN {CANCELLABLE_SQL}", 2 * CANCEL_BATCH + 50
    )
    cancel_orders(pool[:1], reason="warm-up")
    one = [timed(lambda i=i: cancel_orders([i], reason="bench"))[0] for i in pool[1 : singles + 1]]
    batch = pool[50 : 50 + CANCEL_BATCH]
    thousand = timed(lambda: cancel_orders(batch, reason="bench"))[0]
    return one, thousand


# --------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.0f} s"


def mb(size: float) -> str:
    return f"{size / 2**20:,.1f} MB" if size < 2**30 else f"{size / 2**30:,.1f} GB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1/postgres")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed-count", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args(argv)
    if args.reps < 5:
        parser.error("--reps must be at least 5")
    server = Server(args.pg_url)
    started = time.perf_counter()
    try:
        report = run(server, args)
    finally:
        if not args.keep:
            server.drop_all()
    print(report)
    print(f"\n_Whole run: {time.perf_counter() - started:,.0f} s._")
    return 0


def run(server: Server, args: argparse.Namespace) -> str:
    log("templates: migrated schema, then each variant's rollup installed")
    base = f"{PREFIX}_tpl_none"
    subprocess.run(
        [str(ORDERCLI), "--db", server.create(base), "migrate"], check=True, capture_output=True
    )
    templates = {"none": base}
    for variant in VARIANTS[1:]:
        name = f"{PREFIX}_tpl_{variant}"
        run_ddl(server.create(name, template=base), install_ddl(variant))
        templates[variant] = name

    seeds: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    one: dict[str, list[float]] = {v: [] for v in VARIANTS}
    thousand: dict[str, list[float]] = {v: [] for v in VARIANTS}
    small_sizes: dict[str, dict[str, int]] = {}
    small_reads: list[dict[str, float]] = []
    small_depth: dict[str, int] = {}
    checks: list[tuple[str, str, dict[str, int], dict[str, int]]] = []
    blocks: dict[str, bool] = {}
    for rep in range(args.reps):
        order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
        for variant in order:
            name = f"{PREFIX}_{variant}_{rep}"
            url = server.create(name, template=templates[variant])
            server.admin.execute(f"ALTER DATABASE {name} SET track_functions = 'pl'")
            result = run_seed(url, args.seed_count, 1000 + rep)
            result["trigger_s"] = trigger_seconds(url)
            seeds[variant].append(result)
            log(f"rep {rep} {variant}: seed {result['seconds']:.2f} s")
            with ordercli_session(url):
                singles, batch = cancel_timings(random.Random(rep), 5)
                one[variant] += singles
                thousand[variant].append(batch)
                if rep == args.reps - 1:
                    analyze(variant)
                    small_sizes[variant] = sizes(variant)
                    if variant == "b":
                        small_reads.append(
                            interleaved(
                                {
                                    "summary": lambda: summary_rows(TOP),
                                    "rollup": lambda: rollup_top(TOP),
                                },
                                args.reps,
                            )
                        )
                        small_depth = refine_depths()
                    if variant != "none":
                        before = compare_with_truth(variant)
                        work = mixed_workload(random.Random(rep))
                        after = compare_with_truth(variant)
                        top_ok = rollup_top(TOP) == summary_rows(TOP)
                        checks.append(
                            (f"{args.seed_count:,} {variant}", str(top_ok), before, after)
                        )
                        log(f"{variant} mixed workload {work}: before {before} after {after}")
            if rep == args.reps - 1:
                blocks[variant] = contention_probe(url)
            server.drop(name)

    log(f"{args.big:,} orders seeded once with (b) attached")
    big_url = server.create(f"{PREFIX}_big", template=templates["b"])
    server.admin.execute(f"ALTER DATABASE {PREFIX}_big SET track_functions = 'pl'")
    big_seed = run_seed(big_url, args.big, 7)
    big_seed["trigger_s"] = trigger_seconds(big_url)
    log(f"big seed {big_seed['seconds']:.1f} s")
    with ordercli_session(big_url):
        analyze("b")
        big_sizes = sizes("b")
        big_sizes.update(compact_sizes())
        diffs = compare_with_truth("b")
        backfill, _ = timed(
            lambda: database.execute_sql(f"SELECT count(*) FROM ({TRUTH_TOTALS}) t").fetchone()
        )
        backfill_m, _ = timed(
            lambda: database.execute_sql(f"SELECT count(*) FROM ({TRUTH_MONTHS}) t").fetchone()
        )
        top_equal = rollup_top(TOP) == summary_rows(TOP)
        all_equal = rollup_top(10**9) == summary_rows(0)
        log(f"1M: truth diffs {diffs}, top-50 equal {top_equal}, every customer equal {all_equal}")
        (newest,) = database.execute_sql("SELECT max(created_at) FROM orders").fetchone()
        windows = big_windows(newest)
        window_ok = {}
        for label, (since, until) in windows.items():
            expected = summary_rows(TOP, since, until)
            refined, depth = window_refine(since, until)
            window_ok[label] = (window_top(since, until) == expected, refined == expected, depth)
        log(f"windows: {window_ok}")
        actions: dict[str, Callable[[], Any]] = {
            "summary all-time": lambda: summary_rows(TOP),
            "rollup all-time": lambda: rollup_top(TOP),
        }
        for label, (since, until) in windows.items():
            actions[f"summary {label}"] = lambda s=since, u=until: summary_rows(TOP, s, u)
            actions[f"months+edges {label}"] = lambda s=since, u=until: window_top(s, u)
            actions[f"bound+refine {label}"] = lambda s=since, u=until: window_refine(s, u)
        big_reads = interleaved(actions, args.reps)
        window_rows = {
            label: window_rows_read(since, until) for label, (since, until) in windows.items()
        }
        big_before = compare_with_truth("b")
        work = mixed_workload(random.Random(99))
        big_after = compare_with_truth("b")
        checks.append(
            (f"{args.big:,} b", str(rollup_top(TOP) == summary_rows(TOP)), big_before, big_after)
        )
        log(f"1M mixed workload {work}: after {big_after}")
    server.drop(f"{PREFIX}_big")
    return render(
        args,
        seeds,
        one,
        thousand,
        small_sizes,
        small_reads,
        small_depth,
        checks,
        big_seed,
        big_sizes,
        diffs,
        top_equal,
        all_equal,
        window_ok,
        big_reads,
        window_rows,
        backfill,
        backfill_m,
        blocks,
    )


def big_windows(
    newest: datetime.datetime,
) -> dict[str, tuple[datetime.datetime, datetime.datetime]]:
    """Two windows with ragged edges: ~90 days (2-3 whole months) and ~300 days (~9)."""
    return {
        "90 d": (
            newest - datetime.timedelta(days=97, hours=13),
            newest - datetime.timedelta(days=6, hours=5),
        ),
        "300 d": (
            newest - datetime.timedelta(days=301, hours=7),
            newest - datetime.timedelta(days=1, hours=3),
        ),
    }


def refine_depths() -> dict[str, int]:
    (newest,) = database.execute_sql("SELECT max(created_at) FROM orders").fetchone()
    return {label: window_refine(s, u)[1] for label, (s, u) in big_windows(newest).items()}


def window_rows_read(since: datetime.datetime, until: datetime.datetime) -> int:
    """Rows the months+edges query aggregates: month rows in range plus edge-day orders."""
    params = window_params(since, until)
    (count,) = database.execute_sql(f"SELECT count(*) FROM ({WINDOW_PARTS}) p", params).fetchone()
    return int(count)


def render(
    args: argparse.Namespace,
    seeds: dict[str, list[dict[str, Any]]],
    one: dict[str, list[float]],
    thousand: dict[str, list[float]],
    small_sizes: dict[str, dict[str, int]],
    small_reads: list[dict[str, float]],
    small_depth: dict[str, int],
    checks: list[tuple[str, str, dict[str, int], dict[str, int]]],
    big_seed: dict[str, Any],
    big_sizes: dict[str, int],
    diffs: dict[str, int],
    top_equal: bool,
    all_equal: bool,
    window_ok: dict[str, tuple[bool, bool, int]],
    big_reads: dict[str, float],
    window_rows: dict[str, int],
    backfill: float,
    backfill_m: float,
    blocks: dict[str, bool],
) -> str:
    n = args.seed_count
    lines = [
        "# Rollup for `summary` at scale (PostgreSQL)",
        "",
        "```sh",
        "cd /work/main && /tmp/v0/bin/python benchmarks/rollup.py"
        + (f" --reps {args.reps}" if args.reps != 5 else ""),
        "```",
        "",
        f"## Writes: median of {args.reps} fresh databases per variant, interleaved",
        "",
        f"| variant | seed {n:,} orders | rows/s | orders/s | vs none | extra µs/order "
        "| inside triggers (µs/order) | cancel 1 | vs none | cancel 1,000 | vs none |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base_seed = statistics.median(s["seconds"] for s in seeds["none"])
    base_one = statistics.median(one["none"])
    base_k = statistics.median(thousand["none"])
    for variant in VARIANTS:
        secs = statistics.median(s["seconds"] for s in seeds[variant])
        rows = statistics.median(
            (s["customers"] + s["orders"] + s["items"]) / s["seconds"] for s in seeds[variant]
        )
        o1 = statistics.median(one[variant])
        ok = statistics.median(thousand[variant])
        inside = statistics.median(s["trigger_s"] for s in seeds[variant])
        lines.append(
            f"| {VARIANT_NAMES[variant]} | {secs:.2f} s | {rows:,.0f} | {n / secs:,.0f} "
            f"| {secs / base_seed:.2f}× | {(secs - base_seed) / n * 1e6:+,.1f} "
            f"| {inside:.2f} s ({inside / n * 1e6:,.1f}; {inside / secs:.0%} of seed) "
            f"| {ms(o1)} | {o1 / base_one:.2f}× | {ms(ok)} | {ok / base_k:.2f}× |"
        )
    lines += [
        "",
        "Seed times per run (s): "
        + "; ".join(f"{v} " + ", ".join(f"{s['seconds']:.1f}" for s in seeds[v]) for v in VARIANTS)
        + ".",
        "",
        f"Cancel timings are in-process `cancel_orders()` (lock, UPDATE, events, commit); "
        f"cancel 1 is the median of {5 * args.reps} cancels.",
        "",
        "Hot-customer contention: does an UPDATE of one order wait for another open "
        "transaction's UPDATE of a different order of the same customer? "
        + ", ".join(f"{v}: {'waits' if b else 'no'}" for v, b in blocks.items()),
        "",
        f"## Reads at {args.big:,} orders (seeded once with (b): "
        f"{big_seed['seconds']:.0f} s, {args.big / big_seed['seconds']:,.0f} orders/s, "
        f"{big_seed['trigger_s']:.1f} s of it inside the triggers)",
        "",
        "| query | median | vs ordercli summary | exact? |",
        "|---|---|---|---|",
    ]
    base = big_reads["summary all-time"]
    lines.append(f"| ordercli summary, all-time top-50 (GROUP BY) | {ms(base)} | 1× | — |")
    lines.append(
        f"| rollup all-time top-50 (index scan) | {ms(big_reads['rollup all-time'])} "
        f"| {big_reads['rollup all-time'] / base:.4f}× | top-50 {top_equal}, every customer "
        f"{all_equal} |"
    )
    for label, (months_ok, refine_ok, depth) in window_ok.items():
        b = big_reads[f"summary {label}"]
        lines.append(f"| ordercli summary {label} window | {ms(b)} | 1× | — |")
        m = big_reads[f"months+edges {label}"]
        lines.append(
            f"| months from rollup + edge days from orders, {label} "
            f"({window_rows[label]:,} rows aggregated) | {ms(m)} | {m / b:.2f}× | {months_ok} |"
        )
        r = big_reads[f"bound+refine {label}"]
        lines.append(
            f"| bound (all-time index) + refine, {label} ({depth:,} customers examined; "
            f"{small_depth.get(label, 0):,} at {n:,}) | {ms(r)} | {r / b:.2f}× | {refine_ok} |"
        )
    if small_reads:
        s = small_reads[0]
        lines.append(
            f"| at {n:,} orders: summary {ms(s['summary'])}, rollup {ms(s['rollup'])} | | | |"
        )
    lines += [
        "",
        "## Correctness: rollup vs full recomputation (rows differing, both tables)",
        "",
        "| database | after seed | after mixed workload | rollup top-50 == summary |",
        "|---|---|---|---|",
    ]
    lines.append(f"| {args.big:,} b (after seed) | {diffs} | — | {top_equal} |")
    for label, top_ok, before, after in checks:
        lines.append(f"| {label} | {before} | {after} | {top_ok} |")
    lines += ["", "## Sizes and extrapolation to 1B orders", ""]
    lines += extrapolate(
        args,
        seeds,
        one,
        thousand,
        small_sizes,
        big_sizes,
        big_reads,
        window_rows,
        backfill,
        backfill_m,
        big_seed,
    )
    return "\n".join(lines)


def extrapolate(
    args: argparse.Namespace,
    seeds: dict[str, list[dict[str, Any]]],
    one: dict[str, list[float]],
    thousand: dict[str, list[float]],
    small_sizes: dict[str, dict[str, int]],
    big_sizes: dict[str, int],
    big_reads: dict[str, float],
    window_rows: dict[str, int],
    backfill: float,
    backfill_m: float,
    big_seed: dict[str, Any],
) -> list[str]:
    """Straight-line arithmetic from the 1M figures to 1B orders / 125M customers."""
    scale = 1_000_000_000 / args.big
    customers = big_sizes["customer_totals_rows"]
    per_customer = big_sizes["customer_totals_bytes"] / customers
    month_rows = big_sizes["customer_month_totals_rows"]
    per_month_row = big_sizes["customer_month_totals_bytes"] / month_rows
    compact_customer = big_sizes["customer_totals_compact_bytes"] / customers
    compact_month = big_sizes["customer_month_totals_compact_bytes"] / month_rows
    orders_bytes = big_sizes["orders_bytes"]
    n = args.seed_count
    base_seed = statistics.median(s["seconds"] for s in seeds["none"])
    lines = [
        f"| figure | at {args.big:,} (measured) | at 1B (×{scale:,.0f}, arithmetic) |",
        "|---|---|---|",
        f"| orders table + indexes | {mb(orders_bytes)} | {mb(orders_bytes * scale)} |",
        f"| customer_totals rows / size | {customers:,} / {mb(customers * per_customer)} "
        f"({per_customer:.0f} B/row) | {customers * scale:,.0f} / "
        f"{mb(customers * per_customer * scale)} |",
        f"| customer_month_totals rows / size | {month_rows:,} / "
        f"{mb(month_rows * per_month_row)} ({month_rows / args.big:.2f} per order) "
        f"| {month_rows * scale:,.0f} / {mb(month_rows * per_month_row * scale)} |",
        f"| the same rewritten compactly: customer_totals / month table "
        f"| {compact_customer:.0f} / {compact_month:.0f} B/row "
        f"| {mb(customers * compact_customer * scale)} / "
        f"{mb(month_rows * compact_month * scale)} |",
        f"| all-time summary, GROUP BY | {ms(big_reads['summary all-time'])} "
        f"| ~{big_reads['summary all-time'] * scale:,.0f} s (linear) |",
        f"| all-time top-50 from rollup | {ms(big_reads['rollup all-time'])} | about the same: "
        f"50 index entries + 50 customer lookups, B-tree one level deeper "
        f"({math.ceil(math.log(customers * scale, 300))} vs {math.ceil(math.log(customers, 300))})"
        " |",
    ]
    for label, rows in window_rows.items():
        m = big_reads[f"months+edges {label}"]
        lines.append(
            f"| months+edges {label}: rows aggregated / time | {rows:,} / {ms(m)} "
            f"| {rows * scale:,.0f} / ~{m * scale:,.0f} s (linear) |"
        )
    lines.append(
        f"| full recomputation (backfill) totals / months | {ms(backfill)} / {ms(backfill_m)} "
        f"| ~{backfill * scale / 60:,.0f} min / ~{backfill_m * scale / 60:,.0f} min |"
    )
    for variant in ("a", "b", "b1"):
        extra = statistics.median(s["trigger_s"] for s in seeds[variant]) / n
        o1 = statistics.median(one[variant]) - statistics.median(one["none"])
        ok = statistics.median(thousand[variant]) - statistics.median(thousand["none"])
        lines.append(
            f"| write cost {variant}: per seeded order (inside triggers) / per cancel of 1 / "
            f"per order in a cancel of 1,000 | {extra * 1e6:+,.1f} µs / {o1 * 1e3:+,.2f} ms / "
            f"{ok / CANCEL_BATCH * 1e6:+,.1f} µs | same per order (+ cache misses once "
            f"customer_totals ({mb(customers * compact_customer * scale)}+) outgrows RAM); "
            f"loading 1B orders: +{extra * 1e9 / 3600:,.1f} h |"
        )
    lines.append(
        f"| seed with (b) at {args.big:,} | {big_seed['seconds']:.0f} s "
        f"| {args.big / big_seed['seconds']:,.0f} orders/s (vs "
        f"{n / base_seed:,.0f} without trigger at {n:,}); inside triggers "
        f"{big_seed['trigger_s'] / args.big * 1e6:,.1f} µs/order |"
    )
    if small_sizes.get("b"):
        s = small_sizes["b"]
        lines.append(
            f"| at {n:,}: customer_totals / month rows | {s['customer_totals_rows']:,} / "
            f"{s['customer_month_totals_rows']:,} | |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
