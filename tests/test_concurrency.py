"""Several ordercli processes on one database at the same time.

Every test starts real processes of the installed console script: all of them are
started (Popen) before any is waited for, so they run against the database together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import add_customer, add_order, invariant_violations, opened, scalar

from ordercli.db import database
from ordercli.migrations import LATEST_VERSION, MIGRATIONS

pytestmark = pytest.mark.subprocess

TIMEOUT_S = 120


def _command() -> list[str]:
    script = Path(sys.executable).with_name("ordercli")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ordercli"]


def run_together(
    url: str, *commands: Sequence[str], env: dict[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Start `ordercli --db URL COMMAND` for every command, then wait for all of them."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERCLI_")}
    full_env.update({"ORDERCLI_ACTOR": "pytest", "NO_COLOR": "1", **(env or {})})
    processes = [
        (
            args,
            subprocess.Popen(
                [*_command(), "--db", url, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=full_env,
            ),
        )
        for args in commands
    ]
    results = []
    try:
        for args, process in processes:
            stdout, stderr = process.communicate(timeout=TIMEOUT_S)
            results.append(
                subprocess.CompletedProcess(
                    [*_command(), *args], process.returncode, stdout, stderr
                )
            )
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def describe_all(results: Sequence[subprocess.CompletedProcess[str]]) -> str:
    return "\n".join(
        f"--- {' '.join(r.args[1:])} -> exit {r.returncode}\n"
        f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        for r in results
    )


def assert_all_succeeded(results: Sequence[subprocess.CompletedProcess[str]]) -> None:
    assert [r.returncode for r in results] == [0] * len(results), describe_all(results)


# --- cancel -------------------------------------------------------------------------------


def test_four_concurrent_cancels_of_one_paid_order_make_one_change_and_one_event(db_url):
    with opened(db_url):
        customer = add_customer("race@example.com")
        ids = [add_order(customer, "paid") for _ in range(9)]
        target = ids[6]
    command = ["cancel", str(target), "--reason", "race", "--format", "json"]

    results = run_together(db_url, *[command] * 4)

    assert_all_succeeded(results)
    reports = [json.loads(r.stdout) for r in results]
    for report in reports:
        assert len(report) == 1 and report[0]["id"] == target, report
        assert report[0]["status"] == "cancelled", report
    winners = [report[0] for report in reports if report[0]["changed"] is True]
    losers = [report[0] for report in reports if report[0]["changed"] is False]
    assert len(winners) == 1, describe_all(results)
    assert winners[0]["previous_status"] == "paid"
    assert len(losers) == 3 and all(r["previous_status"] == "cancelled" for r in losers), reports
    with opened(db_url):
        statuses = dict(database_rows("SELECT id, status FROM orders"))
        assert statuses[target] == "cancelled"
        assert {i: s for i, s in statuses.items() if i != target} == {
            i: "paid" for i in ids if i != target
        }
        events = database_rows("SELECT order_id, from_status, to_status, reason FROM order_event")
        assert events == [(target, "paid", "cancelled", "race")]


def test_concurrent_cancels_of_overlapping_id_sets_change_each_order_exactly_once(db_url):
    with opened(db_url):
        customer = add_customer("overlap@example.com")
        original = {}
        for n in range(40):
            status = "paid" if n % 2 == 0 else "draft"
            original[add_order(customer, status)] = status
    ids = sorted(original)
    id_sets = [ids[0:20], ids[9:30], ids[24:40], [ids[0], ids[39]]]
    commands = [["cancel", *map(str, chosen), "--format", "json"] for chosen in id_sets]

    results = run_together(db_url, *commands)

    assert_all_succeeded(results)
    reports = [json.loads(r.stdout) for r in results]
    for chosen, report in zip(id_sets, reports, strict=True):
        assert [row["id"] for row in report] == chosen
        assert all(row["status"] == "cancelled" for row in report), report
    changed_per_order = Counter(row["id"] for report in reports for row in report if row["changed"])
    assert sum(changed_per_order.values()) == len(ids), describe_all(results)
    assert changed_per_order == Counter(ids), "each order is changed by exactly one process"
    for report in reports:
        for row in report:
            if row["changed"]:
                assert row["previous_status"] == original[row["id"]], row
            else:
                assert row["previous_status"] == "cancelled", row
    with opened(db_url):
        assert database_rows("SELECT DISTINCT status FROM orders") == [("cancelled",)]
        events = database_rows("SELECT order_id, from_status, to_status FROM order_event")
        assert Counter(order_id for order_id, _, _ in events) == Counter(ids)
        assert sorted(events) == [(i, original[i], "cancelled") for i in ids]


# --- seed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed_options",
    [pytest.param([[], []], id="random"), pytest.param([["--seed", "1"]] * 2, id="same-seed")],
)
def test_two_concurrent_seeds_both_succeed_without_duplicates(db_url, seed_options):
    with opened(db_url):  # the schema exists: the seeds race each other, not the migration
        pass
    commands = [
        ["seed", "--count", "3000", *options, "--format", "json"] for options in seed_options
    ]

    results = run_together(db_url, *commands)

    assert_all_succeeded(results)
    reports = [json.loads(r.stdout) for r in results]
    for report in reports:
        assert (report["orders"], report["customers"]) == (3000, 375), report
    with opened(db_url):
        assert scalar("SELECT COUNT(*) FROM orders") == 6000
        assert scalar("SELECT COUNT(*) FROM customer") == 750
        assert scalar("SELECT COUNT(*) FROM order_item") == sum(r["items"] for r in reports)
        assert scalar("SELECT COUNT(DISTINCT email) FROM customer") == 750
        assert scalar("SELECT COUNT(DISTINCT LOWER(email)) FROM customer") == 750
        assert invariant_violations() == {
            "orders_without_items": 0,
            "wrong_totals": 0,
            "orphan_items": 0,
        }
        assert scalar("SELECT COUNT(*) FROM order_event") == 0, "seed writes no event"


# --- first run on a fresh database --------------------------------------------------------


@pytest.mark.parametrize(
    "commands",
    [
        pytest.param([["migrate"], ["migrate"]], id="migrate+migrate"),
        pytest.param([["list", "--format", "json"]] * 2, id="list+list"),
        pytest.param([["migrate"], ["list", "--format", "json"]], id="migrate+list"),
        pytest.param([["seed", "--count", "50", "--format", "json"]] * 2, id="seed+seed"),
    ],
)
def test_concurrent_first_runs_on_a_fresh_database_migrate_it_once(db_url, commands):
    results = run_together(db_url, *commands)

    assert_all_succeeded(results)
    for command, result in zip(commands, results, strict=True):
        if command[0] == "migrate":
            assert f"Schema version {LATEST_VERSION}" in result.stdout, describe_all(results)
        elif command[0] == "list":
            assert json.loads(result.stdout) == []
        else:
            assert json.loads(result.stdout)["orders"] == 50
    with opened(db_url):
        rows = database_rows("SELECT id, name FROM ordercli_migration ORDER BY id")
        assert rows == [(m.id, m.name) for m in MIGRATIONS]
        assert scalar("SELECT COUNT(*) FROM orders") == sum(
            json.loads(r.stdout)["orders"]
            for c, r in zip(commands, results, strict=True)
            if c[0] == "seed"
        )
        assert scalar("SELECT COUNT(*) FROM order_event") == 0


def database_rows(sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in database.execute_sql(sql).fetchall()]
