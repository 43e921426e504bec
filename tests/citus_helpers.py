"""Queries and fault levers for the Citus tests (tests/test_citus.py, tests/test_faults.py):
where an order's shard lives, per-node queries, and the 2PC window held open."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from faults import Child, children, wait_until
from helpers import add_customer, add_order, opened, pg_connect

from ordercli.models import Order, OrderEvent

# The application name the 2PC tests give their `cancel`, to find its coordinator session.
TWO_PC_APP = "ordercli-2pc-test"


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with pg_connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def worker_of(url: str, order_id: int) -> int:
    """The port of the worker holding an order (its shard)."""
    rows = query(
        url,
        "SELECT nodeport FROM citus_shards WHERE table_name = 'orders'::regclass "
        "AND shardid = get_shard_id_for_distribution_column('orders', %s)",
        (order_id,),
    )
    return int(rows[0][0])


def workers(url: str) -> list[int]:
    rows = query(url, "SELECT nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeport")
    return [int(port) for (port,) in rows]


def rows_per_worker(url: str, table: str) -> dict[int, int]:
    rows = query(
        url,
        "SELECT s.nodeport, sum(r.result::bigint) "
        "FROM run_command_on_shards(%s, 'SELECT count(*) FROM %%s') AS r "
        "JOIN citus_shards AS s USING (shardid) GROUP BY s.nodeport",
        (table,),
    )
    return {int(port): int(count) for port, count in rows}


def orders_on_each_worker(url: str, status: str, per_worker: int) -> dict[int, list[int]]:
    """Make orders until each worker holds `per_worker` of them; {port: [ids]}."""
    nodes = workers(url)
    placed: dict[int, list[int]] = {port: [] for port in nodes}
    with opened(url):
        customer = add_customer(f"{status}@example.com")
        while min(len(ids) for ids in placed.values()) < per_worker:
            order = add_order(customer, status)
            placed[worker_of(url, order)].append(order)
    return {port: ids[:per_worker] for port, ids in placed.items()}


def node_admin(url: str, port: int) -> str:
    parts = urlsplit(url)
    return f"postgresql://{parts.username}@{parts.hostname}:{port}/postgres"


@contextlib.contextmanager
def commits_held(url: str, port: int) -> Iterator[None]:
    """Until the block ends, every commit and PREPARE TRANSACTION of the test database on
    the node at `port` waits for a synchronous standby that does not exist: the window
    between 2PC's two phases, held open on purpose. Other databases on the node keep the
    cluster's synchronous_commit = off and are not affected."""
    name = urlsplit(url).path.lstrip("/")
    nowhere = "ordercli_test_no_standby"
    with pg_connect(node_admin(url, port), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
        conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{nowhere}'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        wait_until(  # the postmaster reloads asynchronously; new sessions must see it
            lambda: node_query(url, port, "SHOW synchronous_standby_names") == [(nowhere,)],
            "the node to load synchronous_standby_names",
        )
        yield
    finally:
        with pg_connect(node_admin(url, port), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f'ALTER DATABASE "{name}" RESET synchronous_commit')


@contextlib.contextmanager
def cancel_waiting_to_commit(url: str, ids: list[int]) -> Iterator[tuple[Child, int]]:
    """A running `cancel` of `ids` whose commit waits on the coordinator (commits_held),
    after the workers have prepared; yields the child and its coordinator backend's pid.
    The window between 2PC's commit record and COMMIT PREPARED."""
    coordinator = urlsplit(url).port
    assert coordinator is not None
    with commits_held(url, coordinator), children() as started:
        child = Child.ordercli(url, "cancel", *map(str, ids))
        started.append(child)
        (pid,) = wait_until(
            lambda: sessions_waiting(url, coordinator, "SyncRep"), "the commit to wait", watch=child
        )
        yield child, pid


def node_query(url: str, port: int, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """A query on one node's copy of the test database."""
    parts = urlsplit(url)
    node = f"postgresql://{parts.username}@{parts.hostname}:{port}{parts.path}"
    return query(node, sql, params)


def sessions_waiting(url: str, port: int, event: str) -> list[int]:
    """Pids of the test database's sessions on a node waiting on `event`: a wait event
    (SyncRep) or a wait event type (Lock)."""
    rows = node_query(
        url,
        port,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND %s IN (wait_event, wait_event_type)",
        (event,),
    )
    return [int(pid) for (pid,) in rows]


def statuses_and_events(url: str, ids: list[int]) -> tuple[set[str], int]:
    with opened(url):
        statuses = {o.status for o in Order.select().where(Order.id.in_(ids))}
        return statuses, OrderEvent.select().where(OrderEvent.order.in_(ids)).count()


def prepared_on(url: str, port: int) -> int:
    """Transactions of the test database prepared (2PC's first phase) on a node."""
    sql = "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()"
    return int(node_query(url, port, sql)[0][0])
