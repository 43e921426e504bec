"""How long does the shop wait while `ordercli migrate` upgrades a live PostgreSQL?

Seeds a throw-away database with N orders at the schema version before the newest
(`--from-version`, default: the one before the latest), starts a writer that keeps
inserting orders (one order and one item per transaction, as the shop's application
would), runs `ordercli migrate` as a separate process, and prints the writer's longest
wait and its latency percentiles during the migration.

    python benchmarks/migrate_under_load.py postgresql://root@127.0.0.1:5432/test --orders 1000000
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

import ordercli.migrations as migrations
from ordercli.db import connect
from ordercli.seeding import seed


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _first(row: tuple[Any, ...] | None) -> Any:
    assert row is not None
    return row[0]


def writer(url: str, stop: threading.Event, latencies: list[tuple[float, float]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        customer = _first(conn.execute("SELECT MIN(id) FROM customer").fetchone())
        while not stop.is_set():
            started = time.perf_counter()
            with conn.transaction():
                order = _first(
                    conn.execute(
                        "INSERT INTO orders (customer_id, status, total_cents) "
                        "VALUES (%s, 'paid', 499) RETURNING id",
                        (customer,),
                    ).fetchone()
                )
                conn.execute(
                    "INSERT INTO order_item (order_id, sku, quantity, unit_price_cents) "
                    "VALUES (%s, 'SKU-1', 1, 499)",
                    (order,),
                )
            ended = time.perf_counter()
            latencies.append((started, ended - started))
            time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "url", help="PostgreSQL URL of a database the user may CREATE DATABASE from"
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--from-version", type=int, default=migrations.LATEST_VERSION - 1)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args()

    name = f"ordercli_bench_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(args.url, name)
    try:
        saved = migrations.MIGRATIONS, migrations.LATEST_VERSION
        migrations.MIGRATIONS = saved[0][: args.from_version]
        migrations.LATEST_VERSION = args.from_version
        t0 = time.perf_counter()
        with connect(url) as conn:
            seeded = seed(conn, args.orders, None, 42)
        migrations.MIGRATIONS, migrations.LATEST_VERSION = saved
        print(
            f"seeded {seeded.orders:,} orders, {seeded.items:,} items at schema version "
            f"{args.from_version} in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

        latencies: list[tuple[float, float]] = []
        stop = threading.Event()
        thread = threading.Thread(target=writer, args=(url, stop, latencies))
        thread.start()
        time.sleep(3)  # the writer's latency before the migration, for comparison
        script = Path(sys.executable).with_name("ordercli")
        migrate_started = time.perf_counter()
        done = subprocess.run(
            [str(script), "--db", url, "--echo-sql", "migrate"],
            capture_output=True,
            text=True,
            check=False,
        )
        migrate_ended = time.perf_counter()
        time.sleep(2)
        stop.set()
        thread.join()
        print(done.stdout.strip(), f"(exit {done.returncode})")
        if done.returncode != 0:
            print(done.stderr[-3000:])
        before = [d for s, d in latencies if s < migrate_started]
        during = [d for s, d in latencies if migrate_started <= s <= migrate_ended]
        after = [d for s, d in latencies if s > migrate_ended]
        print(f"ordercli migrate took {migrate_ended - migrate_started:.2f} s")
        for label, values in (("before", before), ("during", during), ("after", after)):
            if not values:
                continue
            values.sort()
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            print(
                f"writer {label:>6}: {len(values):6,} inserts, median "
                f"{statistics.median(values) * 1000:7.2f} ms, p99 {p99 * 1000:8.2f} ms, "
                f"longest wait {values[-1] * 1000:8.2f} ms"
            )
        statements = [line for line in done.stderr.splitlines() if line.startswith("SQL: ")]
        print(f"{len(statements)} statements echoed by migrate")
    finally:
        if not args.keep:
            with psycopg.connect(args.url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
