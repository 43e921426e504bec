"""Citus only: the tables really are distributed, and what a cluster adds to the contract.

Every `db_url` test of the suite also runs on Citus (the `citus` backend in conftest);
these tests check what only a cluster has: shards on two workers, cross-worker
transactions (two-phase commit), a worker that is down.

"Down" here is one worker refusing connections to the test's database (ALLOW_CONNECTIONS
false, its sessions ended): to ordercli and the coordinator that is a worker they cannot
reach, while the other tests, which share the cluster, keep theirs.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from citus_helpers import (
    TWO_PC_APP,
    cancel_waiting_to_commit,
    commits_held,
    node_admin,
    orders_on_each_worker,
    prepared_on,
    query,
    rows_per_worker,
    sessions_waiting,
    statuses_and_events,
    workers,
)
from faults import Child, assert_one_error_line, children, wait_until
from helpers import add_customer, add_order, describe, opened, pg_connect, run_script

from ordercli.migrations import LATEST_VERSION
from ordercli.models import Order, OrderEvent


@pytest.fixture
def url(citus_url: str) -> str:
    return citus_url


@contextlib.contextmanager
def worker_down(url: str, port: int) -> Iterator[None]:
    """The worker on `port` refuses the test database's connections until the block ends."""
    name = urlsplit(url).path.lstrip("/")
    admin = node_admin(url, port)
    with pg_connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    try:
        yield
    finally:
        with pg_connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        # Transactions prepared on the worker before it went away are finished now, not
        # when the maintenance daemon next looks (citus.recover_2pc_interval, 1 min).
        query(url, "SELECT recover_prepared_transactions()")


def test_migrate_distributes_the_order_tables_colocated_and_customer_as_reference(url, cli):
    result = cli(url, "migrate")
    assert result.exit_code == 0, describe(result)
    rows = query(
        url,
        "SELECT logicalrelid::text, partmethod, "
        "column_to_column_name(logicalrelid, partkey), colocationid "
        "FROM pg_dist_partition ORDER BY 1",
    )
    by_table = {table: (method, column, colocation) for table, method, column, colocation in rows}
    assert by_table["customer"][0] == "n"  # reference table: a copy on every node
    assert by_table["orders"][:2] == ("h", "id")
    assert by_table["order_item"][:2] == ("h", "order_id")
    assert by_table["order_event"][:2] == ("h", "order_id")
    colocations = {by_table[t][2] for t in ("orders", "order_item", "order_event")}
    assert len(colocations) == 1  # an order, its items and its events on the same shard
    assert set(by_table) == {"customer", "orders", "order_item", "order_event"}
    # shards on both workers
    assert len(set(rows_per_worker(url, "orders"))) == 2


