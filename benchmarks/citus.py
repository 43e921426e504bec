"""ordercli on Citus (a coordinator and 2 workers) against one PostgreSQL, in the same run.

    python benchmarks/citus.py [--count 1000000] [--reps 7]
        [--citus-url postgresql://root@127.0.0.1:9700/test]
        [--pg-url postgresql://root@127.0.0.1:5432/test] [--keep]

1. The same `ordercli seed --count N --seed 1` on both (rows/s from seed's own JSON).
2. summary, list (newest, --customer, a rare --email), show, cancel of 1 and of 100
   orders: ordercli's own functions (queries.py, orders.py) in this process, median of
   `--reps` after a warm-up, interleaved Citus/PostgreSQL so drift hits both alike.
3. The distribution column measured both ways on the Citus data: a copy of the tables
   distributed by `customer_id` (schema `bycust`: customer distributed by id, the order
   tables by customer_id, all co-located; order_item and order_event carry customer_id)
   against ordercli's layout (distributed by order id, customer a reference table), for
   summary and the by-id statements of show and cancel.

Both Citus "nodes" and the PostgreSQL server share one machine (2 cores here): the ratios
say what distribution costs in coordination on one box, not what real nodes would gain
(see SOLUTION.md section 8). One Markdown report goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ordercli import orders, queries
from ordercli.backends import CitusBackend, Feature
from ordercli.db import Connection, connect

REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def create_citus_database(admin_url: str, name: str) -> str:
    """A database on the coordinator and every worker, citus everywhere, workers added
    (the default 32 shards, as a user's database would have)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        host0, port0, user = admin.info.host, admin.info.port, admin.info.user
        workers = admin.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeport"
        ).fetchall()
        admin.execute("SET citus.enable_create_database_propagation TO on")
        admin.execute(f'CREATE DATABASE "{name}"')
    for host, port in [(host0, port0), *workers]:
        with psycopg.connect(host=host, port=port, dbname=name, user=user, autocommit=True) as node:
            node.execute("CREATE EXTENSION citus")
    url = with_database(admin_url, name)
    with psycopg.connect(url, autocommit=True) as coordinator:
        coordinator.execute("SELECT citus_set_coordinator_host(%s, %s)", (host0, port0))
        for host, port in workers:
            coordinator.execute("SELECT citus_add_node(%s, %s)", (host, port))
    return url


