"""list: filters, order, limits, and exactly one SELECT whatever the number of rows."""

from __future__ import annotations

import csv
import datetime
import io
import json

import pytest
from helpers import add_customer, add_order, describe, opened

from ordercli.db import database
from ordercli.models import Customer, Order, OrderItem
from ordercli.queries import list_query

FIELDS = [
    "id",
    "customer_id",
    "email",
    "status",
    "total_cents",
    "item_count",
    "is_archived",
    "created_at",
]


def _ids(result) -> list[int]:
    assert result.exit_code == 0, describe(result)
    return [row["id"] for row in json.loads(result.stdout)]


@pytest.fixture
def shop(db_url):
    """Three customers with orders in every status, created on known days."""
    day = datetime.datetime(2026, 3, 1, 12, 0)
    with opened(db_url):
        alice = add_customer("Alice.Smith@Example.com", "Alice")
        bob = add_customer("bob_100%@example.com", "Bob")
        carol = add_customer("carol\\x@example.org", "Carol")
        ids = {
            "a_paid": add_order(alice, "paid", [("SKU-1", 2, 499), ("SKU-9", 1, 199)], day),
            "a_draft": add_order(alice, "draft", created_at=day + datetime.timedelta(days=1)),
            "b_shipped": add_order(bob, "shipped", created_at=day + datetime.timedelta(days=2)),
            "b_paid": add_order(bob, "paid", created_at=day + datetime.timedelta(days=3)),
            "c_cancelled": add_order(carol, "cancelled", created_at=day + datetime.timedelta(4)),
            "c_archived": add_order(
                carol, "paid", created_at=day + datetime.timedelta(days=5), is_archived=True
            ),
        }
    return db_url, ids, {"alice": alice, "bob": bob, "carol": carol}


def test_lists_newest_first_with_contract_fields(shop, cli):
    url, ids, people = shop
    result = cli(url, "list", "--format", "json")
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == sorted(
        (v for k, v in ids.items() if k != "c_archived"), reverse=True
    )
    first = next(r for r in rows if r["id"] == ids["a_paid"])
    assert first == {
        "id": ids["a_paid"],
        "customer_id": people["alice"],
        "email": "Alice.Smith@Example.com",
        "status": "paid",
        "total_cents": 2 * 499 + 199,
        "item_count": 2,
        "is_archived": False,
        "created_at": "2026-03-01T12:00:00+00:00",
    }


def test_status_filter_repeats(shop, cli):
    url, ids, _ = shop
    result = cli(url, "list", "--status", "paid", "--status", "shipped", "--format", "json")
    assert _ids(result) == [ids["b_paid"], ids["b_shipped"], ids["a_paid"]]


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("alice.smith", ["a_draft", "a_paid"]),
        ("EXAMPLE.COM", ["b_paid", "b_shipped", "a_draft", "a_paid"]),
        ("100%", ["b_paid", "b_shipped"]),
        ("_", ["b_paid", "b_shipped"]),  # literal underscore, not "any character"
        ("%", ["b_paid", "b_shipped"]),  # literal percent, not "anything"
        ("\\x", ["c_cancelled"]),  # literal backslash
        ("b%e", []),
        ("nobody", []),
    ],
)
def test_email_is_a_case_insensitive_literal_substring(shop, cli, needle, expected):
    url, ids, _ = shop
    result = cli(url, "list", "--email", needle, "--format", "json")
    assert _ids(result) == [ids[k] for k in expected]


def test_customer_filter(shop, cli):
    url, ids, people = shop
    result = cli(url, "list", "--customer", str(people["bob"]), "--format", "json")
    assert _ids(result) == [ids["b_paid"], ids["b_shipped"]]


def test_since_is_inclusive_and_until_exclusive(shop, cli):
    url, ids, _ = shop
    result = cli(
        url, "list", "--since", "2026-03-02", "--until", "2026-03-04T12:00:00", "-f", "json"
    )
    assert _ids(result) == [ids["b_shipped"], ids["a_draft"]]


