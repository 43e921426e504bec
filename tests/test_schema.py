"""Schema: created by versioned migrations, with defaults and checks held by the database."""

from __future__ import annotations

import datetime
import json

import peewee
import pytest
from helpers import add_customer, add_order, describe, opened, scalar

from ordercli.db import database
from ordercli.migrations import LATEST_VERSION, MIGRATIONS
from ordercli.timeutil import as_utc


def test_migrate_creates_the_schema_and_a_second_run_changes_nothing(db_url, cli):
    first = cli(db_url, "migrate")
    assert first.exit_code == 0, describe(first)
    assert first.stdout.strip() == f"Schema version {LATEST_VERSION}"
    assert "Applied 0001_initial_schema" in first.stderr
    second = cli(db_url, "migrate", echo=True)
    assert second.exit_code == 0, describe(second)
    assert second.stdout.strip() == f"Schema version {LATEST_VERSION} (up to date)"
    ddl = [s for s in second.sql if s.upper().startswith(("CREATE TABLE ", "ALTER", "DROP"))]
    assert ddl == [], "an up-to-date schema is not touched"
    with opened(db_url):
        rows = database.execute_sql("SELECT id, name FROM ordercli_migration ORDER BY id")
        assert [tuple(r) for r in rows.fetchall()] == [(m.id, m.name) for m in MIGRATIONS]


def test_first_use_of_any_command_creates_the_schema(db_url, cli):
    result = cli(db_url, "list", "--format", "json")
    assert result.exit_code == 0, describe(result)
    with opened(db_url):
        tables = set(database.get_tables())
    assert {"customer", "orders", "order_item", "order_event", "ordercli_migration"} <= tables


def test_contract_columns_exist(db_url):
    expected = {
        "customer": {"id", "name", "email", "is_active", "created_at"},
        "orders": {
            "id",
            "customer_id",
            "status",
            "total_cents",
            "is_archived",
            "created_at",
            "updated_at",
        },
        "order_item": {"id", "order_id", "sku", "quantity", "unit_price_cents"},
        "order_event": {
            "id",
            "order_id",
            "from_status",
            "to_status",
            "reason",
            "actor",
            "created_at",
        },
    }
    with opened(db_url):
        for table, columns in expected.items():
            assert {c.name for c in database.get_columns(table)} >= columns, table
        fks = {(fk.column, fk.dest_table) for fk in database.get_foreign_keys("orders")}
        assert ("customer_id", "customer") in fks
        indexed = {tuple(i.columns) for i in database.get_indexes("order_item")}
        assert ("order_id",) in indexed


def test_database_defaults_serve_other_writers(db_url):
    """The shop's application inserts rows without naming the defaulted columns."""
    with opened(db_url):
        database.execute_sql("INSERT INTO customer (name, email) VALUES ('Raw', 'raw@example.com')")
        customer = scalar("SELECT id FROM customer WHERE email = 'raw@example.com'")
        database.execute_sql(f"INSERT INTO orders (customer_id) VALUES ({customer})")
        row = database.execute_sql(
            "SELECT o.status, o.total_cents, o.is_archived, o.created_at, o.updated_at, "
            "c.is_active, c.created_at FROM orders o JOIN customer c ON c.id = o.customer_id"
        ).fetchone()
    status, total, archived, created, updated, active, customer_created = row
    assert (status, total, bool(archived), bool(active)) == ("draft", 0, False, True)
    now = datetime.datetime.now(datetime.UTC)
    for value in (created, updated, customer_created):
        assert abs(as_utc(value) - now) < datetime.timedelta(minutes=5), value


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO orders (customer_id, status) VALUES ({customer}, 'refunded')",
        "INSERT INTO orders (customer_id, total_cents) VALUES ({customer}, -1)",
        "INSERT INTO orders (customer_id) VALUES (987654)",
        "INSERT INTO order_item (order_id, sku, quantity, unit_price_cents) "
        "VALUES ({order}, 'SKU-1', 0, 100)",
        "INSERT INTO order_item (order_id, sku, quantity, unit_price_cents) "
        "VALUES ({order}, 'SKU-1', 1, -5)",
        "INSERT INTO customer (name, email) VALUES ('Dup', 'taken@example.com')",
        "DELETE FROM customer WHERE id = {customer}",
    ],
    ids=[
        "unknown-status",
        "negative-total",
        "missing-customer",
        "zero-quantity",
        "negative-price",
        "duplicate-email",
        "delete-customer-with-orders",
    ],
)
def test_database_refuses_rows_that_break_the_rules(db_url, statement):
    with opened(db_url):
        customer = add_customer("taken@example.com")
        order = add_order(customer)
        # IntegrityError, except MariaDB reports a failed CHECK as an OperationalError.
        with pytest.raises((peewee.IntegrityError, peewee.OperationalError)), database.atomic():
            database.execute_sql(statement.format(customer=customer, order=order))
        assert scalar("SELECT COUNT(*) FROM customer") == 1
        assert scalar("SELECT COUNT(*) FROM orders") == 1


