"""Timestamps are UTC in the database and in the output, whatever the local time zones.

The machine runs in Asia/Kolkata (UTC+05:30, no DST) and so does the PostgreSQL
session (libpq sets the session TimeZone from PGTZ): a timestamp stored as local
wall time instead of UTC would be 5 h 30 off, which the checks below cannot miss.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import add_customer, add_order, describe, opened, pg_connect, run_script

UTC = datetime.UTC
KOLKATA_ZONE = "Asia/Kolkata"
KOLKATA = {"TZ": KOLKATA_ZONE, "PGTZ": KOLKATA_ZONE}
SLACK = datetime.timedelta(minutes=1)
YEAR = datetime.timedelta(days=365)
SQLITE_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$")
UTC_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(\+00:00|Z)$")
TIMESTAMP_COLUMNS = (
    ("customer", "created_at"),
    ("orders", "created_at"),
    ("orders", "updated_at"),
    ("order_event", "created_at"),
)


# --- reading and writing the database behind ordercli's back ------------------------------


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def is_mysql(url: str) -> bool:
    return url.startswith("mysql:")


KOLKATA_OFFSET = "+05:30"  # MariaDB's named zones need the tz tables; an offset does not


class _MySQLConnection:
    """PyMySQL with the small `execute(...).fetchone()` surface sqlite3/psycopg offer."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = None) -> Any:
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        return cursor


@contextlib.contextmanager
def _mysql_connection(url: str, zone: str) -> Iterator[Any]:
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(url)
    offset = "+00:00" if zone == "UTC" else KOLKATA_OFFSET
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.path.lstrip("/"),
        autocommit=True,
        init_command=f"SET time_zone = '{offset}'",
    )
    try:
        yield _MySQLConnection(conn)
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def mysql_sessions_in_kolkata(request: pytest.FixtureRequest) -> Iterator[None]:
    """On MySQL/MariaDB, every new session (ordercli's too) starts in +05:30."""
    url = request.getfixturevalue("db_url") if "db_url" in request.fixturenames else ""
    if not is_mysql(url):
        yield
        return
    with _mysql_connection(url, "UTC") as conn:
        conn.execute(f"SET GLOBAL time_zone = '{KOLKATA_OFFSET}'")
        try:
            yield
        finally:
            conn.execute("SET GLOBAL time_zone = DEFAULT")


def sqlite_path(url: str) -> str:
    return url[len("sqlite:///") :]


@contextlib.contextmanager
def raw_connection(url: str, zone: str = "UTC") -> Iterator[Any]:
    """A plain driver connection; on PostgreSQL and MySQL its session time zone is `zone`."""
    if is_mysql(url):
        with _mysql_connection(url, zone) as conn:
            yield conn
        return
    if is_sqlite(url):
        conn = sqlite3.connect(sqlite_path(url))
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()
        return
    # One transaction (committed at the end), its TimeZone set for it alone: PgBouncer
    # ignores `options=-c TimeZone=...`, and a session SET would outlive this client there.
    with pg_connect(url) as conn:
        conn.execute("SELECT set_config('TimeZone', %s, true)", (zone,))
        assert conn.execute("SHOW TimeZone").fetchone()[0] == zone
        yield conn


def as_instant(value: Any) -> datetime.datetime:
    """A stored timestamp read back as an aware UTC datetime (naive values are UTC)."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    assert isinstance(value, datetime.datetime), value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def stored(
    url: str, table: str, column: str, zone: str = "UTC", key: str = "id"
) -> dict[int, datetime.datetime]:
    """key -> instant of `table.column`, read in a session whose TimeZone is `zone`."""
    with raw_connection(url, zone) as conn:
        rows = conn.execute(f"SELECT {key}, {column} FROM {table}").fetchall()
    return {int(row_id): as_instant(value) for row_id, value in rows}


def assert_stored_as_utc(url: str) -> None:
    """SQLite: UTC text `YYYY-MM-DD HH:MM:SS[.ffffff]` and booleans 0/1.
    PostgreSQL: a reader in any session TimeZone sees the same instants."""
    if is_sqlite(url):
        with raw_connection(url) as conn:
            for table, column in TIMESTAMP_COLUMNS:
                rows = conn.execute(f"SELECT id, typeof({column}), {column} FROM {table}")
                bad = [
                    row for row in rows if row[1] != "text" or not SQLITE_TIMESTAMP.match(row[2])
                ]
                assert bad == [], f"{table}.{column} stored as {bad[:5]}"
            for table, column in (("customer", "is_active"), ("orders", "is_archived")):
                kinds = conn.execute(f"SELECT DISTINCT typeof({column}), {column} FROM {table}")
                assert set(kinds) <= {("integer", 0), ("integer", 1)}, f"{table}.{column}"
        return
    for table, column in TIMESTAMP_COLUMNS:
        in_utc = stored(url, table, column, "UTC")
        assert stored(url, table, column, KOLKATA_ZONE) == in_utc, f"{table}.{column}"


def insert_with_database_defaults(url: str) -> tuple[int, int]:
    """A customer and an order as the shop's application writes them: no timestamps given,
    so created_at/updated_at come from the column DEFAULTs, in a Kolkata session."""
    p = "?" if is_sqlite(url) else "%s"
    with raw_connection(url, KOLKATA_ZONE) as conn:
        customer_id = conn.execute(
            "INSERT INTO customer (name, email) VALUES ('Shop App', 'app@example.com') RETURNING id"
        ).fetchone()[0]
        order_id = conn.execute(
            f"INSERT INTO orders (customer_id, status) VALUES ({p}, 'paid') RETURNING id",
            (customer_id,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO order_item (order_id, sku, quantity, unit_price_cents) "
            f"VALUES ({p}, 'SKU-1', 1, 0)",
            (order_id,),
        )
    return int(customer_id), int(order_id)


@pytest.fixture
def kolkata_process() -> Iterator[None]:
    """This test process (its libc local time and libpq's PGTZ) in Asia/Kolkata."""
    saved = {key: os.environ.get(key) for key in KOLKATA}
    os.environ.update(KOLKATA)
    time.tzset()
    try:
        assert time.strftime("%z", time.localtime()) == "+0530"
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        time.tzset()


def ordercli(url: str, *args: str) -> Any:
    """Run the console script in Kolkata and return its parsed JSON output."""
    result = run_script(["--db", url, *args, "--format", "json"], env=KOLKATA)
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout)


