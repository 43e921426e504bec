"""Migrations on databases that hold data: killed at any moment, refused on servers until
`ordercli migrate` is run, printed by `migrate --sql`, and upgrading rows unchanged."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults import Child, children, make_read_only, probe, wait_until
from helpers import add_customer, add_order, describe, invariant_violations, opened, scalar

import ordercli.migrations as migrations
from ordercli.db import database
from ordercli.migrations import LATEST_VERSION, MIGRATIONS

KILL_ROUNDS = 4
MAX_KILLS_PER_ROUND = 8


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def is_mysql(url: str) -> bool:
    return url.startswith("mysql:")


@contextlib.contextmanager
def schema_version(version: int) -> Iterator[None]:
    """Run as the ordercli that had migrations 1..version only."""
    saved = migrations.MIGRATIONS, migrations.LATEST_VERSION
    migrations.MIGRATIONS = MIGRATIONS[:version]
    migrations.LATEST_VERSION = version
    try:
        yield
    finally:
        migrations.MIGRATIONS, migrations.LATEST_VERSION = saved


def _drop_everything(url: str) -> None:
    """Back to an empty database (the test's own, throw-away one)."""
    if is_sqlite(url):
        path = Path(url[len("sqlite:///") :])
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()
        return
    with probe(url) as side:
        if is_mysql(url):
            side.execute("SET FOREIGN_KEY_CHECKS = 0")
            for table in ("order_event", "order_item", "orders", "customer", "ordercli_migration"):
                side.execute(f"DROP TABLE IF EXISTS {table}")
        else:
            side.execute(
                "DROP TABLE IF EXISTS order_event, order_item, orders, customer, "
                "ordercli_migration CASCADE"
            )
            side.execute("DROP EXTENSION IF EXISTS pg_trgm")


def _old_database_with_data(url: str, version: int, orders: int = 40) -> None:
    with schema_version(version), opened(url):
        for n in range(orders // 4):
            customer = add_customer(f"old{n}@example.com", name=f"Old {n}")
            for status in ("draft", "paid", "shipped", "cancelled"):
                add_order(customer, status, items=[("SKU-1", 2, 250), ("SKU-9", 1, 1999)])


def _statements_echoed(child: Child) -> int:
    fd = child._err.fileno()
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0).count(b"SQL: ")


def _kill_chain(url: str, rng: random.Random) -> list[str]:
    """`migrate` runs again and again, each killed once it has echoed a random number of
    statements (and a random few ms more), until one finishes. Returns what happened."""
    happened: list[str] = []
    with children() as started:
        for _ in range(MAX_KILLS_PER_ROUND):
            target = rng.randint(1, 14)
            child = Child.ordercli(url, "--echo-sql", "migrate")
            started.append(child)
            while child.running() and _statements_echoed(child) < target:
                time.sleep(0.001)
            time.sleep(rng.choice((0, 0, 0.002, 0.01, 0.03)))
            seen = _statements_echoed(child)
            if child.kill():
                happened.append(f"killed after {seen} statements")
                continue
            result = child.result()
            assert result.returncode == 0, result.describe()
            happened.append(f"finished ({seen} statements)")
            break
    return happened


@pytest.mark.subprocess
def test_migrate_killed_at_many_moments_is_finished_by_the_next_run(db_url, cli):
    """First use of an empty database and upgrades of a version-1 database holding data,
    killed (SIGKILL) after 1..14 echoed statements, again and again: the next `migrate`
    finishes, and seed and list work."""
    rng = random.Random(14)
    report = []
    kills = 0
    for round_no in range(KILL_ROUNDS):
        _drop_everything(db_url)
        upgrade = round_no > 0
        if upgrade:
            _old_database_with_data(db_url, version=1)
        happened = _kill_chain(db_url, rng)
        kills += sum(h.startswith("killed") for h in happened)
        report.append(("upgrade" if upgrade else "fresh") + ": " + ", ".join(happened))
        result = cli(db_url, "migrate")
        assert result.exit_code == 0, describe(result) + "\n" + "\n".join(report)
        assert result.stdout.startswith(f"Schema version {LATEST_VERSION}"), result.stdout
        again = cli(db_url, "migrate", echo=True)
        assert "(up to date)" in again.stdout, describe(again)
        seeded = cli(db_url, "seed", "--count", "30", "--format", "json")
        assert seeded.exit_code == 0, describe(seeded)
        listed = cli(db_url, "list", "--limit", "0", "--format", "json")
        assert listed.exit_code == 0, describe(listed)
        assert len(json.loads(listed.stdout)) == 30 + (40 if upgrade else 0)
        with opened(db_url):
            assert invariant_violations() == dict.fromkeys(invariant_violations(), 0)
            rows = database.execute_sql("SELECT id FROM ordercli_migration ORDER BY id")
            assert [r[0] for r in rows.fetchall()] == [m.id for m in MIGRATIONS]
    print(f"migrate kills ({db_url.split(':')[0]}): {kills}; " + " | ".join(report))
    assert kills >= 6, report


def _snapshot(url: str) -> dict[str, Any]:
    """Everything ordercli shows about every order and customer."""
    listed = json.loads(_ok(url, "list", "--limit", "0", "--include-archived", "--format", "json"))
    shown = [
        json.loads(_ok(url, "show", str(row["id"]), "--format", "json")) for row in listed[::4]
    ]
    summary = json.loads(_ok(url, "summary", "--limit", "0", "--format", "json"))
    return {"list": listed, "show": shown, "summary": summary}


_CLI: Any = None


def _ok(url: str, *args: str) -> str:
    result = _CLI(url, *args)
    assert result.exit_code == 0, describe(result)
    return str(result.stdout)


def test_upgrade_from_the_previous_version_reads_every_row_back_the_same(db_url, cli):
    """A database seeded by the ordercli before migration 3, upgraded: every order,
    item, event and customer reads back the same."""
    global _CLI
    _CLI = cli
    previous = LATEST_VERSION - 1
    with schema_version(previous):
        assert cli(db_url, "seed", "--count", "80", "--seed", "5").exit_code == 0
        cancelled = cli(db_url, "cancel", "1", "2", "3", "--reason", "früh")
        assert cancelled.exit_code in (0, 1), describe(cancelled)
        assert cli(db_url, "archive", "4", "5").exit_code == 0
        before = _snapshot(db_url)
        with opened(db_url):
            raw_before = _raw_rows()
    result = cli(db_url, "migrate")
    assert result.exit_code == 0, describe(result)
    assert f"Applied {MIGRATIONS[-1].label}" in result.stderr
    after = _snapshot(db_url)
    assert after == before
    with opened(db_url):
        assert _raw_rows() == raw_before


def _raw_rows() -> dict[str, list[tuple[Any, ...]]]:
    from ordercli.timeutil import as_utc

    def norm(value: Any) -> Any:
        if hasattr(value, "year") or (isinstance(value, str) and value[:2] in ("19", "20")):
            return as_utc(value)
        if isinstance(value, bool):
            return int(value)
        return value

    out = {}
    for table in ("customer", "orders", "order_item", "order_event"):
        cursor = database.execute_sql(f"SELECT * FROM {table} ORDER BY id")
        out[table] = [tuple(norm(v) for v in row) for row in cursor.fetchall()]
    return out


def test_servers_refuse_other_commands_until_migrate_sqlite_upgrades(db_url, cli):
    _old_database_with_data(db_url, version=LATEST_VERSION - 1, orders=4)
    result = cli(db_url, "list", "--format", "json")
    if is_sqlite(db_url):
        assert result.exit_code == 0, describe(result)
        assert len(json.loads(result.stdout)) == 4
        with opened(db_url):
            assert scalar("SELECT MAX(id) FROM ordercli_migration") == LATEST_VERSION
        return
    assert result.exit_code == 1, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), describe(result)
    assert "ordercli migrate" in lines[0]
    assert result.stdout == ""
    for command in (["seed", "--count", "1"], ["cancel", "1"], ["summary"], ["show", "1"]):
        refused = cli(db_url, *command)
        assert refused.exit_code == 1 and "ordercli migrate" in refused.stderr, describe(refused)
    assert cli(db_url, "migrate").exit_code == 0
    assert len(json.loads(cli(db_url, "list", "--format", "json").stdout)) == 4