def test_sqlite_connections_enforce_foreign_keys(sqlite_url):
    with opened(sqlite_url) as conn:
        assert conn.backend.name == "sqlite"
        assert scalar("PRAGMA foreign_keys") == 1
        assert scalar("PRAGMA journal_mode") == "wal"


def test_deleting_an_order_cascades_to_its_items_only(db_url):
    with opened(db_url):
        customer = add_customer("m@example.com")
        doomed = add_order(customer, items=[("SKU-1", 1, 100), ("SKU-2", 2, 200)])
        kept = add_order(customer)
        database.execute_sql(f"DELETE FROM orders WHERE id = {doomed}")
        assert scalar("SELECT COUNT(*) FROM order_item") == 1
        assert scalar(f"SELECT COUNT(*) FROM order_item WHERE order_id = {kept}") == 1
        assert scalar("SELECT COUNT(*) FROM customer") == 1


def test_upgrade_from_schema_version_1_keeps_data_and_indexes_it(db_url, cli, monkeypatch):
    """A database made by 0.1.0's first migration only is upgraded in place."""
    import ordercli.migrations as migrations

    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    monkeypatch.setattr(migrations, "LATEST_VERSION", 1)
    with opened(db_url):
        customer = add_customer("Early.Bird@example.com")
        order = add_order(customer, "paid")
        assert scalar("SELECT MAX(id) FROM ordercli_migration") == 1
    monkeypatch.undo()

    result = cli(db_url, "migrate")
    assert result.exit_code == 0, describe(result)
    assert result.stdout.strip() == f"Schema version {LATEST_VERSION}"
    assert "Applied 0002_search_and_summary_indexes" in result.stderr
    found = cli(db_url, "list", "--email", "early.bird", "--format", "json")
    assert [row["id"] for row in json.loads(found.stdout)] == [order]
    with opened(db_url):
        indexes = {i.name for i in database.get_indexes("orders")}
        assert "orders_customer_summary_idx" in indexes
        assert "orders_customer_id_idx" not in indexes


def test_email_index_follows_inserts_updates_and_deletes(db_url, cli):
    """Other writers change customers; the substring index must follow (SQLite: triggers)."""
    with opened(db_url):
        moved = add_customer("before.move@example.com")
        order = add_order(moved)
        gone = add_customer("to.be.deleted@example.com")
        database.execute_sql(
            f"UPDATE customer SET email = 'after.move@example.com' WHERE id = {moved}"
        )
        database.execute_sql(f"DELETE FROM customer WHERE id = {gone}")

    def ids(needle: str) -> list[int]:
        result = cli(db_url, "list", "--email", needle, "--format", "json")
        assert result.exit_code == 0, describe(result)
        return [row["id"] for row in json.loads(result.stdout)]

    assert ids("after.move") == [order]
    assert ids("before.move") == []
    with opened(db_url):
        assert scalar("SELECT COUNT(*) FROM customer") == 1
