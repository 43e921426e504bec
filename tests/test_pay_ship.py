"""pay and ship: the other two moves of an order's life, with every guarantee of cancel.

The three commands share one rule table (domain.TRANSITIONS) and one code path
(orders.change_status); these tests hold pay and ship to the same promises test_cancel
holds cancel to: one event per change, updated_at bumped, all or nothing, --dry-run,
idempotent, refusals exit 1 with one Error: line, race-free, set-based writes.
"""

from __future__ import annotations

import json

import pytest
from helpers import add_customer, add_order, describe, is_citus, opened
from test_concurrency import assert_all_succeeded, database_rows, describe_all, run_together

from ordercli.domain import TRANSITIONS, Status
from ordercli.models import Customer, Order, OrderEvent, OrderItem

# command -> (the status it moves from, the status it moves to)
MOVES = {"pay": ("draft", "paid"), "ship": ("paid", "shipped"), "cancel": ("paid", "cancelled")}
TARGET = {"pay": "paid", "ship": "shipped", "cancel": "cancelled"}
# Every (command, status) the contract refuses.
REFUSED = [("pay", "shipped"), ("pay", "cancelled"), ("ship", "draft"), ("ship", "cancelled")]


def _snapshot() -> dict[str, list[tuple[object, ...]]]:
    return {
        "customers": list(Customer.select().order_by(Customer.id).tuples()),
        "orders": list(Order.select().order_by(Order.id).tuples()),
        "items": list(OrderItem.select().order_by(OrderItem.id).tuples()),
        "events": list(OrderEvent.select().order_by(OrderEvent.id).tuples()),
    }


def test_the_rule_table_is_the_contracts():
    assert {target: set(sources) for target, sources in TRANSITIONS.items()} == {
        Status.PAID: {Status.DRAFT},
        Status.SHIPPED: {Status.PAID},
        Status.CANCELLED: {Status.DRAFT, Status.PAID},
    }


@pytest.mark.parametrize("command", ["pay", "ship"])
def test_allowed_move_changes_only_the_order_and_writes_one_event(db_url, cli, command):
    source, target = MOVES[command]
    with opened(db_url):
        alice = add_customer("alice@example.com", "Alice")
        bob = add_customer("bob@example.com", "Bob")
        order = add_order(alice, source, [("SKU-1", 2, 499), ("SKU-2", 1, 1499)])
        add_order(alice, source)
        add_order(bob, "draft")
        add_order(bob, "paid")
        before = _snapshot()

    result = cli(db_url, command, str(order), "--reason", "by hand", "--format", "json")

    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [
        {"id": order, "previous_status": source, "status": target, "changed": True}
    ]
    with opened(db_url):
        after = _snapshot()
        assert after["customers"] == before["customers"]
        assert after["items"] == before["items"]
        others = [row for row in after["orders"] if row[0] != order]
        assert others == [row for row in before["orders"] if row[0] != order]
        new = next(row for row in after["orders"] if row[0] == order)
        old = next(row for row in before["orders"] if row[0] == order)
        assert new[2] == target
        assert new[6] > old[6], "updated_at is bumped"
        assert new[:2] == old[:2] and new[3:6] == old[3:6]
        events = list(OrderEvent.select().dicts())
        assert len(events) == 1
        event = events[0]
        assert (event["order"], event["from_status"], event["to_status"]) == (order, source, target)
        assert (event["reason"], event["actor"]) == ("by hand", "pytest")


def test_an_order_goes_draft_paid_shipped_and_then_cannot_be_cancelled(db_url, cli):
    with opened(db_url):
        order = add_order(add_customer("life@example.com"), "draft")
    for command in ("pay", "ship"):
        done = cli(db_url, command, str(order))
        assert done.exit_code == 0, describe(done)
    refused = cli(db_url, "cancel", str(order))
    assert refused.exit_code == 1, describe(refused)
    assert refused.stderr.strip().splitlines() == [
        f"Error: order {order} is already shipped and cannot be cancelled; nothing was changed"
    ]
    with opened(db_url):
        history = database_rows("SELECT from_status, to_status FROM order_event ORDER BY id")
        assert history == [("draft", "paid"), ("paid", "shipped")]
        assert Order.get_by_id(order).status == "shipped"