def test_an_empty_server_database_still_gets_its_schema_on_first_use(db_url, cli):
    result = cli(db_url, "list", "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == []


def test_migrate_sql_prints_the_pending_statements_and_changes_nothing(db_url, cli):
    _old_database_with_data(db_url, version=1, orders=4)
    with opened_any(db_url) as tables_before:
        pass
    result = cli(db_url, "migrate", "--sql")
    assert result.exit_code == 0, describe(result)
    text = result.stdout
    assert f"-- {MIGRATIONS[1].label}" in text and f"-- {MIGRATIONS[2].label}" in text
    assert f"-- {MIGRATIONS[0].label}" not in text
    assert "orders_customer_summary_idx" in text
    if db_url.startswith("postgresql:") and "6432" not in db_url:
        assert "CREATE INDEX CONCURRENTLY" in text
        assert "timestamptz" in text
    with opened_any(db_url) as tables_after:
        pass
    assert tables_after == tables_before
    with probe(db_url) as side:
        assert side.scalar("SELECT MAX(id) FROM ordercli_migration") == 1
    done = cli(db_url, "migrate")
    assert done.exit_code == 0, describe(done)
    assert "nothing to do" in cli(db_url, "migrate", "--sql").stdout


@contextlib.contextmanager
def opened_any(url: str) -> Iterator[dict[str, Any]]:
    """The schema as the catalog sees it, without opening through ordercli."""
    with probe(url) as side:
        if is_sqlite(url):
            rows = side.rows("SELECT type, name, sql FROM sqlite_master ORDER BY name")
        elif is_mysql(url):
            rows = side.rows(
                "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 3"
            )
        else:
            rows = side.rows(
                "SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
                "WHERE n.nspname = 'public' ORDER BY 1, 3"
            )
        yield {"rows": rows}


def test_postgres_invalid_index_from_an_interrupted_build_is_rebuilt(postgres_url, cli):
    """A CREATE INDEX CONCURRENTLY that failed half-way leaves an INVALID index with the
    name; the next migrate drops it and builds the index again (CONCURRENTLY)."""
    _old_database_with_data(postgres_url, version=1, orders=8)
    with probe(postgres_url) as side:
        with pytest.raises(Exception, match="could not create unique index"):
            side.execute(
                "CREATE UNIQUE INDEX CONCURRENTLY orders_customer_summary_idx ON orders (status)"
            )
        valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_customer_summary_idx'::regclass"  # noqa: E501
        assert side.scalar(valid) is False
    result = cli(postgres_url, "migrate", echo=True)
    assert result.exit_code == 0, describe(result)
    assert "DROP INDEX CONCURRENTLY IF EXISTS orders_customer_summary_idx" in result.sql
    assert any(
        s.startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_summary_idx")
        for s in result.sql
    )
    with probe(postgres_url) as side:
        assert side.scalar(valid) is True
        assert (
            side.scalar(
                "SELECT indisunique FROM pg_index WHERE indexrelid = 'orders_customer_summary_idx'::regclass"  # noqa: E501
            )
            is False
        )


def test_postgres_upgrade_builds_indexes_concurrently_outside_a_transaction(postgres_url, cli):
    _old_database_with_data(postgres_url, version=1, orders=8)
    result = cli(postgres_url, "migrate", echo=True)
    assert result.exit_code == 0, describe(result)
    creates = [s for s in result.sql if s.startswith("CREATE INDEX")]
    assert creates and all("CONCURRENTLY" in s for s in creates), creates
    with probe(postgres_url) as side:
        types = side.rows(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE column_name IN ('created_at', 'updated_at') AND table_schema = 'public' "
            "AND table_name <> 'ordercli_migration'"
        )
        assert {t[2] for t in types} == {"timestamp with time zone"}, types


# --- --dry-run in a read-only transaction -----------------------------------------------------


def test_dry_run_takes_no_write_lock(db_url, cli):
    with opened(db_url):
        customer = add_customer("dry@example.com")
        order = add_order(customer, "paid")
    for command in (["cancel", str(order), "--dry-run"], ["archive", str(order), "--dry-run"]):
        result = cli(db_url, *command, "--format", "json", echo=True)
        assert result.exit_code == 0, describe(result)
        assert not any("FOR UPDATE" in s.upper() for s in result.sql), result.sql
        assert json.loads(result.stdout)[0]["changed"] is True
    with opened(db_url):
        assert scalar(f"SELECT status FROM orders WHERE id = {order}") == "paid"
        assert scalar("SELECT COUNT(*) FROM order_event") == 0


def test_dry_run_works_on_a_read_only_postgres_connection(postgres_url, cli):
    with opened(postgres_url):
        customer = add_customer("ro@example.com")
        order = add_order(customer, "paid")
        name = postgres_url.rsplit("/", 1)[1]
        database.execute_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    dry = cli(postgres_url, "cancel", str(order), "--dry-run", "--format", "json")
    assert dry.exit_code == 0, describe(dry)
    assert json.loads(dry.stdout)[0]["changed"] is True
    assert cli(postgres_url, "archive", str(order), "--dry-run").exit_code == 0
    real = cli(postgres_url, "cancel", str(order))
    assert real.exit_code == 1 and real.stderr.startswith("Error:"), describe(real)
    listed = cli(postgres_url, "list", "--format", "json")
    assert listed.exit_code == 0, describe(listed)


@pytest.mark.subprocess
def test_read_only_sqlite_file_can_be_listed_and_dry_run(tmp_path, cli):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "orders.db"
    url = f"sqlite:///{db}"
    assert cli(url, "seed", "--count", "20").exit_code == 0
    # As another tool leaves it: rollback journal (a WAL file in a read-only directory
    # cannot be opened by anyone without its -shm file).
    with probe(url) as side:
        assert side.scalar("PRAGMA journal_mode = DELETE") == "delete"
    undo = make_read_only(db, folder)
    if undo is None:
        pytest.skip("cannot make the file read-only here")
    try:
        with children() as started:
            for args in (["list", "--limit", "3"], ["cancel", "1", "--dry-run"], ["show", "1"]):
                started.append(Child.ordercli(url, *args, cwd=folder))
                result = started[-1].wait(timeout=60)
                assert result.returncode in (0, 1), result.describe()
                if args[0] == "cancel" and result.returncode == 1:
                    assert "shipped" in result.stderr, result.describe()
                    continue
                assert result.returncode == 0, result.describe()
    finally:
        undo()


# --- SQLite ----------------------------------------------------------------------------------


def test_sqlite_email_search_folds_unicode_like_python(sqlite_url, cli):
    with opened(sqlite_url):
        customer = add_customer("Ünïcødé.Kunde@example.com")
        order = add_order(customer)
        add_customer("other@example.com")
    for needle in ("Ünïcødé", "ünïcødé", "ÜNÏCØDÉ", "Ün", "cødé.kunde"):
        result = cli(sqlite_url, "list", "--email", needle, "--format", "json")
        assert result.exit_code == 0, describe(result)
        assert [r["id"] for r in json.loads(result.stdout)] == [order], needle


def test_sqlite_timestamps_in_other_forms_are_normalised_by_the_upgrade(sqlite_url, cli):
    with schema_version(LATEST_VERSION - 1), opened(sqlite_url):
        customer = add_customer("tz@example.com")
        forms = {
            "2026-03-01T12:00:00": "2026-03-01T12:00:00+00:00",
            "2026-03-01 12:00:00+02:00": "2026-03-01T10:00:00+00:00",
            "2026-03-01": "2026-03-01T00:00:00+00:00",
            1772366400: "2026-03-01T12:00:00+00:00",
            "2026-03-01T11:00:00.250Z": "2026-03-01T11:00:00.250000+00:00",
        }
        ids = {}
        for value in forms:
            order = add_order(customer)
            database.execute_sql(
                "UPDATE orders SET created_at = ?, updated_at = ? WHERE id = ?",
                (value, value, order),
            )
            ids[order] = forms[value]
    listed = cli(sqlite_url, "list", "--format", "json")
    assert listed.exit_code == 0, describe(listed)
    shown = {r["id"]: r["created_at"] for r in json.loads(listed.stdout)}
    for order, expected in ids.items():
        assert shown[order].replace("Z", "+00:00") == expected
    since = cli(sqlite_url, "list", "--since", "2026-03-01T11:30", "--format", "json")
    assert sorted(r["id"] for r in json.loads(since.stdout)) == sorted(
        o for o, e in ids.items() if e >= "2026-03-01T11:30"
    )


def test_sqlite_unreadable_timestamp_stops_the_upgrade_with_one_error_line(sqlite_url, cli):
    with schema_version(LATEST_VERSION - 1), opened(sqlite_url):
        order = add_order(add_customer("bad@example.com"))
        database.execute_sql(f"UPDATE orders SET created_at = 'yesterday' WHERE id = {order}")
    result = cli(sqlite_url, "list")
    assert result.exit_code == 1, describe(result)
    line = result.stderr.strip()
    assert line.startswith("Error: orders.created_at of id") and "'yesterday'" in line, line
    with probe(sqlite_url) as side:
        assert side.scalar("SELECT MAX(id) FROM ordercli_migration") == LATEST_VERSION - 1


# --- MariaDB ---------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_mysql_ctrl_c_exits_130(mysql_url, cli):
    """SIGINT at spread moments of a seed (after its first rows are committed)."""
    assert cli(mysql_url, "migrate").exit_code == 0
    codes = []
    for delay in (0.05, 0.2, 0.5, 0.9, 1.4):
        before = _customers(mysql_url)
        with children() as started:
            child = Child.ordercli(
                mysql_url, "seed", "--count", "300000", preexec_fn=_ctrl_c_as_on_a_terminal
            )
            started.append(child)
            wait_until(
                lambda b=before: _customers(mysql_url) > b, "the seed to commit", watch=child
            )
            time.sleep(delay)
            os.kill(child.pid, signal.SIGINT)
            result = child.wait(timeout=60)
        assert "Traceback" not in result.stderr, result.describe()
        assert "(0, '')" not in result.stderr, result.describe()
        codes.append(result.returncode)
    assert set(codes) == {130}, codes


def _ctrl_c_as_on_a_terminal() -> None:
    """SIGINT's default action, as a terminal's foreground process has it: a suite started
    in the background (`cmd &` in a script, as a CI runner may) hands its children SIGINT
    ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _customers(url: str) -> int:
    with probe(url) as side:
        return int(side.scalar("SELECT COUNT(*) FROM customer"))


def test_mysql_cancel_with_a_large_reason_stays_within_max_allowed_packet(mysql_url, cli):
    assert cli(mysql_url, "seed", "--count", "2000", "--seed", "1").exit_code == 0
    with opened(mysql_url):
        ids = [
            r[0]
            for r in database.execute_sql(
                "SELECT id FROM orders WHERE status IN ('draft', 'paid') ORDER BY id"
            ).fetchall()
        ]
    reason = "x" * 9000
    with probe(mysql_url) as side:
        packet = side.scalar("SELECT @@max_allowed_packet")
    assert len(ids) * len(reason) > packet // 2
    result = cli(mysql_url, "cancel", *map(str, ids), "--reason", reason, "--format", "json")
    assert result.exit_code == 0, describe(result)
    with opened(mysql_url):
        assert scalar("SELECT COUNT(*) FROM order_event") == len(ids)


# --- rows other writers can store (issue 13) ---------------------------------------------------

REFUSED = "refused"
# (backends, label, statement, what list --format json shows for the order, or REFUSED)
HOSTILE_ROWS: list[tuple[tuple[str, ...], str, str, Any]] = [
    (("sqlite",), "total-text", "UPDATE orders SET total_cents = 'abc' WHERE id = {o}", REFUSED),
    (("sqlite",), "total-real", "UPDATE orders SET total_cents = 12.5 WHERE id = {o}", REFUSED),
    (
        ("sqlite",),
        "quantity-real",
        "UPDATE order_item SET quantity = 1.5 WHERE order_id = {o}",
        REFUSED,
    ),
    (("sqlite",), "epoch-int", "UPDATE orders SET created_at = 1772366400 WHERE id = {o}", REFUSED),
    (
        ("sqlite",),
        "iso-T",
        "UPDATE orders SET created_at = '2026-03-01T12:00:00' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("sqlite",),
        "offset",
        "UPDATE orders SET created_at = '2026-03-01 12:00:00+02:00' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("sqlite",),
        "date-only",
        "UPDATE orders SET created_at = '2026-03-01' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("sqlite",),
        "month-13",
        "UPDATE orders SET created_at = '2026-13-01 00:00:00' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("sqlite",),
        "year-0",
        "UPDATE orders SET created_at = '0000-01-01 00:00:00' WHERE id = {o}",
        REFUSED,
    ),
    (("sqlite",), "bool-2", "UPDATE orders SET is_archived = 2 WHERE id = {o}", REFUSED),
    (("sqlite",), "email-blob", "UPDATE customer SET email = x'ff' WHERE id = {c}", REFUSED),
    (
        ("sqlite",),
        "email-bad-utf8",
        "UPDATE customer SET email = CAST(x'6262ff40782e696f' AS TEXT) WHERE id = {c}",
        {"email": "bb\ufffd@x.io"},
    ),
    (
        ("sqlite",),
        "microseconds",
        "UPDATE orders SET created_at = '2026-03-01 12:00:00.5' WHERE id = {o}",
        {"created_at": "2026-03-01T12:00:00.500000+00:00"},
    ),
    (
        ("postgresql",),
        "infinity",
        "UPDATE orders SET created_at = 'infinity' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("postgresql",),
        "-infinity",
        "UPDATE orders SET updated_at = '-infinity' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("postgresql",),
        "year-10000",
        "UPDATE orders SET created_at = '10000-01-01 00:00:00+00' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("postgresql",),
        "with-offset",
        "UPDATE orders SET created_at = '2026-03-01 12:00:00+02' WHERE id = {o}",
        {"created_at": "2026-03-01T10:00:00+00:00"},
    ),
    (
        ("postgresql",),
        "berlin-session-now",
        "SET TIME ZONE 'Europe/Berlin'; UPDATE orders SET created_at = '2026-03-01 12:00:00' WHERE id = {o}",  # noqa: E501
        {"created_at": "2026-03-01T11:00:00+00:00"},
    ),
    (
        ("mysql",),
        "zero-date",
        "UPDATE orders SET created_at = '0000-00-00 00:00:00' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("mysql",),
        "zero-month",
        "UPDATE orders SET created_at = '2026-00-10 00:00:00' WHERE id = {o}",
        REFUSED,
    ),
    (("mysql",), "total-text", "UPDATE orders SET total_cents = 'abc' WHERE id = {o}", REFUSED),
    (
        ("sqlite", "postgresql", "mysql"),
        "status-padded",
        "UPDATE orders SET status = 'shipped ' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("sqlite", "postgresql", "mysql"),
        "status-upper",
        "UPDATE orders SET status = 'PAID' WHERE id = {o}",
        REFUSED,
    ),
    (
        ("sqlite", "postgresql", "mysql"),
        "negative-total",
        "UPDATE orders SET total_cents = -1 WHERE id = {o}",
        REFUSED,
    ),
    (
        ("postgresql", "mysql"),
        "total-rounded",  # the engine rounds a decimal into an integer column: stores 13
        "UPDATE orders SET total_cents = 12.5 WHERE id = {o}",
        {"total_cents": 13},
    ),
]


# Each backend of the suite (conftest's db_url) and the engine whose values it can hold:
# only the values an engine can hold are tried on it, so no case is a skip.
ENGINE_OF_BACKEND = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "pgbouncer": "postgresql",
    "citus": "postgresql",
}
HOSTILE_CASES = [
    pytest.param(backend, row, id=f"{backend}-{row[1]}")
    for backend, engine in ENGINE_OF_BACKEND.items()
    for row in HOSTILE_ROWS
    if engine in row[0]
]


@pytest.mark.parametrize(("db_url", "case"), HOSTILE_CASES, indirect=["db_url"])
def test_rows_other_writers_store_are_refused_or_read_back(db_url, cli, case):
    _, label, statement, expected = case
    with opened(db_url):
        customer = add_customer("hostile@example.com")
        order = add_order(customer, "paid", items=[("SKU-1", 1, 1000)])
    refused = False
    with probe(db_url) as side:
        try:
            for part in statement.format(o=order, c=customer).split("; "):
                side.execute(part)
        except Exception:
            refused = True
    if expected is REFUSED:
        assert refused, f"{label}: the database stored it"
        return
    assert not refused, f"{label}: refused"
    listed = cli(db_url, "list", "--format", "json")
    assert listed.exit_code == 0, describe(listed)
    row = json.loads(listed.stdout)[0]
    for key, value in expected.items():
        assert row[key] == value, (label, row)
    for command in (["list"], ["show", str(order)], ["summary"]):
        for fmt in ("table", "json", "csv"):
            result = cli(db_url, *command, "--format", fmt)
            assert result.exit_code == 0, describe(result)
            assert "Traceback" not in result.stdout + result.stderr