def drop_citus_database(admin_url: str, name: str) -> None:
    """Drop it on every node. The DROP propagates, but a worker refuses it while sessions
    (the coordinator's cached connections, maintenance daemons) are on the database: end
    them first, and again if one came back meanwhile; then drop what is left per node."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        host0, port0, user = admin.info.host, admin.info.port, admin.info.user
        workers = admin.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0"
        ).fetchall()
    for attempt in range(10):
        for host, port in workers:
            with psycopg.connect(
                host=host, port=port, dbname="postgres", user=user, autocommit=True
            ) as node:
                node.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
        try:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute("SET citus.enable_create_database_propagation TO on")
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.Error as exc:
            log(f"drop {name}: {str(exc).splitlines()[0]} (attempt {attempt + 1})")
            time.sleep(0.5)
    for host, port in [(host0, port0), *workers]:
        with psycopg.connect(
            host=host, port=port, dbname="postgres", user=user, autocommit=True
        ) as node:
            node.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_pg_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name)


def drop_pg_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, count: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "ordercli", "--db", url, "seed", "--count", str(count)]
    command += ["--seed", "1", "--format", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERCLI_")}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    result: dict[str, Any] = json.loads(done.stdout)
    rows = result["customers"] + result["orders"] + result["items"]
    result["rows_per_s"] = rows / result["seconds"]
    return result


def median_ms(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


@contextmanager
def opened(url: str) -> Iterator[Connection]:
    with connect(url, migrate=False) as conn:
        yield conn


def rare_email(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT email FROM customer ORDER BY id DESC LIMIT 1").fetchone()
    assert row is not None, "no customers"
    return str(row[0]).split("@")[0]


def order_ids(url: str, status: str, n: int, offset: int) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id FROM orders WHERE status = %s ORDER BY id LIMIT %s OFFSET %s",
            (status, n, offset),
        ).fetchall()
    return [int(r[0]) for r in rows]


class Cancels:
    """Distinct draft orders for each cancel repetition (a cancelled one is a no-op)."""

    def __init__(self, url: str, per_call: int, calls: int, offset: int) -> None:
        ids = order_ids(url, "draft", per_call * calls, offset)
        self.batches = [ids[i : i + per_call] for i in range(0, len(ids), per_call)]

    def __call__(self, conn: Connection) -> None:
        orders.cancel_orders(conn, self.batches.pop(), reason="bench", actor="bench")


def everyday(url: str, reps: int, offset: int) -> dict[str, Callable[[Connection], object]]:
    needle = rare_email(url)
    one = order_ids(url, "paid", 1, 1000 + offset)[0]
    return {
        "summary (top 50, all time)": lambda conn: queries.summarize_customers(conn, 50),
        "list newest 50": lambda conn: list(queries.list_orders(conn)),
        "list --customer": lambda conn: list(queries.list_orders(conn, customer_id=77)),
        "list --email (rare)": lambda conn: list(queries.list_orders(conn, email=needle)),
        "show": lambda conn: queries.show_order(conn, one),
        "cancel 1 order": Cancels(url, 1, reps + 1, offset),
        "cancel 100 orders": Cancels(url, 100, reps + 1, offset + 1000),
    }


BYCUST_DDL = [
    "DROP SCHEMA IF EXISTS bycust CASCADE",
    "CREATE SCHEMA bycust",
    "SET citus.multi_shard_modify_mode TO 'sequential'",
    "CREATE TABLE bycust.customer (LIKE public.customer INCLUDING DEFAULTS, PRIMARY KEY (id))",
    "CREATE TABLE bycust.orders (LIKE public.orders INCLUDING DEFAULTS, "
    "PRIMARY KEY (customer_id, id))",
    "CREATE TABLE bycust.order_item (LIKE public.order_item INCLUDING DEFAULTS, "
    "customer_id BIGINT NOT NULL, PRIMARY KEY (customer_id, id))",
    "CREATE TABLE bycust.order_event (LIKE public.order_event INCLUDING DEFAULTS, "
    "customer_id BIGINT NOT NULL, PRIMARY KEY (customer_id, id))",
    "SELECT create_distributed_table('bycust.customer', 'id')",
    "SELECT create_distributed_table('bycust.orders', 'customer_id', "
    "colocate_with => 'bycust.customer')",
    "SELECT create_distributed_table('bycust.order_item', 'customer_id', "
    "colocate_with => 'bycust.customer')",
    "SELECT create_distributed_table('bycust.order_event', 'customer_id', "
    "colocate_with => 'bycust.customer')",
    "RESET citus.multi_shard_modify_mode",
    "INSERT INTO bycust.customer SELECT * FROM public.customer",
    "INSERT INTO bycust.orders SELECT * FROM public.orders",
    "INSERT INTO bycust.order_item SELECT i.*, o.customer_id FROM public.order_item i "
    "JOIN public.orders o ON o.id = i.order_id",
    "ALTER TABLE bycust.orders ADD FOREIGN KEY (customer_id) REFERENCES bycust.customer (id)",
    "ALTER TABLE bycust.order_item ADD FOREIGN KEY (customer_id, order_id) "
    "REFERENCES bycust.orders (customer_id, id) ON DELETE CASCADE",
    "CREATE INDEX ON bycust.orders (customer_id, is_archived, status, total_cents, created_at)",
    "CREATE INDEX ON bycust.orders (id)",
    "CREATE INDEX ON bycust.orders (created_at)",
    "CREATE INDEX ON bycust.order_item (order_id)",
    "VACUUM ANALYZE bycust.customer, bycust.orders, bycust.order_item",
]


def distribution_comparison(url: str, reps: int) -> list[tuple[str, float, float]]:
    """The same statements on both layouts, through psycopg (the by-customer layout is a
    copy in schema bycust, reached with search_path)."""
    log("copying the tables into schema bycust (distributed by customer_id)")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in BYCUST_DDL:
            conn.execute(statement)
    with opened(url) as handle:
        sql_grouped, params_grouped = handle.sql(queries.summary_query(handle, 50))
    # ordercli's PostgreSQL summary (join, then group): on the by-customer layout the
    # GROUP BY is by the distribution column, so Citus can push it down whole.
    with opened(url) as handle:
        CitusBackend.features = Feature.NONE
        try:
            sql_joined, params_joined = handle.sql(queries.summary_query(handle, 50))
        finally:
            CitusBackend.features = Feature.SHARDED_ORDERS
    one = order_ids(url, "paid", 1, 5000)[0]
    with psycopg.connect(url) as conn:
        customer = conn.execute("SELECT customer_id FROM orders WHERE id = %s", (one,)).fetchone()
    customer_id = int(customer[0]) if customer else 0
    statements: list[tuple[str, str, Any]] = [
        ("summary: group orders, then join customers", sql_grouped, params_grouped),
        ("summary: join, then group (PostgreSQL's query)", sql_joined, params_joined),
        ("show: the order by id", "SELECT * FROM orders WHERE id = %s", (one,)),
        ("show: its items by order id", "SELECT * FROM order_item WHERE order_id = %s", (one,)),
        (
            "show/cancel: the order by (customer_id, id)",
            "SELECT * FROM orders WHERE customer_id = %s AND id = %s",
            (customer_id, one),
        ),
        (
            "cancel: lock the order by id (FOR UPDATE)",
            "SELECT id, status FROM orders WHERE id = %s FOR UPDATE",
            (one,),
        ),
        (
            "cancel: update by id, rolled back",
            "UPDATE orders SET updated_at = updated_at WHERE id = %s",
            (one,),
        ),
        (
            "list --customer (newest 50 of one customer)",
            "SELECT * FROM orders WHERE customer_id = %s ORDER BY id DESC LIMIT 50",
            (customer_id,),
        ),
    ]
    results = []
    with psycopg.connect(url) as by_id, psycopg.connect(url) as by_customer:
        by_customer.execute("SET search_path TO bycust, public")
        by_customer.commit()

        def runner(conn: Any, sql: str, params: Any) -> Callable[[], object]:
            def run() -> object:
                try:
                    cursor = conn.execute(sql, params)
                    return cursor.fetchall() if sql.startswith("SELECT") else None
                finally:
                    conn.rollback()

            return run

        for label, sql, params in statements:
            cells = []
            for conn in (by_id, by_customer):
                try:
                    cells.append(median_ms(runner(conn, sql, params), reps))
                except psycopg.Error as exc:
                    conn.rollback()
                    log(f"{label}: {str(exc).splitlines()[0]}")
                    cells.append(float("nan"))
            results.append((label, cells[0], cells[1]))
            log(f"{label}: by id {cells[0]:.2f} ms, by customer_id {cells[1]:.2f} ms")
        for label, conn, sql, params in (
            ("summary plan, by id, grouped first", by_id, sql_grouped, params_grouped),
            ("summary plan, by customer_id, joined", by_customer, sql_joined, params_joined),
        ):
            plan = conn.execute("EXPLAIN " + sql, params).fetchall()
            conn.rollback()
            log(label + ":\n" + "\n".join(r[0] for r in plan[:12]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--citus-url", default="postgresql://root@127.0.0.1:9700/test")
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the two databases")
    args = parser.parse_args()
    name = f"ordercli_bench_citus_{uuid.uuid4().hex[:6]}"
    started = time.time()
    citus = create_citus_database(args.citus_url, name)
    postgres = create_pg_database(args.pg_url, name)
    try:
        log(f"seeding {args.count:,} orders on Citus")
        seeded_citus = seed(citus, args.count)
        log(f"Citus: {seeded_citus}")
        log(f"seeding {args.count:,} orders on PostgreSQL")
        seeded_pg = seed(postgres, args.count)
        log(f"PostgreSQL: {seeded_pg}")

        timings: dict[str, list[float]] = {}
        work = {
            "citus": everyday(citus, args.reps, 0),
            "postgresql": everyday(postgres, args.reps, 0),
        }
        for label in work["citus"]:
            for target, url in (("citus", citus), ("postgresql", postgres)):
                with opened(url) as conn:
                    ms = median_ms(functools.partial(work[target][label], conn), args.reps)
                timings.setdefault(label, []).append(ms)
            log(f"{label}: Citus {timings[label][0]:.2f} ms, PostgreSQL {timings[label][1]:.2f} ms")
        layouts = distribution_comparison(citus, args.reps)
        report(args, started, seeded_citus, seeded_pg, timings, layouts)
    finally:
        if not args.keep:
            drop_citus_database(args.citus_url, name)
            drop_pg_database(args.pg_url, name)


def report(
    args: argparse.Namespace,
    started: float,
    seeded_citus: dict[str, Any],
    seeded_pg: dict[str, Any],
    timings: dict[str, list[float]],
    layouts: list[tuple[str, float, float]],
) -> None:
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()
    print(f"# Citus (coordinator + 2 workers) vs PostgreSQL, {args.count:,} orders\n")
    print(
        f"Commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{os.cpu_count()} cores ({platform.machine()}), load average {load[0]:.1f} at the end; "
        f"every node on this one machine. Medians of {args.reps} after a warm-up.\n"
    )
    print("## Seed (`ordercli seed --count N --seed 1`)\n")
    print("| | Citus | PostgreSQL | Citus / PostgreSQL |\n|---|---|---|---|")
    print(
        f"| rows/s | {seeded_citus['rows_per_s']:,.0f} | {seeded_pg['rows_per_s']:,.0f} | "
        f"{seeded_pg['rows_per_s'] / seeded_citus['rows_per_s']:.2f}× slower |"
    )
    print(
        f"| seconds | {seeded_citus['seconds']:.1f} | {seeded_pg['seconds']:.1f} | "
        f"{seeded_citus['seconds'] / seeded_pg['seconds']:.2f}× |\n"
    )
    print("## Everyday commands (ordercli's functions, in-process)\n")
    print("| | Citus | PostgreSQL | Citus / PostgreSQL |\n|---|---|---|---|")
    for label, (c, p) in timings.items():
        print(f"| {label} | {c:.2f} ms | {p:.2f} ms | {c / p:.2f}× |")
    print("\n## Distribution column, on the Citus data (statements through psycopg)\n")
    print("| | by order id (ordercli) | by customer_id | customer_id / id |\n|---|---|---|---|")
    for label, by_id, by_customer in layouts:
        refused = by_customer != by_customer  # NaN: Citus refused the statement
        cells = "refused | —" if refused else f"{by_customer:.2f} ms | {by_customer / by_id:.2f}×"
        print(f"| {label} | {by_id:.2f} ms | {cells} |")


if __name__ == "__main__":
    main()
