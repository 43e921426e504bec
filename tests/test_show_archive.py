"""show and archive."""

from __future__ import annotations

import json

from helpers import add_customer, add_order, describe, opened

from ordercli.models import Order, OrderEvent


def test_show_returns_order_customer_items_and_history(db_url, cli):
    with opened(db_url):
        customer = add_customer("show@example.com", "Shown")
        order = add_order(customer, "paid", [("SKU-7", 2, 999), ("SKU-8", 1, 199)])
    assert cli(db_url, "cancel", str(order), "--reason", "dup").exit_code == 0
    result = cli(db_url, "show", str(order), "--format", "json")
    assert result.exit_code == 0, describe(result)
    shown = json.loads(result.stdout)
    assert {k: shown[k] for k in ("id", "customer_id", "email", "status", "total_cents")} == {
        "id": order,
        "customer_id": customer,
        "email": "show@example.com",
        "status": "cancelled",
        "total_cents": 2 * 999 + 199,
    }
    assert shown["item_count"] == 2 and shown["is_archived"] is False
    assert shown["customer"]["id"] == customer and shown["customer"]["name"] == "Shown"
    assert shown["items"] == [
        {"sku": "SKU-7", "quantity": 2, "unit_price_cents": 999, "line_total_cents": 1998},
        {"sku": "SKU-8", "quantity": 1, "unit_price_cents": 199, "line_total_cents": 199},
    ]
    assert len(shown["events"]) == 1
    event = shown["events"][0]
    assert (event["from_status"], event["to_status"], event["reason"], event["actor"]) == (
        "paid",
        "cancelled",
        "dup",
        "pytest",
    )
    assert event["created_at"].endswith("+00:00")


def test_show_table_mentions_items_and_customer(db_url, cli):
    with opened(db_url):
        order = add_order(add_customer("tbl@example.com", "Table Person"), "draft")
    result = cli(db_url, "show", str(order))
    assert result.exit_code == 0, describe(result)
    assert "Table Person" in result.stdout and "SKU-1" in result.stdout


def test_show_unknown_order(db_url, cli):
    result = cli(db_url, "show", "4242")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == ["Error: no order with id 4242"]


def test_archive_hides_and_undo_shows_again(db_url, cli):
    with opened(db_url):
        customer = add_customer("arch@example.com")
        first = add_order(customer, "paid")
        second = add_order(customer, "paid")
    result = cli(db_url, "archive", str(first), "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [{"id": first, "is_archived": True, "changed": True}]
    listed = json.loads(cli(db_url, "list", "--format", "json").stdout)
    assert [r["id"] for r in listed] == [second]
    summary = json.loads(cli(db_url, "summary", "--format", "json").stdout)
    assert summary[0]["orders"] == 1 and summary[0]["spent_cents"] == 1000

    again = cli(db_url, "archive", str(first), "--format", "json")
    assert json.loads(again.stdout) == [{"id": first, "is_archived": True, "changed": False}]

    undo = cli(db_url, "archive", str(first), "--undo", "--format", "json")
    assert json.loads(undo.stdout) == [{"id": first, "is_archived": False, "changed": True}]
    listed = json.loads(cli(db_url, "list", "--format", "json").stdout)
    assert [r["id"] for r in listed] == [second, first]
    with opened(db_url):
        assert OrderEvent.select().count() == 0, "archiving is not a status change"


def test_archive_is_all_or_nothing(db_url, cli):
    with opened(db_url):
        order = add_order(add_customer("aon@example.com"))
    result = cli(db_url, "archive", str(order), "31337")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no order with id 31337")
    with opened(db_url):
        assert Order.get_by_id(order).is_archived is False
