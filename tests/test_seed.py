"""seed: realistic data, batched insert_many, whole orders per transaction, reproducible."""

from __future__ import annotations

import datetime
import json
import math
import re

from helpers import describe, invariant_violations, opened, scalar
from peewee import fn

from ordercli.db import Connection, database
from ordercli.models import Customer, Order, OrderEvent, OrderItem
from ordercli.seeding import MAX_ITEMS_PER_ORDER, UNIT_PRICES_CENTS, orders_per_transaction
from ordercli.timeutil import as_utc, utcnow


def test_seed_adds_what_it_reports_with_correct_totals(db_url, cli):
    result = cli(db_url, "seed", "--count", "400", "--format", "json")
    assert result.exit_code == 0, describe(result)
    report = json.loads(result.stdout)
    assert set(report) >= {"customers", "orders", "items", "seconds"}
    assert report["orders"] == 400 and report["customers"] == math.ceil(400 / 8)
    assert isinstance(report["seconds"], float)
    assert "Added" in result.stderr
    with opened(db_url):
        assert Order.select().count() == 400
        assert Customer.select().count() == 50
        assert OrderItem.select().count() == report["items"]
        assert invariant_violations() == dict.fromkeys(invariant_violations(), 0)
        per_order = scalar(
            "SELECT MIN(n), MAX(n) FROM (SELECT COUNT(*) AS n FROM order_item GROUP BY order_id) t"
        )
        assert 1 <= per_order <= MAX_ITEMS_PER_ORDER
        statuses = {s for (s,) in Order.select(Order.status).distinct().tuples()}
        assert statuses == {"paid", "draft", "shipped"}
        prices = {p for (p,) in OrderItem.select(OrderItem.unit_price_cents).distinct().tuples()}
        assert prices <= set(UNIT_PRICES_CENTS)
        quantities = {q for (q,) in OrderItem.select(OrderItem.quantity).distinct().tuples()}
        assert quantities <= {1, 2, 3, 4, 5}
        oldest, newest = (
            as_utc(value)
            for value in Order.select(fn.MIN(Order.created_at), fn.MAX(Order.created_at)).scalar(
                as_tuple=True
            )
        )
        now = as_utc(utcnow())
        assert now - datetime.timedelta(days=366) < oldest <= newest <= now
        assert OrderEvent.select().count() == 0, "creating orders writes no event"


def test_status_mix_is_roughly_55_35_10(db_url, cli):
    result = cli(db_url, "seed", "--count", "4000", "--seed", "7", "--format", "json")
    assert result.exit_code == 0, describe(result)
    with opened(db_url):
        counts = dict(
            Order.select(Order.status, fn.COUNT(Order.id)).group_by(Order.status).tuples()
        )
    assert abs(counts["paid"] / 4000 - 0.55) < 0.04
    assert abs(counts["draft"] / 4000 - 0.35) < 0.04
    assert abs(counts["shipped"] / 4000 - 0.10) < 0.03


def test_customers_option(db_url, cli):
    result = cli(db_url, "seed", "--count", "30", "--customers", "3", "--format", "json")
    assert json.loads(result.stdout)["customers"] == 3
    with opened(db_url):
        assert scalar("SELECT COUNT(DISTINCT customer_id) FROM orders") <= 3


def _rows_without_timestamps() -> dict[str, list[tuple[object, ...]]]:
    return {
        "customers": list(
            Customer.select(Customer.id, Customer.name, Customer.email, Customer.is_active)
            .order_by(Customer.id)
            .tuples()
        ),
        "orders": list(
            Order.select(Order.id, Order.customer, Order.status, Order.total_cents)
            .order_by(Order.id)
            .tuples()
        ),
        "items": list(OrderItem.select().order_by(OrderItem.id).tuples()),
    }


