"""summary: money spent per active customer, in one SELECT with one GROUP BY."""

from __future__ import annotations

import datetime
import json

import pytest
from helpers import add_customer, add_order, describe, opened

from ordercli.db import database
from ordercli.models import Customer, Order

DAY = datetime.datetime(2026, 5, 1, 8, 30)


@pytest.fixture
def shop(db_url):
    with opened(db_url):
        big = add_customer("big@example.com", "Big Spender")
        tie_a = add_customer("tie-a@example.com", "Tie A")
        tie_b = add_customer("tie-b@example.com", "Tie B")
        idle = add_customer("idle@example.com", "Idle")
        gone = add_customer("gone@example.com", "Inactive", is_active=False)
        add_order(big, "paid", [("SKU-1", 3, 2499)], DAY)  # 7497
        add_order(big, "shipped", [("SKU-2", 1, 999)], DAY + datetime.timedelta(days=10))
        add_order(big, "draft", [("SKU-3", 5, 2499)], DAY + datetime.timedelta(days=20))
        add_order(big, "cancelled", [("SKU-4", 5, 2499)], DAY + datetime.timedelta(days=1))
        add_order(big, "paid", [("SKU-5", 5, 2499)], DAY, is_archived=True)
        add_order(tie_b, "paid", [("SKU-1", 1, 1499)], DAY)
        add_order(tie_a, "paid", [("SKU-1", 1, 1499)], DAY + datetime.timedelta(days=2))
        add_order(gone, "paid", [("SKU-1", 5, 2499)], DAY)
    return db_url, {"big": big, "tie_a": tie_a, "tie_b": tie_b, "idle": idle}


def test_summary_rows_order_and_fields(shop, cli):
    url, who = shop
    result = cli(url, "summary", "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [
        {
            "customer_id": who["big"],
            "email": "big@example.com",
            "name": "Big Spender",
            "orders": 4,
            "paid_orders": 2,
            "spent_cents": 7497 + 999,
            "last_order_at": "2026-05-21T08:30:00+00:00",
        },
        {
            "customer_id": who["tie_a"],
            "email": "tie-a@example.com",
            "name": "Tie A",
            "orders": 1,
            "paid_orders": 1,
            "spent_cents": 1499,
            "last_order_at": "2026-05-03T08:30:00+00:00",
        },
        {
            "customer_id": who["tie_b"],
            "email": "tie-b@example.com",
            "name": "Tie B",
            "orders": 1,
            "paid_orders": 1,
            "spent_cents": 1499,
            "last_order_at": "2026-05-01T08:30:00+00:00",
        },
        {
            "customer_id": who["idle"],
            "email": "idle@example.com",
            "name": "Idle",
            "orders": 0,
            "paid_orders": 0,
            "spent_cents": 0,
            "last_order_at": None,
        },
    ]


def test_window_and_limit(shop, cli):
    url, who = shop
    result = cli(
        url,
        "summary",
        "--since",
        "2026-05-02",
        "--until",
        "2026-05-15",
        "--limit",
        "2",
        "--format",
        "json",
    )
    rows = json.loads(result.stdout)
    assert [(r["customer_id"], r["spent_cents"], r["orders"]) for r in rows] == [
        (who["tie_a"], 1499, 1),
        (who["big"], 999, 2),
    ]


def _customers_with_orders(count: int) -> None:
    now = datetime.datetime(2026, 1, 1)
    Customer.insert_many(
        [(f"c{n}", f"c{n}@example.com") for n in range(count)],
        fields=[Customer.name, Customer.email],
    ).execute()
    with database.atomic():
        Order.insert_from(
            Customer.select(Customer.id, "paid", 100, now, now),
            fields=[
                Order.customer,
                Order.status,
                Order.total_cents,
                Order.created_at,
                Order.updated_at,
            ],
        ).execute()


@pytest.mark.parametrize("customers", [1, 10, 1000])
def test_summary_is_one_select_with_one_group_by(db_url, cli, customers):
    with opened(db_url):
        _customers_with_orders(customers)
    result = cli(db_url, "summary", "--limit", "0", "--format", "json", echo=True)
    assert result.exit_code == 0, describe(result)
    assert len(json.loads(result.stdout)) == customers
    assert len(result.sql) == 1, result.sql
    assert result.sql[0].upper().count("GROUP BY") == 1