def test_invariants_are_enforced_by_the_database_across_shards(url, cli):
    import psycopg

    assert cli(url, "migrate").exit_code == 0
    with opened(url):
        customer = add_customer("unique@example.com")
        order = add_order(customer, "paid")
    with pg_connect(url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO customer (name, email) VALUES ('x', 'unique@example.com')")
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("DELETE FROM customer WHERE id = %s", (customer,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO orders (customer_id) VALUES (%s)", (customer + 1000,))
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO order_item (order_id, sku, quantity, unit_price_cents) "
                "VALUES (%s, 'SKU-1', 1, 1)",
                (order + 1000,),
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE orders SET status = 'paid ' WHERE id = %s", (order,))
        # the shop's own writer relies on the database's defaults
        new = conn.execute(
            "INSERT INTO orders (customer_id) VALUES (%s) "
            "RETURNING status, total_cents, is_archived, created_at IS NOT NULL",
            (customer,),
        ).fetchone()
        assert new == ("draft", 0, False, True)


def test_seed_spreads_whole_orders_over_both_workers(url, cli):
    result = cli(url, "seed", "--count", "400", "--seed", "7", "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert json.loads(result.stdout)["orders"] == 400
    orders = rows_per_worker(url, "orders")
    items = rows_per_worker(url, "order_item")
    assert len(orders) == 2 and min(orders.values()) > 100, orders
    assert sum(orders.values()) == 400
    assert len(items) == 2 and min(items.values()) > 100, items
    # totals hold on every shard (the join is shard-local: items live with their order)
    wrong = query(
        url,
        "SELECT count(*) FROM orders o WHERE total_cents <> (SELECT "
        "coalesce(sum(quantity * unit_price_cents), 0) FROM order_item i WHERE i.order_id = o.id)",
    )
    assert wrong == [(0,)]


def test_list_and_summary_run_on_the_workers(url, cli):
    """EXPLAIN of the one SELECT each: the work is done by tasks on the workers."""
    assert cli(url, "seed", "--count", "200").exit_code == 0
    from ordercli import queries

    for name, build in (
        ("list", lambda conn: queries.list_query(conn, limit=50)),
        ("list --customer", lambda conn: queries.list_query(conn, customer_id=3)),
        ("summary", lambda conn: queries.summary_query(conn, limit=50)),
    ):
        with opened(url) as conn:
            sql, params = conn.sql(build(conn))
            plan = "\n".join(
                row[0] for row in conn.database.execute_sql("EXPLAIN " + sql, params).fetchall()
            )
        assert "Custom Scan (Citus Adaptive)" in plan, (name, plan)
        assert "port=9701" in plan or "port=9702" in plan, (name, plan)
        if name == "summary":
            # the orders are grouped on the workers (partial aggregates), never shipped
            # to the coordinator row by row
            assert "Group Key: orders.customer_id" in plan or "customer_id" in plan, plan
            worker_part = plan.split("Task Count")[1]
            assert "Aggregate" in worker_part, plan
        else:
            assert "Limit" in plan.split("Task Count")[1], (name, plan)


def test_cancel_across_workers_is_all_or_nothing(url, cli):
    assert cli(url, "migrate").exit_code == 0
    drafts = orders_on_each_worker(url, "draft", 2)
    shipped = orders_on_each_worker(url, "shipped", 1)
    first, second = sorted(drafts)
    refused = [drafts[first][0], drafts[second][0], shipped[second][0]]
    result = cli(url, "cancel", *map(str, refused))
    assert result.exit_code == 1, describe(result)
    with opened(url):
        assert OrderEvent.select().count() == 0
        assert Order.select().where(Order.status == "cancelled").count() == 0
    both = [drafts[first][1], drafts[second][1]]
    result = cli(url, "cancel", *map(str, both), "--format", "json")
    assert result.exit_code == 0, describe(result)
    assert [row["changed"] for row in json.loads(result.stdout)] == [True, True]
    with opened(url):
        assert OrderEvent.select().count() == 2
        assert {o.id for o in Order.select().where(Order.status == "cancelled")} == set(both)
    # archive too, over both workers
    result = cli(url, "archive", *map(str, both))
    assert result.exit_code == 0, describe(result)
    with opened(url):
        assert Order.select().where(Order.is_archived == True).count() == 2  # noqa: E712


def test_concurrent_cancels_of_orders_on_two_workers_give_one_change_each(url, cli):
    """Four processes cancel the same two orders (one per worker) at once."""
    assert cli(url, "migrate").exit_code == 0
    paid = orders_on_each_worker(url, "paid", 1)
    ids = [str(paid[port][0]) for port in sorted(paid)]
    script = [sys.executable, "-m", "ordercli", "--db", url, "cancel", *ids, "--format", "json"]
    procs = [
        subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    changed = [row["changed"] for out, _ in outputs for row in json.loads(out)]
    assert changed.count(True) == 2, outputs
    with opened(url):
        assert OrderEvent.select().count() == 2


def test_migrate_twice_at_once_and_again(url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ordercli", "--db", url, "migrate"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), outputs
    again = run_script(["--db", url, "migrate"])
    assert again.returncode == 0, describe(again)
    assert "Applied" not in again.stdout + again.stderr
    assert len(query(url, "SELECT 1 FROM pg_dist_partition")) == 4


def test_a_worker_down_gives_one_error_line_for_every_command(url, cli):
    assert cli(url, "seed", "--count", "50").exit_code == 0
    paid = orders_on_each_worker(url, "paid", 1)
    down, up = sorted(paid)
    with worker_down(url, down):
        for args in (
            ["list"],
            ["list", "--format", "json"],
            ["summary"],
            ["show", str(paid[down][0])],
            ["cancel", str(paid[down][0])],
            ["cancel", str(paid[up][0]), str(paid[down][0])],
            ["archive", str(paid[up][0]), str(paid[down][0])],
            ["seed", "--count", "20"],
        ):
            assert_one_error_line(Child.ordercli(url, *args).wait())
    # nothing was written: the order on the live worker was not cancelled or archived
    with opened(url):
        order = Order.get_by_id(paid[up][0])
        assert (order.status, order.is_archived) == ("paid", False)
        assert OrderEvent.select().count() == 0
    assert cli(url, "cancel", str(paid[up][0]), str(paid[down][0])).exit_code == 0


def test_migrate_with_a_worker_down(url):
    """A current schema needs nothing from the workers: migrate reports it. A database
    still to be migrated fails with one line, and the next migrate finishes the job."""
    with worker_down(url, workers(url)[-1]):
        assert_one_error_line(Child.ordercli(url, "migrate").wait())
    assert query(url, "SELECT to_regclass('orders')") == [(None,)]  # rolled back whole
    result = run_script(["--db", url, "migrate"])
    assert result.returncode == 0, describe(result)
    assert len(query(url, "SELECT 1 FROM pg_dist_partition")) == 4
    with worker_down(url, workers(url)[-1]):
        result = run_script(["--db", url, "migrate"])
        assert result.returncode == 0, describe(result)
        assert result.stdout.strip() == f"Schema version {LATEST_VERSION} (up to date)"


def test_a_worker_lost_during_a_multi_worker_cancel_leaves_all_or_nothing(url, cli):
    """The worker goes away while the cancel holds its locks, before the commit."""
    assert cli(url, "migrate").exit_code == 0
    paid = orders_on_each_worker(url, "paid", 3)
    ids = [i for port in sorted(paid) for i in paid[port]]
    down = max(paid)
    # A session that holds one of the rows makes the cancel wait inside its transaction,
    # after it locked (and wrote to) the other worker.
    blocker = pg_connect(url)
    blocker.execute("SELECT 1 FROM orders WHERE id = %s FOR UPDATE", (paid[down][-1],))
    try:
        with children() as started:
            child = Child.ordercli(url, "cancel", *map(str, ids))
            started.append(child)
            wait_until(
                lambda: sessions_waiting(url, down, "Lock"),
                "the cancel to wait for the row",
                watch=child,
            )
            with worker_down(url, down):
                blocker.rollback()
                assert_one_error_line(child.wait())
    finally:
        blocker.close()
    with opened(url):
        statuses = {o.status for o in Order.select().where(Order.id.in_(ids))}
        assert statuses == {"paid"}
        assert OrderEvent.select().count() == 0


def test_a_worker_lost_during_seed_leaves_whole_batches(url, cli):
    assert cli(url, "migrate").exit_code == 0
    nodes = workers(url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ordercli", "--db", url, "seed", "--count", "200000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait for the first batches to be committed
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if query(url, "SELECT count(*) FROM orders")[0][0] >= 8192:
            break
        time.sleep(0.2)
    with worker_down(url, nodes[-1]):
        _, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 1, stderr
        assert stderr.strip().splitlines()[-1].startswith("Error: "), stderr
        assert "Traceback" not in stderr
    count = query(url, "SELECT count(*) FROM orders")[0][0]
    assert count > 0 and count % 8192 == 0, count  # whole batches of 8,192 orders
    wrong = query(
        url,
        "SELECT count(*) FROM orders o WHERE total_cents <> (SELECT "
        "coalesce(sum(quantity * unit_price_cents), 0) FROM order_item i WHERE i.order_id = o.id)",
    )
    assert wrong == [(0,)]


def test_coordinator_session_terminated_while_its_commit_waits_finishes_everything(url, cli):
    """Both workers have prepared and the coordinator's commit record is written, but the
    commit waits (for a standby) when the session is terminated: PostgreSQL ends the wait,
    the commit stands, Citus sends COMMIT PREPARED, and only then does the session go. Every
    order is cancelled with one event; the command reports the lost connection, since it
    cannot know the commit stood. (tests/test_faults.py kills the coordinator itself at this
    point, which leaves the prepared halves to Citus's recovery.)"""
    assert cli(url, "migrate").exit_code == 0
    paid = orders_on_each_worker(url, "paid", 2)
    ids = [i for port in sorted(paid) for i in paid[port]]
    with cancel_waiting_to_commit(url, ids) as (child, pid):
        assert all(prepared_on(url, port) == 1 for port in paid)  # both halves prepared
        query(url, "SELECT pg_terminate_backend(%s::int)", (pid,))
        assert_one_error_line(child.wait())
    query(url, "SELECT recover_prepared_transactions()")
    assert statuses_and_events(url, ids) == ({"cancelled"}, len(ids))
    assert all(prepared_on(url, port) == 0 for port in paid)


def test_coordinator_lost_while_a_worker_prepares_changes_nothing(url, cli):
    """One worker has prepared, the other is still preparing, and the coordinator's session
    dies before it decides: Citus's recovery rolls the prepared halves back."""
    assert cli(url, "migrate").exit_code == 0
    paid = orders_on_each_worker(url, "paid", 2)
    ids = [i for port in sorted(paid) for i in paid[port]]
    held = max(paid)
    with commits_held(url, held), children() as started:
        child = Child.ordercli(url, "cancel", *map(str, ids), env={"PGAPPNAME": TWO_PC_APP})
        started.append(child)
        wait_until(
            lambda: sessions_waiting(url, held, "SyncRep"), "the PREPARE to wait", watch=child
        )
        (other,) = set(paid) - {held}
        wait_until(lambda: prepared_on(url, other) == 1, "the other worker to prepare", watch=child)
        query(
            url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (TWO_PC_APP,),
        )
        assert_one_error_line(child.wait())
    query(url, "SELECT recover_prepared_transactions()")
    assert statuses_and_events(url, ids) == ({"paid"}, 0)
    assert all(prepared_on(url, port) == 0 for port in paid)
    # and the same cancel goes through afterwards
    assert cli(url, "cancel", *map(str, ids)).exit_code == 0
    assert statuses_and_events(url, ids) == ({"cancelled"}, len(ids))