@pytest.mark.parametrize(("command", "status"), REFUSED)
def test_refused_move_exits_1_names_the_order_and_changes_nothing(db_url, cli, command, status):
    with opened(db_url):
        customer = add_customer("refused@example.com")
        good = add_order(customer, MOVES[command][0])
        bad = add_order(customer, status)
        before = _snapshot()
    for dry_run in ([], ["--dry-run"]):
        result = cli(db_url, command, str(good), str(bad), *dry_run, "--format", "json")
        assert result.exit_code == 1, describe(result)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
        assert f"order {bad} is " in lines[0] and status in lines[0], lines[0]
        assert str(good) not in lines[0].replace(str(bad), ""), lines[0]
        assert "nothing was changed" in lines[0]
    with opened(db_url):
        assert _snapshot() == before


@pytest.mark.parametrize("command", ["pay", "ship"])
def test_already_in_the_target_status_is_reported_unchanged_without_an_event(db_url, cli, command):
    target = TARGET[command]
    with opened(db_url):
        order = add_order(add_customer("same@example.com"), target)
        before = _snapshot()
    result = cli(db_url, command, str(order), "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [
        {"id": order, "previous_status": target, "status": target, "changed": False}
    ]
    with opened(db_url):
        assert _snapshot() == before, "not even updated_at moves"


@pytest.mark.parametrize("command", ["pay", "ship"])
def test_several_ids_are_all_or_nothing(db_url, cli, command):
    source, target = MOVES[command]
    refused_status = "cancelled"
    with opened(db_url):
        customer = add_customer("batch@example.com")
        good = [add_order(customer, source) for _ in range(5)]
        done = add_order(customer, target)
        bad = add_order(customer, refused_status)
        before = _snapshot()
    ids = [*good[:3], done, bad, *good[3:]]
    refused = cli(db_url, command, *map(str, ids))
    assert refused.exit_code == 1, describe(refused)
    assert refused.stderr.startswith(f"Error: order {bad} is already cancelled"), refused.stderr
    unknown = cli(db_url, command, *map(str, good), "999999")
    assert unknown.exit_code == 1, describe(unknown)
    assert unknown.stderr.strip().splitlines() == [
        "Error: no order with id 999999; nothing was changed"
    ]
    with opened(db_url):
        assert _snapshot() == before

    ids.remove(bad)
    result = cli(db_url, command, *map(str, ids), str(good[0]), "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert [(r["id"], r["changed"]) for r in json.loads(result.stdout)] == [
        (i, i != done) for i in ids
    ]
    with opened(db_url):
        statuses = dict(database_rows("SELECT id, status FROM orders"))
        assert {statuses[i] for i in ids} == {target}
        assert statuses[bad] == refused_status
        events = sorted(database_rows("SELECT order_id, from_status, to_status FROM order_event"))
        assert events == [(i, source, target) for i in sorted(good)]


@pytest.mark.parametrize("command", ["pay", "ship"])
def test_dry_run_reports_what_would_change_and_changes_nothing(db_url, cli, command):
    source, target = MOVES[command]
    with opened(db_url):
        customer = add_customer("dry@example.com")
        movable = add_order(customer, source)
        done = add_order(customer, target)
        before = _snapshot()
    result = cli(db_url, command, str(movable), str(done), "--dry-run", "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout) == [
        {"id": movable, "previous_status": source, "status": target, "changed": True},
        {"id": done, "previous_status": target, "status": target, "changed": False},
    ]
    assert "Dry run: nothing was changed." in result.stderr
    with opened(db_url):
        assert _snapshot() == before


@pytest.mark.parametrize("command", ["pay", "ship"])
def test_table_and_csv_report_the_move(db_url, cli, command):
    source, target = MOVES[command]
    with opened(db_url):
        order = add_order(add_customer("csv@example.com"), source)
    dry = cli(db_url, command, str(order), "--dry-run", "--format", "csv")
    assert dry.exit_code == 0, describe(dry)
    assert dry.stdout.splitlines() == [
        "id,previous_status,status,changed",
        f"{order},{source},{target},true",
    ]
    table = cli(db_url, command, str(order))
    assert table.exit_code == 0, describe(table)
    assert str(order) in table.stdout and target in table.stdout and "yes" in table.stdout