def assert_printed_utc(text: str | None, instant: datetime.datetime) -> None:
    assert text is not None and UTC_ISO.match(text), f"{text!r} is not ISO 8601 with +00:00 or Z"
    assert datetime.datetime.fromisoformat(text) == instant


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


# --- the tests ----------------------------------------------------------------------------


def test_libpq_takes_the_session_time_zone_from_pgtz(db_url, kolkata_process):
    """The premise of this module: PGTZ really puts a PostgreSQL session in Kolkata
    (and, on MySQL, the server's global time_zone puts every new session there)."""
    if is_mysql(db_url):
        from ordercli.db import database

        with opened(db_url):
            zone = database.execute_sql("SELECT @@session.time_zone").fetchone()[0]
        assert zone == KOLKATA_OFFSET
        return
    if is_sqlite(db_url):
        with raw_connection(db_url) as conn:  # SQLite's clock is UTC whatever TZ says
            text = conn.execute("SELECT CURRENT_TIMESTAMP").fetchone()[0]
        assert abs(as_instant(text) - now()) < SLACK
        return
    with pg_connect(db_url) as conn:
        assert conn.execute("SHOW TimeZone").fetchone()[0] == KOLKATA_ZONE


@pytest.mark.subprocess
def test_seed_in_another_time_zone_stores_and_prints_utc(db_url):
    before = now()
    # With this seed (today's generator) the newest order is about 1.4 h old and the oldest
    # 0.4 h younger than a year: a clock 5 h 30 off puts one of them outside the window.
    report = ordercli(db_url, "seed", "--count", "1000", "--seed", "7")
    after = now()
    assert report["orders"] == 1000

    created = stored(db_url, "orders", "created_at")
    updated = stored(db_url, "orders", "updated_at")
    customers = stored(db_url, "customer", "created_at")
    assert len(created) == 1000
    assert min(created.values()) >= before - YEAR - SLACK, min(created.values())
    assert max(created.values()) <= after + SLACK, max(created.values())
    assert all(before - YEAR - SLACK <= t <= after + SLACK for t in updated.values())
    assert all(before - YEAR - SLACK <= t <= after + SLACK for t in customers.values())
    assert_stored_as_utc(db_url)

    listed = ordercli(db_url, "list", "--limit", "0")
    assert len(listed) == 1000
    for row in listed:
        assert_printed_utc(row["created_at"], created[row["id"]])
    first = min(created)
    shown = ordercli(db_url, "show", str(first))
    assert_printed_utc(shown["created_at"], created[first])
    assert_printed_utc(shown["updated_at"], updated[first])
    assert_printed_utc(shown["customer"]["created_at"], customers[shown["customer"]["id"]])