def empty_the_tables(conn: Connection) -> None:
    """Back to an empty database, id counters included."""
    tables = ["order_item", "order_event", "orders", "customer"]
    if conn.backend.name in ("postgresql", "citus"):
        database.execute_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
    else:  # MySQL: TRUNCATE refuses tables with foreign keys pointing at them
        for table in tables:
            database.execute_sql(f"DELETE FROM {table}")
            database.execute_sql(f"ALTER TABLE {table} AUTO_INCREMENT = 1")


def test_same_seed_on_empty_databases_gives_identical_rows(db_url, sqlite_url, cli, tmp_path):
    other = f"sqlite:///{tmp_path / 'other.db'}" if db_url == sqlite_url else sqlite_url
    first = cli(db_url, "seed", "--count", "300", "--seed", "42")
    assert first.exit_code == 0, describe(first)
    with opened(db_url):
        rows_first = _rows_without_timestamps()
    # An empty database of the same backend: re-create by seeding a fresh one.
    if db_url.startswith("sqlite"):
        second_url = other
    else:
        second_url = db_url
        with opened(db_url) as conn:
            empty_the_tables(conn)
    second = cli(second_url, "seed", "--count", "300", "--seed", "42")
    assert second.exit_code == 0, describe(second)
    with opened(second_url):
        assert _rows_without_timestamps() == rows_first


def test_rerunning_the_same_seed_adds_more_without_email_clashes(db_url, cli):
    for _ in range(2):
        result = cli(db_url, "seed", "--count", "80", "--seed", "5", "--format", "json")
        assert result.exit_code == 0, describe(result)
        assert json.loads(result.stdout)["customers"] == 10
    with opened(db_url):
        assert Customer.select().count() == 20
        assert scalar("SELECT COUNT(DISTINCT email) FROM customer") == 20
        assert Order.select().count() == 160


def test_seed_inserts_in_batches_sized_by_the_bind_limit(db_url, cli):
    with opened(db_url) as conn:
        per_batch = orders_per_transaction(conn)
        budget = conn.max_bind_params()
    assert per_batch * 5 <= budget < per_batch * 2 * 5, "widest power of two that fits"
    count = per_batch * 2 + 7
    result = cli(db_url, "seed", "--count", str(count), "--format", "json", echo=True)
    assert result.exit_code == 0, describe(result)
    inserts = [s for s in result.sql if s.upper().startswith("INSERT")]
    into = [re.search(r'INTO ["`]?(\w+)', s).group(1) for s in inserts]
    # Two full batches of one statement each, then 7 = 4 + 2 + 1 rows: not one per row.
    assert into.count("orders") == 2 + 3
    assert 3 <= into.count("order_item") <= 3 * 20
    assert len(inserts) < count / 50
    with opened(db_url):
        assert Order.select().count() == count
        assert OrderItem.select().count() == json.loads(result.stdout)["items"]
        assert invariant_violations() == dict.fromkeys(invariant_violations(), 0)


def test_bulk_insert_statements_are_exactly_what_insert_many_writes(db_url):
    from ordercli.bulk import BulkInsert

    with opened(db_url) as conn:
        insert = BulkInsert(conn, Order, [Order.customer, Order.status], returning=[Order.id])
        for rows in (1, 2, 3, 7, 64):
            query = Order.insert_many(
                [(None, None)] * rows, fields=[Order.customer, Order.status]
            ).returning(Order.id)
            expected, _ = database.obj.get_sql_context().sql(query).query()
            assert insert.sql(rows) == expected


def test_bulk_insert_splits_rows_into_power_of_two_statements(db_url):
    from ordercli.bulk import BulkInsert

    with opened(db_url) as conn:
        insert = BulkInsert(conn, OrderItem, [OrderItem.order, OrderItem.sku])
        width = insert.rows_per_statement
        assert width & (width - 1) == 0 and width * 2 <= conn.max_bind_params()
        sizes = list(insert.statement_sizes(width * 2 + 13))
        assert sizes == [width, width, 8, 4, 1]
        assert list(insert.statement_sizes(0)) == []