@pytest.mark.subprocess
def test_four_concurrent_pays_of_one_order_make_one_change_and_one_event(db_url):
    with opened(db_url):
        customer = add_customer("race@example.com")
        ids = [add_order(customer, "draft") for _ in range(9)]
        target = ids[4]
    command = ["pay", str(target), "--reason", "race", "--format", "json"]

    results = run_together(db_url, *[command] * 4)

    assert_all_succeeded(results)
    reports = [json.loads(r.stdout)[0] for r in results]
    assert all(r["id"] == target and r["status"] == "paid" for r in reports), reports
    winners = [r for r in reports if r["changed"]]
    assert len(winners) == 1, describe_all(results)
    assert winners[0]["previous_status"] == "draft"
    assert all(r["previous_status"] == "paid" for r in reports if not r["changed"]), reports
    with opened(db_url):
        statuses = dict(database_rows("SELECT id, status FROM orders"))
        assert statuses == {i: "paid" if i == target else "draft" for i in ids}
        events = database_rows("SELECT order_id, from_status, to_status, reason FROM order_event")
        assert events == [(target, "draft", "paid", "race")]


@pytest.mark.subprocess
def test_concurrent_pay_and_cancel_of_one_draft_order_follow_the_rule_table(db_url):
    """Whichever runs first, the order ends in a state the table allows: paid then
    cancelled (both succeed, two events), or cancelled first and the pay refused."""
    with opened(db_url):
        order = add_order(add_customer("both@example.com"), "draft")
    results = run_together(
        db_url, ["pay", str(order), "--format", "json"], ["cancel", str(order), "--format", "json"]
    )
    pay, cancel = results
    assert cancel.returncode == 0, describe_all(results)
    with opened(db_url):
        events = database_rows("SELECT from_status, to_status FROM order_event ORDER BY id")
        assert dict(database_rows("SELECT id, status FROM orders")) == {order: "cancelled"}
    if pay.returncode == 0:
        assert events == [("draft", "paid"), ("paid", "cancelled")], describe_all(results)
    else:
        assert pay.returncode == 1, describe_all(results)
        assert pay.stderr.startswith(f"Error: order {order} is already cancelled"), pay.stderr
        assert events == [("draft", "cancelled")]


def test_statement_count_is_bounded_for_1_100_and_5000_ids(db_url, cli):
    """Set-based writes: one locking SELECT, one UPDATE and one INSERT of the events per
    batch under the backend's parameter limit (5,000 ids fit one batch on every backend),
    not a statement per id; nothing to change is the SELECT alone."""
    seeded = cli(db_url, "seed", "--count", "5000", "--customers", "50")
    assert seeded.exit_code == 0, describe(seeded)
    with opened(db_url):
        Order.update(status="draft").execute()
        ids = [row[0] for row in Order.select(Order.id).order_by(Order.id).tuples()]
    assert len(ids) == 5000
    # Citus locks one shard at a time: a SELECT mapping the ids to their shards, then one
    # locking SELECT per shard (the test databases have 4).
    citus = is_citus(db_url)
    for command in ("pay", "ship"):
        for chosen in (ids[:1], ids[1:101], ids):
            result = cli(db_url, command, *map(str, chosen), "--format", "json", echo=True)
            assert result.exit_code == 0, describe(result)
            kinds = [s.split()[0].upper() for s in result.sql]
            selects = kinds.count("SELECT")
            if citus:
                assert 2 <= selects <= 5, (command, len(chosen), result.sql)
            else:
                assert selects == 1, (command, len(chosen), result.sql)
            assert kinds == ["SELECT"] * selects + ["UPDATE", "INSERT"], (command, result.sql)
            assert len(json.loads(result.stdout)) == len(chosen)
        again = cli(db_url, command, *map(str, ids), echo=True)
        assert again.exit_code == 0, describe(again)
        kinds = [s.split()[0].upper() for s in again.sql]
        assert kinds == ["SELECT"] * (5 if citus else 1), again.sql
    with opened(db_url):
        assert database_rows("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM order_event") == [
            (10_000, 5000)
        ]
        assert database_rows("SELECT DISTINCT status FROM orders") == [("shipped",)]
