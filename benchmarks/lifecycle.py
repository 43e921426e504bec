"""Benchmark the order-lifecycle commands against the raw driver running the same SQL.

    python benchmarks/lifecycle.py [--backends sqlite,postgresql,mysql] [--orders 1000000]
        [--reps 5] [--pg-url postgresql://root@127.0.0.1:5432/postgres]
        [--mysql-url mysql://root@127.0.0.1:3306/] [--workdir /tmp/ordercli-lifecycle]
        [--fresh] [--operations moves,reads]

What is timed, per backend, on one dataset of `--orders` orders (`ordercli seed --seed 1`;
an existing dataset of that size, `lifecycle_<orders>`, is reused unless `--fresh`):
- `pay` and `ship` of 1 and of 1,000 ids: `orders.change_status` in-process, against the
  raw driver (sqlite3, psycopg 3, PyMySQL) replaying, in one transaction, the very
  statements ordercli sent (captured from Peewee's logger: the locking SELECT, the UPDATE,
  the INSERT of the events). Before every timed run the orders are put back (untimed).
- `customers --email` with a rare needle (one customer of ~125,000 at 1M orders) and
  `customers` (newest 50): `queries.list_customers` against the same SELECT, raw.
- `revenue --by day|week|month`: `queries.revenue` (the GROUP BY, and the gaps filled in
  Python) against the raw driver running the same GROUP BY.
Every timing is the median of `--reps` runs after one warm-up, ordercli and raw
interleaved; compare ratios within one report. Progress on stderr, a Markdown report on
stdout.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ordercli
from ordercli.db import Connection, connect, database
from ordercli.domain import Period, Status
from ordercli.orders import change_status
from ordercli.queries import customers_query, list_customers, revenue, revenue_query
from ordercli.urls import DatabaseUrl

TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)
BATCH = 1000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the backends ----------------------------------------------------------------------------


class Target:
    """One backend: where its dataset lives and how to reach it with the raw driver."""

    name: str

    def url(self, db: str) -> str:
        raise NotImplementedError

    def exists(self, db: str) -> bool:
        raise NotImplementedError

    def drop(self, db: str) -> None:
        raise NotImplementedError

    def create(self, db: str) -> None:
        """An empty database (ordercli's first use migrates it)."""

    def raw(self, url: str) -> Any:
        raise NotImplementedError

    def begin(self, conn: Any) -> None:
        """Open the raw transaction as ordercli opens its write transaction."""

    def query(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        cursor = conn.cursor()
        cursor.execute(sql, tuple(params))
        rows = cursor.fetchall() if cursor.description else []
        cursor.close()
        return list(rows)


class SqliteTarget(Target):
    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def path(self, db: str) -> Path:
        return self.workdir / f"{db}.db"

    def url(self, db: str) -> str:
        return f"sqlite:///{self.path(db)}"

    def exists(self, db: str) -> bool:
        return self.path(db).exists()

    def drop(self, db: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path(db)}{suffix}").unlink(missing_ok=True)

    def raw(self, url: str) -> sqlite3.Connection:
        conn = sqlite3.connect(DatabaseUrl.parse(url).database, isolation_level=None)
        for pragma in ("foreign_keys = 1", "synchronous = normal", "busy_timeout = 30000"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")


class PostgresTarget(Target):
    name = "postgresql"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url(self, db: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{db}"))

    def _admin(self, sql: str) -> list[Any]:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def exists(self, db: str) -> bool:
        return bool(self._admin(f"SELECT 1 FROM pg_database WHERE datname = '{db}'"))

    def drop(self, db: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def create(self, db: str) -> None:
        self._admin(f'CREATE DATABASE "{db}"')

    def raw(self, url: str) -> Any:
        import psycopg

        parsed = DatabaseUrl.parse(url)
        return psycopg.connect(dbname=parsed.database, **parsed.connect_params)


class MySqlTarget(Target):
    name = "mysql"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url(self, db: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{db}"))

    def _connect(self, database_name: str | None = None) -> Any:
        import pymysql

        parts = urlsplit(self.admin_url)
        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            database=database_name,
            charset="utf8mb4",
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )

    def _admin(self, sql: str) -> list[Any]:
        conn = self._connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def exists(self, db: str) -> bool:
        return bool(self._admin(f"SHOW DATABASES LIKE '{db}'"))

    def drop(self, db: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS `{db}`")

    def create(self, db: str) -> None:
        self._admin(f"CREATE DATABASE `{db}`")

    def raw(self, url: str) -> Any:
        return self._connect(DatabaseUrl.parse(url).database)


# --- timing ----------------------------------------------------------------------------------


@dataclass
class Row:
    backend: str
    operation: str
    ordercli_ms: float
    raw_ms: float
    statements: int
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.ordercli_ms / self.raw_ms if self.raw_ms else float("nan")


def interleaved(
    reps: int,
    ours: Callable[[], object],
    raw: Callable[[], object],
    before: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """Median milliseconds of `ours` and `raw`, one warm-up each, runs interleaved;
    `before` runs (untimed) before every run of either."""
    times: dict[str, list[float]] = {"ours": [], "raw": []}
    for rep in range(reps + 1):
        for label, work in (
            (("ours", ours), ("raw", raw)) if rep % 2 else (("raw", raw), ("ours", ours))
        ):
            before()
            start = time.perf_counter()
            work()
            elapsed = (time.perf_counter() - start) * 1000
            if rep:  # the first round is the warm-up
                times[label].append(elapsed)
    return statistics.median(times["ours"]), statistics.median(times["raw"])


class Capture(logging.Handler):
    """The statements Peewee sends (what --echo-sql prints), with their parameters."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and not TRANSACTION_CONTROL.match(record.msg[0]):
            sql, params = record.msg
            self.statements.append((sql, tuple(params or ())))


@contextmanager
def captured() -> Iterator[Capture]:
    logger = logging.getLogger("peewee")
    handler = Capture()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- the measurements ------------------------------------------------------------------------


def seeded(target: Target, orders: int, fresh: bool) -> str:
    db = f"lifecycle_{orders}"
    url = target.url(db)
    if fresh:
        target.drop(db)
    if target.exists(db):
        with connect(url):
            count = database.execute_sql("SELECT COUNT(*) FROM orders").fetchone()[0]
        if count == orders:
            log(f"{target.name}: reusing {db} ({count:,} orders)")
            return url
        target.drop(db)
    target.create(db)
    log(f"{target.name}: seeding {orders:,} orders into {db}")
    script = Path(sys.executable).with_name("ordercli")
    start = time.perf_counter()
    subprocess.run(
        [
            str(script),
            "--db",
            url,
            "seed",
            "--count",
            str(orders),
            "--seed",
            "1",
            "--format",
            "json",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log(f"{target.name}: seeded in {time.perf_counter() - start:.0f} s")
    return url


def status_moves(handle: Connection, target: Target, url: str, reps: int) -> list[Row]:
    rows = []
    conn = target.raw(url)
    draft = [
        r[0]
        for r in target.query(
            conn, f"SELECT id FROM orders WHERE status = 'draft' ORDER BY id LIMIT {BATCH}"
        )
    ]
    conn.commit()
    moves = (("pay", Status.PAID, "draft"), ("ship", Status.SHIPPED, "paid"))
    for command, goal, source in moves:
        for count in (1, BATCH):
            ids = draft[:count]
            listed = ", ".join(map(str, ids))

            def reset(listed: str = listed, source: str = source) -> None:
                target.query(conn, f"DELETE FROM order_event WHERE order_id IN ({listed})")
                target.query(conn, f"UPDATE orders SET status = '{source}' WHERE id IN ({listed})")
                conn.commit()

            reset()
            with captured() as capture:
                results = change_status(handle, ids, goal, reason="benchmark", actor="bench")
            assert all(r.changed for r in results), "every order moved"
            statements = capture.statements

            def replay(statements: list[tuple[str, tuple[Any, ...]]] = statements) -> None:
                target.begin(conn)
                for sql, params in statements:
                    target.query(conn, sql, params)
                conn.commit()

            def ours(ids: list[int] = ids, goal: Status = goal) -> None:
                change_status(handle, ids, goal, reason="benchmark", actor="bench")

            mine, raw = interleaved(reps, ours, replay, before=reset)
            rows.append(Row(target.name, f"{command} {count:,} id{'s' if count > 1 else ''}",
                            mine, raw, len(statements)))  # fmt: skip
            log(f"{target.name}: {rows[-1].operation}: {mine:.2f} ms vs raw {raw:.2f} ms")
            reset()
    conn.close()
    return rows


def reads(handle: Connection, target: Target, url: str, reps: int, needle: str) -> list[Row]:
    rows = []
    conn = target.raw(url)
    cases: list[tuple[str, Callable[[], object], Any]] = [
        (
            f"customers --email {needle}",
            lambda: list(list_customers(handle, email=needle)),
            customers_query(handle, email=needle),
        ),
        (
            "customers (newest 50)",
            lambda: list(list_customers(handle)),
            customers_query(handle),
        ),
    ]
    for period in Period:
        cases.append(
            (
                f"revenue --by {period.value}",
                _revenue_of(handle, period),
                revenue_query(handle, period),
            )
        )
    for operation, ours, query in cases:
        sql, params = handle.sql(query)

        def raw(sql: str = sql, params: Sequence[Any] = params) -> None:
            target.query(conn, sql, params)
            conn.commit()

        with captured() as capture:
            found = ours()
        assert [s for s, _ in capture.statements] == [sql], "ordercli ran this one SELECT"
        mine, raw_ms = interleaved(reps, ours, raw)
        size = len(found) if isinstance(found, list) else 0
        rows.append(Row(target.name, operation, mine, raw_ms, 1, f"{size} rows"))
        log(f"{target.name}: {operation}: {mine:.2f} ms vs raw {raw_ms:.2f} ms")
    conn.close()
    return rows


def _revenue_of(handle: Connection, period: Period) -> Callable[[], object]:
    return lambda: revenue(handle, period)


def rare_needle() -> str:
    """An email fragment that only one seeded customer has: 'user12345.'."""
    highest = database.execute_sql("SELECT MAX(id) FROM customer").fetchone()[0]
    return f"user{max(1, int(highest) // 10)}."


def report(rows: list[Row], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = [
        f"# ordercli lifecycle benchmark — {args.orders:,} orders",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC · ordercli "
        f"{ordercli.__version__} · Python {platform.python_version()} · {os.cpu_count()} CPUs · "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} · median of {args.reps} after a warm-up",
        "",
        "| backend | operation | ordercli ms | raw driver ms | ratio | statements | |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.backend} | `{row.operation}` | {row.ordercli_ms:,.2f} | "
            f"{row.raw_ms:,.2f} | {row.ratio:.2f}× | {row.statements} | {row.note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1:5432/postgres")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ordercli-lifecycle"))
    parser.add_argument("--fresh", action="store_true", help="re-seed even if a dataset exists")
    parser.add_argument(
        "--operations", default="moves,reads", help="moves (pay, ship), reads (customers, revenue)"
    )
    args = parser.parse_args(argv)
    targets: dict[str, Callable[[], Target]] = {
        "sqlite": lambda: SqliteTarget(args.workdir),
        "postgresql": lambda: PostgresTarget(args.pg_url),
        "mysql": lambda: MySqlTarget(args.mysql_url),
    }
    rows: list[Row] = []
    for name in args.backends.split(","):
        target = targets[name]()
        url = seeded(target, args.orders, args.fresh)
        with connect(url) as handle:
            needle = rare_needle()
            if "moves" in args.operations:
                rows += status_moves(handle, target, url, args.reps)
            if "reads" in args.operations:
                rows += reads(handle, target, url, args.reps, needle)
    sys.stdout.write(report(rows, args))


if __name__ == "__main__":
    main()
