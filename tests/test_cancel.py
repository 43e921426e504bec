"""cancel: the original system's bug (cancelling deleted the customer) can never come back."""

from __future__ import annotations

import json

import peewee
import pytest
from helpers import add_customer, add_order, describe, is_citus, opened, scalar

from ordercli.db import database
from ordercli.models import Customer, Order, OrderEvent, OrderItem


def _snapshot() -> dict[str, list[tuple[object, ...]]]:
    return {
        "customers": list(Customer.select().order_by(Customer.id).tuples()),
        "orders": list(Order.select().order_by(Order.id).tuples()),
        "items": list(OrderItem.select().order_by(OrderItem.id).tuples()),
        "events": list(OrderEvent.select().order_by(OrderEvent.id).tuples()),
    }


def test_cancelling_a_paid_order_keeps_customer_other_orders_and_items(db_url, cli):
    with opened(db_url):
        alice = add_customer("alice@example.com", "Alice")
        bob = add_customer("bob@example.com", "Bob")
        target = add_order(alice, "paid", [("SKU-1", 2, 499), ("SKU-2", 1, 1499)])
        other = add_order(alice, "paid")
        draft = add_order(alice, "draft")
        add_order(bob, "shipped")
        before = _snapshot()

    result = cli(db_url, "cancel", str(target), "--reason", "customer asked", "--format", "json")

    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [
        {"id": target, "previous_status": "paid", "status": "cancelled", "changed": True}
    ]
    with opened(db_url):
        after = _snapshot()
        assert after["customers"] == before["customers"]
        assert after["items"] == before["items"]
        changed = [row for row in after["orders"] if row[0] == target]
        unchanged = [row for row in after["orders"] if row[0] != target]
        assert unchanged == [row for row in before["orders"] if row[0] != target]
        assert changed[0][2] == "cancelled"
        old = next(row for row in before["orders"] if row[0] == target)
        assert changed[0][6] > old[6], "updated_at is bumped"
        assert changed[0][:2] == old[:2] and changed[0][3:6] == old[3:6]
        events = list(OrderEvent.select().dicts())
        assert len(events) == 1
        assert events[0]["order"] == target
        assert (events[0]["from_status"], events[0]["to_status"]) == ("paid", "cancelled")
        assert events[0]["reason"] == "customer asked"
        assert events[0]["actor"] == "pytest"
        assert {other, draft} <= {row[0] for row in unchanged}


def test_database_refuses_to_delete_a_customer_with_orders(db_url):
    with opened(db_url):
        customer = add_customer("carol@example.com")
        add_order(customer)
        with pytest.raises(peewee.IntegrityError), database.atomic():
            database.execute_sql(f"DELETE FROM customer WHERE id = {customer}")
        assert scalar("SELECT COUNT(*) FROM customer") == 1


def test_draft_order_is_cancelled_and_recorded(db_url, cli):
    with opened(db_url):
        order = add_order(add_customer("d@example.com"), "draft")
    result = cli(db_url, "cancel", str(order), "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout)[0]["previous_status"] == "draft"
    with opened(db_url):
        assert Order.get_by_id(order).status == "cancelled"
        assert OrderEvent.select().count() == 1


def test_already_cancelled_is_reported_unchanged_without_an_event(db_url, cli):
    with opened(db_url):
        order = add_order(add_customer("e@example.com"), "cancelled")
    result = cli(db_url, "cancel", str(order), "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [
        {"id": order, "previous_status": "cancelled", "status": "cancelled", "changed": False}
    ]
    with opened(db_url):
        assert OrderEvent.select().count() == 0


def test_shipped_order_is_refused_and_nothing_changes(db_url, cli):
    with opened(db_url):
        customer = add_customer("f@example.com")
        paid = add_order(customer, "paid")
        shipped = add_order(customer, "shipped")
        before = _snapshot()
    result = cli(db_url, "cancel", str(paid), str(shipped))
    assert result.exit_code == 1, describe(result)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert str(shipped) in lines[0] and "shipped" in lines[0]
    with opened(db_url):
        assert _snapshot() == before


def test_unknown_id_is_refused_and_nothing_changes(db_url, cli):
    with opened(db_url):
        paid = add_order(add_customer("g@example.com"), "paid")
        before = _snapshot()
    result = cli(db_url, "cancel", str(paid), "999999")
    assert result.exit_code == 1, describe(result)
    assert result.stderr.strip().splitlines() == [
        "Error: no order with id 999999; nothing was changed"
    ]
    with opened(db_url):
        assert _snapshot() == before


def test_several_ids_change_together_with_one_event_each(db_url, cli):
    with opened(db_url):
        customer = add_customer("h@example.com")
        ids = [add_order(customer, status) for status in ("paid", "draft", "cancelled", "paid")]
    result = cli(db_url, "cancel", *map(str, ids), str(ids[0]), "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert [(r["id"], r["changed"]) for r in json.loads(result.stdout)] == [
        (ids[0], True),
        (ids[1], True),
        (ids[2], False),
        (ids[3], True),
    ]
    with opened(db_url):
        assert Order.select().where(Order.status != "cancelled").count() == 0
        events = sorted(e.order_id for e in OrderEvent.select())
        assert events == sorted([ids[0], ids[1], ids[3]])


def test_dry_run_reports_and_changes_nothing(db_url, cli):
    with opened(db_url):
        customer = add_customer("i@example.com")
        paid = add_order(customer, "paid")
        done = add_order(customer, "cancelled")
        before = _snapshot()
    result = cli(db_url, "cancel", str(paid), str(done), "--dry-run", "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [
        {"id": paid, "previous_status": "paid", "status": "cancelled", "changed": True},
        {"id": done, "previous_status": "cancelled", "status": "cancelled", "changed": False},
    ]
    assert "nothing was changed" in result.stderr
    with opened(db_url):
        assert _snapshot() == before


def test_dry_run_has_the_same_refusals(db_url, cli):
    with opened(db_url):
        shipped = add_order(add_customer("j@example.com"), "shipped")
    result = cli(db_url, "cancel", str(shipped), "--dry-run")
    assert result.exit_code == 1, describe(result)
    assert result.stderr.startswith("Error:")


def test_actor_defaults_to_the_os_login_name(db_url, cli, monkeypatch):
    import getpass

    monkeypatch.delenv("ORDERCLI_ACTOR")
    with opened(db_url):
        order = add_order(add_customer("k@example.com"))
    result = cli(db_url, "cancel", str(order))
    assert result.exit_code == 0, describe(result)
    with opened(db_url):
        assert OrderEvent.get().actor == getpass.getuser()


def test_cancel_many_ids_uses_one_update_and_one_event_insert(db_url, cli):
    with opened(db_url):
        customer = add_customer("l@example.com")
        ids = [add_order(customer, "paid") for _ in range(30)]
    result = cli(db_url, "cancel", *map(str, ids), echo=True)
    assert result.exit_code == 0, describe(result)
    statements = [s.split()[0].upper() for s in result.sql]
    if is_citus(db_url):
        # Citus locks rows one shard at a time (a locking SELECT may not span shards):
        # one SELECT maps the ids to their shards, then one locking SELECT per shard.
        shards = statements.count("SELECT") - 1
        assert 1 <= shards <= 4, result.sql  # the test databases have 4 shards
        assert statements == ["SELECT"] * (1 + shards) + ["UPDATE", "INSERT"], result.sql
    else:
        assert statements == ["SELECT", "UPDATE", "INSERT"], result.sql
    with opened(db_url):
        assert OrderEvent.select().count() == 30