def test_archived_hidden_unless_asked(shop, cli):
    url, ids, _ = shop
    assert ids["c_archived"] not in _ids(cli(url, "list", "--format", "json"))
    rows = json.loads(cli(url, "list", "--include-archived", "--format", "json").stdout)
    archived = [r for r in rows if r["id"] == ids["c_archived"]]
    assert archived and archived[0]["is_archived"] is True


def test_limit_and_zero_means_all(shop, cli):
    url, ids, _ = shop
    assert _ids(cli(url, "list", "--limit", "2", "--format", "json")) == [
        ids["c_cancelled"],
        ids["b_paid"],
    ]
    assert len(_ids(cli(url, "list", "--limit", "0", "--format", "json"))) == 5


def test_csv_has_header_and_rows(shop, cli):
    url, ids, _ = shop
    result = cli(url, "list", "--status", "draft", "--format", "csv")
    assert result.exit_code == 0, describe(result)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == FIELDS
    assert len(rows) == 2 and rows[1][0] == str(ids["a_draft"]) and rows[1][6] == "false"


def test_empty_result_is_an_empty_array(db_url, cli):
    result = cli(db_url, "list", "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == []


def _bulk_orders(count: int) -> None:
    """`count` orders of two items each, inserted set-wise."""
    customer = add_customer("bulk@example.com")
    now = datetime.datetime(2026, 1, 1)
    with database.atomic():
        for start in range(0, count, 500):
            n = min(500, count - start)
            Order.insert_many(
                [(customer, "paid", 300, now, now)] * n,
                fields=[
                    Order.customer,
                    Order.status,
                    Order.total_cents,
                    Order.created_at,
                    Order.updated_at,
                ],
            ).execute()
        OrderItem.insert_from(
            Order.select(Order.id, "SKU-1", 1, 100).union_all(
                Order.select(Order.id, "SKU-2", 1, 200)
            ),
            fields=[OrderItem.order, OrderItem.sku, OrderItem.quantity, OrderItem.unit_price_cents],
        ).execute()


@pytest.mark.parametrize("rows", [1, 10, 1000])
def test_list_is_one_select_for_any_number_of_rows(db_url, cli, rows):
    with opened(db_url):
        _bulk_orders(rows)
    result = cli(
        db_url,
        "list",
        "--limit",
        "0",
        "--status",
        "paid",
        "--email",
        "BULK",
        "--format",
        "json",
        echo=True,
    )
    assert result.exit_code == 0, describe(result)
    data = json.loads(result.stdout)
    assert len(data) == rows
    assert {r["item_count"] for r in data} == {2}
    assert len(result.sql) == 1, result.sql
    assert len(result.selects) == 1, result.sql


def test_list_counts_with_the_peewee_logger(db_url):
    """Same guarantee measured in-process through Peewee's query log."""
    from playhouse.test_utils import count_queries

    from ordercli.queries import list_orders

    with opened(db_url) as conn:
        _bulk_orders(50)
        with count_queries() as counter:
            rows = list(list_orders(conn, limit=0))
        assert len(rows) == 50
        assert counter.count == 1
        assert Customer.select().count() == 1


def _mysql_first_table_of_plan(url: str, email: str | None) -> str:
    with opened(url) as conn:
        sql, params = list_query(conn, email=email).sql()
        return str(database.execute_sql(f"EXPLAIN {sql}", params).fetchone()[2])


def test_mysql_list_walks_orders_newest_first_not_every_customer(mysql_url, cli):
    """MariaDB, left to itself, starts `list` from customer (the covering summary index
    makes the join look cheap) and sorts every order for the newest 50: 0.73 s at 200k
    orders instead of 0.7 ms. Without an email filter the plan must start from orders;
    with one, from the matching customers."""
    assert cli(mysql_url, "seed", "--count", "3000", "--seed", "11").exit_code == 0
    assert _mysql_first_table_of_plan(mysql_url, email=None) == "t1"  # orders
    assert _mysql_first_table_of_plan(mysql_url, email="user1") == "t2"  # customer
