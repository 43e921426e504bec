"""customers: look a customer up, with their orders, money spent and last order.

The figures are checked against the same question answered in Python over the
arranged rows; filters, the inactive default, --limit and the one SELECT on every
backend.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import add_customer, add_order, describe, opened

FIELDS = [
    "id",
    "name",
    "email",
    "is_active",
    "created_at",
    "orders",
    "spent_cents",
    "last_order_at",
]
T0 = datetime.datetime(2026, 2, 1, 9, 30, 0, 250_000)


@dataclass
class Arranged:
    url: str
    customers: list[dict[str, Any]]
    orders: list[dict[str, Any]] = field(default_factory=list)

    def expected(
        self,
        email: str | None = None,
        name: str | None = None,
        include_inactive: bool = False,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """The contract's answer, computed here from the arranged rows."""
        rows = []
        for customer in sorted(self.customers, key=lambda c: c["id"], reverse=True):
            if not include_inactive and not customer["is_active"]:
                continue
            if email is not None and email.lower() not in customer["email"].lower():
                continue
            if name is not None and name.lower() not in customer["name"].lower():
                continue
            mine = [o for o in self.orders if o["customer"] == customer["id"] and not o["archived"]]
            spent = sum(o["total"] for o in mine if o["status"] in ("paid", "shipped"))
            last = max((o["created_at"] for o in mine), default=None)
            rows.append(
                {
                    "id": customer["id"],
                    "name": customer["name"],
                    "email": customer["email"],
                    "is_active": customer["is_active"],
                    "orders": len(mine),
                    "spent_cents": spent,
                    "last_order_at": last,
                }
            )
        return rows[:limit] if limit else rows


CUSTOMERS = [
    # email, name, active
    ("alice@example.com", "Alice Martin", True),
    ("bob@example.com", "Bob Stone", True),
    ("carol@shop.test", "Carol 100% Real", True),
    ("dave@shop.test", "Dave_Underscore", False),
    ("erin@example.com", "Erin Nobody", True),  # no orders at all
    ("Frank.UPPER@Example.com", "frank lower", True),
]
ORDERS = [
    # customer index, status, days after T0, archived, items
    (0, "paid", 0, False, [("SKU-1", 2, 499)]),
    (0, "shipped", 3, False, [("SKU-2", 1, 1499), ("SKU-3", 3, 199)]),
    (0, "draft", 5, False, [("SKU-4", 1, 2499)]),
    (0, "paid", 9, True, [("SKU-5", 5, 999)]),  # archived: not counted, not the last
    (1, "cancelled", 1, False, [("SKU-1", 1, 499)]),
    (1, "draft", 2, False, [("SKU-1", 1, 499)]),
    (2, "shipped", 4, False, [("SKU-1", 4, 2499)]),
    (3, "paid", 6, False, [("SKU-1", 1, 999)]),
    (5, "paid", 7, False, [("SKU-1", 1, 199)]),
]


@pytest.fixture
def shop(db_url: str) -> Arranged:
    with opened(db_url):
        customers = []
        for email, name, active in CUSTOMERS:
            customer_id = add_customer(email, name, active)
            customers.append({"id": customer_id, "email": email, "name": name, "is_active": active})
        arranged = Arranged(db_url, customers)
        for index, status, days, archived, items in ORDERS:
            when = T0 + datetime.timedelta(days=days)
            order_id = add_order(
                customers[index]["id"], status, items, created_at=when, is_archived=archived
            )
            arranged.orders.append(
                {
                    "id": order_id,
                    "customer": customers[index]["id"],
                    "status": status,
                    "archived": archived,
                    "total": sum(q * p for _, q, p in items),
                    "created_at": when.replace(tzinfo=datetime.UTC),
                }
            )
    return arranged


def _rows(cli: Any, shop: Arranged, *args: str) -> list[dict[str, Any]]:
    result = cli(shop.url, "customers", "--format", "json", *args)
    assert result.exit_code == 0, describe(result)
    rows = json.loads(result.stdout)
    for row in rows:
        assert list(row) == FIELDS, row
        created = datetime.datetime.fromisoformat(row.pop("created_at"))
        assert created.utcoffset() == datetime.timedelta(0)
        if row["last_order_at"] is not None:
            assert row["last_order_at"].endswith(("Z", "+00:00")), row
            row["last_order_at"] = datetime.datetime.fromisoformat(row["last_order_at"])
    return rows


def test_figures_equal_an_independent_computation(cli, shop):
    rows = _rows(cli, shop)
    assert rows == shop.expected()
    by_email = {row["email"]: row for row in rows}
    alice = by_email["alice@example.com"]
    assert (alice["orders"], alice["spent_cents"]) == (3, 2 * 499 + 1499 + 3 * 199)
    assert alice["last_order_at"] == T0.replace(tzinfo=datetime.UTC) + datetime.timedelta(days=5)
    assert by_email["erin@example.com"]["orders"] == 0
    assert by_email["erin@example.com"]["last_order_at"] is None
    assert "dave@shop.test" not in by_email, "inactive customers are hidden"


def test_include_inactive_shows_them(cli, shop):
    rows = _rows(cli, shop, "--include-inactive")
    assert rows == shop.expected(include_inactive=True)
    assert any(row["email"] == "dave@shop.test" and row["is_active"] is False for row in rows)


@pytest.mark.parametrize(
    "needle", ["ALICE", "example.com", "@shop", "frank.upper", "a", "zz", "nobody@", "%", "_"]
)
def test_email_filter_is_a_case_insensitive_literal_substring(cli, shop, needle):
    assert _rows(cli, shop, "--email", needle) == shop.expected(email=needle)


@pytest.mark.parametrize("needle", ["martin", "100%", "_under", "LOWER", "o", "%", "zz"])
def test_name_filter_is_a_case_insensitive_literal_substring(cli, shop, needle):
    expected = shop.expected(name=needle, include_inactive=True)
    assert _rows(cli, shop, "--name", needle, "--include-inactive") == expected


def test_filters_combine(cli, shop):
    rows = _rows(cli, shop, "--email", "shop.test", "--name", "real")
    assert [row["email"] for row in rows] == ["carol@shop.test"]


@pytest.mark.parametrize("limit", [1, 2, 0])
def test_limit_takes_the_newest_and_zero_means_all(cli, shop, limit):
    assert _rows(cli, shop, "--limit", str(limit)) == shop.expected(limit=limit)


def test_one_select_whatever_the_filters(cli, shop):
    for args in ([], ["--email", "example", "--name", "a"], ["--limit", "0"], ["--email", "bo"]):
        result = cli(shop.url, "customers", "--format", "json", *args, echo=True)
        assert result.exit_code == 0, describe(result)
        assert len(result.sql) == 1 and len(result.selects) == 1, result.sql


def test_csv_has_the_header_and_table_shows_email_and_money(cli, shop):
    result = cli(shop.url, "customers", "--format", "csv", "--email", "alice")
    assert result.exit_code == 0, describe(result)
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == FIELDS
    assert table[1][2] == "alice@example.com" and table[1][3] == "true"
    shown = cli(shop.url, "customers")
    assert shown.exit_code == 0, describe(shown)
    assert "Frank.UPPER@Example.com" in shown.stdout and "30.94" in shown.stdout


def test_no_match_is_an_empty_document(cli, shop):
    assert _rows(cli, shop, "--email", "nobody-here") == []
    table = cli(shop.url, "customers", "--email", "nobody-here")
    assert (table.exit_code, table.stdout) == (0, "")
    assert "No matching customers." in table.stderr