@pytest.mark.subprocess
def test_database_defaults_and_cancel_store_utc_in_another_time_zone(db_url):
    with opened(db_url):
        seeded_customer = add_customer("seeded@example.com")
        old = add_order(
            seeded_customer, "paid", created_at=datetime.datetime(2025, 6, 1, 8, 15, 30)
        )
    before = now()
    customer_id, app_order = insert_with_database_defaults(db_url)
    cancelled = ordercli(db_url, "cancel", str(old), str(app_order), "--reason", "tz")
    after = now()
    assert [row["changed"] for row in cancelled] == [True, True]

    def recent(instant: datetime.datetime) -> bool:
        # SQLite's CURRENT_TIMESTAMP has whole seconds, hence the slack below `before`.
        return before - SLACK <= instant <= after + SLACK

    customer_created = stored(db_url, "customer", "created_at")
    created = stored(db_url, "orders", "created_at")
    updated = stored(db_url, "orders", "updated_at")
    events = stored(db_url, "order_event", "created_at", key="order_id")
    assert recent(customer_created[customer_id]), (customer_created[customer_id], before)
    assert recent(created[app_order]), (created[app_order], before)
    assert created[old] == datetime.datetime(2025, 6, 1, 8, 15, 30, tzinfo=UTC)
    assert recent(updated[app_order]) and recent(updated[old]), (updated, before)
    assert set(events) == {old, app_order}, "one event per cancelled order"
    assert all(recent(t) for t in events.values()), (events, before)
    assert_stored_as_utc(db_url)

    listed = {row["id"]: row for row in ordercli(db_url, "list")}
    assert set(listed) == {old, app_order}
    for order_id, row in listed.items():
        assert_printed_utc(row["created_at"], created[order_id])
    csv_run = run_script(["--db", db_url, "list", "--format", "csv"], env=KOLKATA)
    assert csv_run.returncode == 0, describe(csv_run)
    for row in csv.DictReader(io.StringIO(csv_run.stdout)):
        assert_printed_utc(row["created_at"], created[int(row["id"])])

    shown = ordercli(db_url, "show", str(app_order))
    assert_printed_utc(shown["created_at"], created[app_order])
    assert_printed_utc(shown["updated_at"], updated[app_order])
    assert_printed_utc(shown["customer"]["created_at"], customer_created[customer_id])
    assert len(shown["events"]) == 1
    assert_printed_utc(shown["events"][0]["created_at"], events[app_order])

    # The order the application wrote a moment ago is inside a window given in Kolkata time.
    local_start = (before - SLACK).astimezone(datetime.timezone(datetime.timedelta(hours=5.5)))
    recent_ids = [row["id"] for row in ordercli(db_url, "list", "--since", local_start.isoformat())]
    assert recent_ids == [app_order]


A = datetime.datetime(2026, 3, 1, 12, 0)  # 17:30 in Kolkata
B = datetime.datetime(2026, 2, 28, 23, 0)  # 1 March 04:30 in Kolkata
C = datetime.datetime(2026, 3, 1, 18, 45)  # 2 March 00:15 in Kolkata

WINDOWS = {
    ("--since", "2026-03-01T17:30:00+05:30"): "AC",  # the same instant as A: inclusive
    ("--until", "2026-03-01T17:30:00+05:30"): "B",  # exclusive
    ("--since", "2026-03-01T17:30:00.000001+05:30"): "C",
    ("--until", "2026-03-01T17:30:00.000001+05:30"): "AB",
    ("--since", "2026-03-01T12:00:00Z"): "AC",
    ("--since", "2026-03-01T13:00:00+01:00"): "AC",
    ("--since", "2026-03-01T12:00:00-01:00"): "C",
    ("--since", "2026-03-01T12:00:00"): "AC",  # no offset: UTC
    ("--until", "2026-03-01T12:00:00"): "B",
    ("--since", "2026-03-01"): "AC",  # a date is midnight UTC, not midnight in Kolkata
    ("--until", "2026-03-01"): "B",
    ("--until", "2026-03-02"): "ABC",
    ("--since", "2026-03-01", "--until", "2026-03-02"): "AC",
    ("--since", "2026-02-28T23:00:00", "--until", "2026-03-01T12:00:00"): "B",
}


def test_since_and_until_take_offsets_and_read_bare_dates_as_utc(db_url, cli, kolkata_process):
    with opened(db_url):
        customer = add_customer("window@example.com")
        ids = {
            name: add_order(customer, "paid", created_at=when)
            for name, when in zip("ABC", (A, B, C), strict=True)
        }
    names = {order_id: name for name, order_id in ids.items()}

    got = {}
    for window in WINDOWS:
        result = cli(db_url, "list", *window, "--format", "json")
        assert result.exit_code == 0, describe(result)
        got[window] = "".join(sorted(names[row["id"]] for row in json.loads(result.stdout)))
    assert got == WINDOWS

    listed = json.loads(cli(db_url, "list", "--format", "json").stdout)
    assert {row["id"]: row["created_at"] for row in listed}[ids["A"]] in (
        "2026-03-01T12:00:00+00:00",
        "2026-03-01T12:00:00Z",
    )

    result = cli(
        db_url, "summary", "--since", "2026-03-01T17:30:00+05:30", "--until", "2026-03-02",
        "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, describe(result)
    (row,) = json.loads(result.stdout)
    assert (row["orders"], row["paid_orders"]) == (2, 2)
    assert_printed_utc(row["last_order_at"], C.replace(tzinfo=UTC))
