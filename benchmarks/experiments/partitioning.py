"""Try PostgreSQL declarative partitioning of `orders` / `order_item` by month, and measure it.

    python benchmarks/partitioning.py [--count 1000000] [--reps 5]
        [--pg-url postgresql://root@127.0.0.1:5432/postgres] [--db-name NAME] [--keep]

Why: monthly RANGE partitions on created_at are the usual answer to "orders keeps
growing": an old month goes with a DROP instead of a DELETE, and time-windowed queries
read only their months. The price: every unique key must contain created_at (so
order_item carries its order's created_at), and a lookup by id alone probes every
partition. This script measures both sides on the same data, in one run, with the SQL
ordercli really runs, and checks what of ordercli and of CONTRACT.md survives.

1. A throw-away database seeded by `ordercli seed --seed 1`; a partitioned copy of
   orders / order_item / order_event in schema `part` (customer and ordercli_migration
   stay in `public`, shared), copied with INSERT ... SELECT, indexed, VACUUM ANALYZEd.
2. Each operation on both layouts (search_path `public` or `part,public`), median of
   --reps after a warm-up, interleaved; writes run in a transaction that is rolled back.
   EXPLAIN ANALYZE counts the partitions each one reads.
3. ordercli itself against `part` (URL `?options=-csearch_path%3Dpart,public`), the
   contract's invariants, id uniqueness across partitions.
4. One Markdown report on stdout (progress on stderr); the database is dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ordercli.db import connect, database
from ordercli.errors import OrderCliError
from ordercli.orders import cancel_orders
from ordercli.queries import list_orders, show_order, summarize_customers

REPO = Path(__file__).resolve().parent.parent
ORDERCLI = Path(sys.executable).with_name("ordercli")
PART = "part"
LAYOUTS = ("plain", "part")
SEARCH_PATH = {"plain": "public", "part": f"{PART},public"}
ACTOR = "partitioning-bench"
CONNECT_ATTEMPTS = 120  # one a second
TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)
WHITESPACE = re.compile(r"\s+")
ITEM_COUNT_BY_ID = 'WHERE ("t3"."order_id" = "t1"."id")'
ITEM_COUNT_BY_KEY = (
    'WHERE (("t3"."order_id" = "t1"."id") AND ("t3"."order_created_at" = "t1"."created_at"))'
)
ORDER_BY_ID = 'WHERE ("t1"."id" = %s)'
ORDER_BY_KEY = 'WHERE (("t1"."id" = %s) AND ("t1"."created_at" = %s))'

_started = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def fetch_row(conn: psycopg.Connection[Any], sql: str, params: Any = ()) -> Any:
    """The one row a query returns (it always returns one)."""
    row = conn.execute(sql, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {sql}")
    return row


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return f"{type(exc).__name__}: {lines[0][:240]}"


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[Any, ...] = ()

    @property
    def text(self) -> str:
        """The statement as `--echo-sql` prints it (whitespace collapsed)."""
        return WHITESPACE.sub(" ", self.sql).strip()


class Capture(logging.Handler):
    """Every statement Peewee sends, with its parameters: the handler behind ordercli's
    `--echo-sql` sees the same log records, so these are the statements it prints."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[Statement] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        if isinstance(msg, tuple) and not TRANSACTION_CONTROL.match(msg[0]):
            self.statements.append(Statement(msg[0], tuple(msg[1] or ())))


@contextlib.contextmanager
def captured() -> Iterator[list[Statement]]:
    logger = logging.getLogger("peewee")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class _Rollback(Exception):
    """Leaves the outer transaction of a captured cancel without committing it."""


@dataclass(frozen=True)
class Picks:
    """The data-dependent arguments: windows, an order and its customer."""

    months: list[datetime.datetime]  # bounds of the monthly partitions (month_starts)
    since_30d: datetime.datetime
    month_start: datetime.datetime  # the deep one-month window, mid-year
    month_end: datetime.datetime
    retention_start: datetime.datetime  # the oldest full month
    retention_end: datetime.datetime
    order_id: int
    order_created_at: datetime.datetime
    customer_id: int


def ordercli_statements(url: str, picks: Picks) -> dict[str, list[Statement]]:
    """The SQL (and parameters) of each command, taken from ordercli running in-process
    against the plain layout; cancel runs inside a transaction that is rolled back."""

    def cancel() -> None:
        with contextlib.suppress(_Rollback), database.obj.atomic():
            cancel_orders([picks.order_id], reason="benchmark", actor=ACTOR)
            raise _Rollback

    work: dict[str, Callable[[], object]] = {
        "summary": lambda: summarize_customers(50),
        "summary_30d": lambda: summarize_customers(50, since=picks.since_30d),
        "list_newest": lambda: list(list_orders(limit=50)),
        "list_month": lambda: list(
            list_orders(since=picks.month_start, until=picks.month_end, limit=50)
        ),
        "list_customer": lambda: list(list_orders(customer_id=picks.customer_id, limit=50)),
        "show": lambda: show_order(picks.order_id),
        "cancel": cancel,
    }
    for _attempt in range(CONNECT_ATTEMPTS):
        found: dict[str, list[Statement]] = {}
        try:
            with connect(url):
                for key, run in work.items():
                    with captured() as statements:
                        run()
                    found[key] = list(statements)
            return found
        except OrderCliError as exc:  # only for want of a free connection slot
            if not is_full(str(exc)):
                raise
            time.sleep(1)
    raise RuntimeError("no free connection slot on the server")


def cli_args(picks: Picks) -> dict[str, list[str]]:
    """The ordercli command lines equivalent to `ordercli_statements`."""
    return {
        "summary": ["summary"],
        "summary_30d": ["summary", "--since", picks.since_30d.isoformat()],
        "list_newest": ["list"],
        "list_month": [
            "list",
            "--since",
            picks.month_start.isoformat(),
            "--until",
            picks.month_end.isoformat(),
        ],
        "list_customer": ["list", "--customer", str(picks.customer_id)],
        "show": ["show", str(picks.order_id)],
        "cancel": ["cancel", str(picks.order_id), "--dry-run"],  # its SELECT ... FOR UPDATE
    }


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`ordercli --db URL ARGS...`, run again while the server has no free connection."""
    env = {**os.environ, "ORDERCLI_ACTOR": ACTOR, "NO_COLOR": "1"}
    env.pop("ORDERCLI_DATABASE_URL", None)
    for _attempt in range(CONNECT_ATTEMPTS):
        result = subprocess.run(
            [str(ORDERCLI), "--db", url, *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if not is_full(result.stderr):
            break
        time.sleep(1)
    return result


def is_full(text: str) -> bool:
    """The server refused a connection because all its slots are taken (by others)."""
    return "too many clients" in text or "remaining connection slots" in text


def pg_connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """psycopg.connect, waiting for a free slot: the shared server (max_connections 100)
    is crowded by other people's test suites."""
    for _attempt in range(CONNECT_ATTEMPTS - 1):
        try:
            return psycopg.connect(url, **kwargs)
        except psycopg.OperationalError as exc:
            if not is_full(str(exc)):
                raise
            time.sleep(1)
    return psycopg.connect(url, **kwargs)


def echoed(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line[5:] for line in result.stderr.splitlines() if line.startswith("SQL: ")]


def partition_aware(statement: Statement) -> Statement:
    """ordercli's statement with the item count joined on (order_id, order_created_at), so
    that the correlated subquery can prune order_item partitions (a hypothetical ordercli)."""
    if ITEM_COUNT_BY_ID not in statement.sql:
        raise RuntimeError("ordercli's item-count subquery changed; update partition_aware")
    return Statement(statement.sql.replace(ITEM_COUNT_BY_ID, ITEM_COUNT_BY_KEY), statement.params)


def by_id_and_created_at(statement: Statement, created_at: datetime.datetime) -> Statement:
    """show's order lookup, also given the order's created_at (prunes to one partition)."""
    if statement.sql.count(ORDER_BY_ID) != 1 or len(statement.params) != 2:
        raise RuntimeError("ordercli's show query changed; update by_id_and_created_at")
    order_id, limit = statement.params
    return Statement(
        statement.sql.replace(ORDER_BY_ID, ORDER_BY_KEY), (order_id, created_at, limit)
    )


# --------------------------------------------------------------------------- the database


def database_url(server_url: str, name: str, query: str = "") -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, query, ""))


class Layout:
    """One autocommit connection per layout, like ordercli's, with server-side prepared
    statements off: ordercli runs each statement once per process, so always planned
    with its parameter values (which is what lets the planner prune partitions)."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = pg_connect(
                self.url,
                autocommit=True,
                prepare_threshold=None,
                options=f"-c search_path={SEARCH_PATH[self.name]}",
            )
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def run(self, statements: Sequence[Statement], write: bool) -> float:
        """Seconds to run the statements (rows fetched); a write runs in a transaction that
        is rolled back afterwards (the rollback is not timed)."""
        with contextlib.ExitStack() as stack:
            if write:
                stack.enter_context(self.conn.transaction(force_rollback=True))
            cursor = stack.enter_context(self.conn.cursor())
            started = time.perf_counter()
            for statement in statements:
                cursor.execute(statement.sql, statement.params)
                if cursor.description is not None:
                    cursor.fetchall()
            return time.perf_counter() - started

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None


def month_starts(lo: datetime.datetime, hi: datetime.datetime) -> list[datetime.datetime]:
    """Partition bounds: the first day of every month from lo's to hi's, of the month
    after (created ahead, as a cron job would, so new orders never land in the default
    partition), and of the one after that (its upper bound)."""
    month = datetime.datetime(lo.year, lo.month, 1)
    months = []
    while month <= hi:
        months.append(month)
        month = next_month(month)
    return [*months, month, next_month(month)]


def next_month(day: datetime.datetime) -> datetime.datetime:
    return datetime.datetime(day.year + day.month // 12, day.month % 12 + 1, 1)


def suffix(month: datetime.datetime) -> str:
    return f"p{month:%Y_%m}"


def partitioned_ddl(months: Sequence[datetime.datetime]) -> list[str]:
    """The partitioned tables, before data. Keys and indexes come after the copy.

    Same columns, defaults and CHECKs as migration 1, except: no PRIMARY KEY yet (it will
    be (id, created_at)); order_item and order_event gain order_created_at, the partition
    key of the orders row they point at, because a foreign key must reference a unique key
    and the only unique key a partitioned orders can have includes created_at."""
    ts = "TIMESTAMP(6) WITHOUT TIME ZONE"
    now = "(now() AT TIME ZONE 'UTC')"
    ddl = [
        f"CREATE SCHEMA {PART}",
        f"""CREATE TABLE {PART}.orders (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY,
            customer_id BIGINT NOT NULL,
            status VARCHAR(20) NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'paid', 'shipped', 'cancelled')),
            total_cents INTEGER NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
            is_archived BOOLEAN NOT NULL DEFAULT FALSE,
            created_at {ts} NOT NULL DEFAULT {now},
            updated_at {ts} NOT NULL DEFAULT {now}
        ) PARTITION BY RANGE (created_at)""",
        f"""CREATE TABLE {PART}.order_item (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY,
            order_id BIGINT NOT NULL,
            order_created_at {ts} NOT NULL,
            sku VARCHAR(64) NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity >= 1),
            unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0)
        ) PARTITION BY RANGE (order_created_at)""",
        f"""CREATE TABLE {PART}.order_event (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            order_id BIGINT NOT NULL,
            order_created_at {ts} NOT NULL,
            from_status VARCHAR(20) NOT NULL,
            to_status VARCHAR(20) NOT NULL,
            reason TEXT,
            actor TEXT,
            created_at {ts} NOT NULL DEFAULT {now}
        )""",
        # ordercli's cancel inserts (order_id, ...) only: look the key up. Every partition is
        # probed (by id alone), but order_event is not partitioned, so this can work at all.
        f"""CREATE FUNCTION {PART}.order_event_order_created_at() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.order_created_at IS NULL THEN
                    SELECT o.created_at INTO NEW.order_created_at
                    FROM {PART}.orders o WHERE o.id = NEW.order_id;
                END IF;
                RETURN NEW;
            END $$""",
        f"""CREATE TRIGGER order_event_order_created_at BEFORE INSERT ON {PART}.order_event
            FOR EACH ROW EXECUTE FUNCTION {PART}.order_event_order_created_at()""",
    ]
    for lo, hi in zip(months, months[1:], strict=False):
        for table in ("orders", "order_item"):
            ddl.append(
                f"CREATE TABLE {PART}.{table}_{suffix(lo)} PARTITION OF {PART}.{table} "
                f"FOR VALUES FROM ('{lo:%Y-%m-%d}') TO ('{hi:%Y-%m-%d}')"
            )
    for table in ("orders", "order_item"):
        ddl.append(f"CREATE TABLE {PART}.{table}_default PARTITION OF {PART}.{table} DEFAULT")
    return ddl


COPY = [
    f"""INSERT INTO {PART}.orders
        (id, customer_id, status, total_cents, is_archived, created_at, updated_at)
        SELECT id, customer_id, status, total_cents, is_archived, created_at, updated_at
        FROM public.orders""",
    f"""INSERT INTO {PART}.order_item
        (id, order_id, order_created_at, sku, quantity, unit_price_cents)
        SELECT i.id, i.order_id, o.created_at, i.sku, i.quantity, i.unit_price_cents
        FROM public.order_item i JOIN public.orders o ON o.id = i.order_id""",
    f"""INSERT INTO {PART}.order_event
        (id, order_id, order_created_at, from_status, to_status, reason, actor, created_at)
        SELECT e.id, e.order_id, o.created_at, e.from_status, e.to_status, e.reason,
            e.actor, e.created_at
        FROM public.order_event e JOIN public.orders o ON o.id = e.order_id""",
    *(
        f"SELECT setval(pg_get_serial_sequence('{PART}.{t}', 'id'), "
        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {PART}.{t}), false)"
        for t in ("orders", "order_item", "order_event")
    ),
]

KEYS_AND_INDEXES = [
    f"ALTER TABLE {PART}.orders ADD PRIMARY KEY (id, created_at)",
    f"""ALTER TABLE {PART}.orders ADD CONSTRAINT orders_customer_id_fkey
        FOREIGN KEY (customer_id) REFERENCES public.customer (id) ON DELETE RESTRICT""",
    f"ALTER TABLE {PART}.order_item ADD PRIMARY KEY (id, order_created_at)",
    f"""ALTER TABLE {PART}.order_item ADD CONSTRAINT order_item_order_fkey
        FOREIGN KEY (order_id, order_created_at)
        REFERENCES {PART}.orders (id, created_at) ON DELETE CASCADE""",
    f"""ALTER TABLE {PART}.order_event ADD CONSTRAINT order_event_order_fkey
        FOREIGN KEY (order_id, order_created_at)
        REFERENCES {PART}.orders (id, created_at) ON DELETE RESTRICT""",
    # Migration 2's indexes, on the partitioned parents (each partition gets its own).
    f"""CREATE INDEX orders_customer_summary_idx
        ON {PART}.orders (customer_id, is_archived, status, total_cents, created_at)""",
    f"CREATE INDEX orders_created_at_idx ON {PART}.orders (created_at)",
    f"CREATE INDEX order_item_order_id_idx ON {PART}.order_item (order_id)",
    f"CREATE INDEX order_event_order_id_idx ON {PART}.order_event (order_id)",
]

# Autovacuum analyzes partitions but never a partitioned parent: ANALYZE it by hand.
VACUUM = (
    "VACUUM (ANALYZE) public.customer, public.orders, public.order_item, public.order_event, "
    f"{PART}.orders, {PART}.order_item, {PART}.order_event"
)


def build(admin_url: str, url: str, name: str, count: int) -> list[tuple[str, float]]:
    """Create and seed the database, then the partitioned copy; (step, seconds) each."""
    steps: list[tuple[str, float]] = []
    with pg_connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    log(f"seeding {count:,} orders with ordercli")
    started = time.perf_counter()
    seeded = run_cli(url, "seed", "--count", str(count), "--seed", "1", "--format", "json")
    if seeded.returncode != 0:
        raise RuntimeError(f"ordercli seed failed: {seeded.stderr.strip()}")
    result = json.loads(seeded.stdout)
    steps.append(
        (
            f"`ordercli seed` ({result['customers']:,} customers, {result['orders']:,} orders, "
            f"{result['items']:,} items; includes its VACUUM ANALYZE)",
            time.perf_counter() - started,
        )
    )
    with pg_connect(url, autocommit=True) as conn:
        lo, hi = fetch_row(conn, "SELECT MIN(created_at), MAX(created_at) FROM orders")
        months = month_starts(lo, hi)

        def step(label: str, statements: Sequence[str]) -> None:
            log(label)
            started = time.perf_counter()
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
            steps.append((label, time.perf_counter() - started))

        step(
            f"create partitioned tables ({len(months) - 1} months + default)",
            partitioned_ddl(months),
        )
        step("copy with INSERT ... SELECT (orders, order_item + order_created_at, events)", COPY)
        step("primary keys, foreign keys (validated), indexes on the parents", KEYS_AND_INDEXES)
        log("VACUUM (ANALYZE) both layouts")
        started = time.perf_counter()
        conn.execute(VACUUM)
        steps.append(("VACUUM (ANALYZE) both layouts", time.perf_counter() - started))
    return steps


def choose(layout: Layout) -> Picks:
    """Windows from the data (seed spreads created_at over the 365 days before it ran)."""
    lo, hi = fetch_row(layout.conn, "SELECT MIN(created_at), MAX(created_at) FROM orders")
    months = month_starts(lo, hi)
    middle = lo + (hi - lo) / 2
    month_start = datetime.datetime(middle.year, middle.month, 1)
    retention_start = months[1] if lo > months[0] else months[0]
    order_id, created_at, customer_id = fetch_row(
        layout.conn,
        "SELECT id, created_at, customer_id FROM orders WHERE created_at >= %s "
        "AND status IN ('paid', 'draft') ORDER BY created_at LIMIT 1",
        (month_start + datetime.timedelta(days=14),),
    )
    return Picks(
        months=months,
        since_30d=(hi - datetime.timedelta(days=30)).replace(microsecond=0),
        month_start=month_start,
        month_end=next_month(month_start),
        retention_start=retention_start,
        retention_end=next_month(retention_start),
        order_id=order_id,
        order_created_at=created_at,
        customer_id=customer_id,
    )


def detached_fk_names(layout: Layout, month: str) -> list[str]:
    """The foreign keys a detached order_item partition keeps to part.orders (found by
    trying it in a rolled-back transaction): they would block detaching the orders month."""
    with layout.conn.transaction(force_rollback=True):
        layout.conn.execute(f"ALTER TABLE {PART}.order_item DETACH PARTITION {PART}.{month}")
        rows = layout.conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND contype = 'f' AND conparentid = 0 ORDER BY conname",
            (f"{PART}.{month}",),
        ).fetchall()
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    label: str
    plain: list[Statement] | None
    part: list[Statement] | None
    write: bool = False
    explain: bool = True  # EXPLAIN ANALYZE it to count partitions (not for DDL)
    partitions: str = ""
    ms: dict[str, float] = field(default_factory=dict)
    error: str = ""
    baseline: Scenario | None = None  # for a partitioned-only row: what its ratio is to
    show_triggers: bool = False  # report where EXPLAIN ANALYZE says the time went
    triggers: list[list[str]] = field(default_factory=list)

    def statements(self, layout: str) -> list[Statement] | None:
        return self.plain if layout == "plain" else self.part


def scenarios(sql: dict[str, list[Statement]], picks: Picks, fk_names: list[str]) -> list[Scenario]:
    month = suffix(picks.retention_start)
    oi, o = f"{PART}.order_item_{month}", f"{PART}.orders_{month}"
    show_lookup = sql["show"][0]
    delete = [
        Statement(
            "DELETE FROM orders WHERE created_at >= %s AND created_at < %s",
            (picks.retention_start, picks.retention_end),
        )
    ]
    drop = [
        Statement(f"DROP TABLE {oi}"),
        Statement(f"ALTER TABLE {PART}.orders DETACH PARTITION {o}"),
        Statement(f"DROP TABLE {o}"),
    ]
    detach = [
        Statement(f"ALTER TABLE {PART}.order_item DETACH PARTITION {oi}"),
        *(Statement(f'ALTER TABLE {oi} DROP CONSTRAINT "{name}"') for name in fk_names),
        Statement(f"ALTER TABLE {PART}.orders DETACH PARTITION {o}"),
    ]
    window = f"{picks.month_start:%Y-%m-%d} → {picks.month_end:%Y-%m-%d}"
    delete_month = Scenario(
        f"delete month {picks.retention_start:%Y-%m}: `DELETE FROM orders WHERE created_at` "
        "in month (items by ON DELETE CASCADE; rolled back)",
        delete,
        delete,
        write=True,
        show_triggers=True,
    )
    return [
        Scenario("`summary` (all time)", sql["summary"], sql["summary"]),
        Scenario(
            f"`summary --since` 30 days ({picks.since_30d:%Y-%m-%d})",
            sql["summary_30d"],
            sql["summary_30d"],
        ),
        Scenario("`list` newest 50", sql["list_newest"], sql["list_newest"]),
        Scenario(
            "‡ `list` newest 50, item count by (order_id, order_created_at)",
            sql["list_newest"],
            [partition_aware(s) for s in sql["list_newest"]],
        ),
        Scenario(
            f"`list --since/--until` one month ({window})", sql["list_month"], sql["list_month"]
        ),
        Scenario(
            f"`list --customer {picks.customer_id}`", sql["list_customer"], sql["list_customer"]
        ),
        Scenario(f"`show {picks.order_id}` (3 SELECTs)", sql["show"], sql["show"]),
        Scenario("show's order lookup by id (1st SELECT)", [show_lookup], [show_lookup]),
        Scenario(
            "‡ same lookup + `created_at = …`, item count by (order_id, order_created_at)",
            [show_lookup],
            [partition_aware(by_id_and_created_at(show_lookup, picks.order_created_at))],
        ),
        Scenario(
            f"`cancel {picks.order_id}` (SELECT … FOR UPDATE, UPDATE, INSERT event; rolled back)",
            sql["cancel"],
            sql["cancel"],
            write=True,
            show_triggers=True,
        ),
        delete_month,
        Scenario(
            f"drop month {picks.retention_start:%Y-%m}: DROP items partition, DETACH + DROP "
            "orders partition (rolled back)",
            None,
            drop,
            write=True,
            explain=False,
            partitions="orders 1 · items 1 (DDL)",
            baseline=delete_month,
        ),
        Scenario(
            f"detach month {picks.retention_start:%Y-%m}, keep as tables: DETACH items, drop "
            "its FK to orders, DETACH orders (rolled back)",
            None,
            detach,
            write=True,
            explain=False,
            partitions="orders 1 · items 1 (DDL)",
            baseline=delete_month,
        ),
    ]


def walk(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from walk(child)


def explain(layout: Layout, statements: Sequence[Statement]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, FORMAT JSON) of each statement, in a transaction rolled back."""
    explained = []
    with layout.conn.transaction(force_rollback=True), layout.conn.cursor() as cursor:
        for statement in statements:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement.sql, statement.params)
            row = cursor.fetchone()
            assert row is not None
            explained.append(row[0][0])
    return explained


def partitions_read(explained: Sequence[dict[str, Any]], leaves: dict[str, set[str]]) -> str:
    """Partitions of each table the statements read (scan nodes executed at least once);
    planned-but-skipped ones (runtime pruning, or a LIMIT met early) are counted
    separately. Partitions read by FK or trigger queries are not in the plan."""
    executed: dict[str, set[str]] = {t: set() for t in leaves}
    planned: dict[str, set[str]] = {t: set() for t in leaves}
    for result in explained:
        for node in walk(result["Plan"]):
            name = node.get("Relation Name")
            for table, names in leaves.items():
                if name in names:
                    planned[table].add(name)
                    if node.get("Actual Loops", 0) > 0:
                        executed[table].add(name)
    cells = []
    for table, label in (("orders", "orders"), ("order_item", "items")):
        total = len(leaves[table])
        cell = f"{label} {len(executed[table])}/{total}" if planned[table] else f"{label} —"
        if planned[table] != executed[table]:
            cell += f" (in plan {len(planned[table])})"
        cells.append(cell)
    return " · ".join(cells)


def trigger_rows(label: str, layout: str, explained: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Where a write's time went: the statement and each trigger (FK checks and cascades
    run as triggers, invisible in the plan)."""
    rows = []
    for result in explained:
        statement = result["Plan"].get("Operation") or result["Plan"]["Node Type"]
        rows.append(
            [label, layout, f"{statement} (total)", "", fmt_ms(result["Execution Time"]), ""]
        )
        for trigger in result.get("Triggers", []):
            calls, ms = trigger["Calls"], trigger["Time"]
            what = trigger.get("Constraint Name")
            what = f"FK {what}" if what else trigger["Trigger Name"]
            name = f"{what} on {trigger.get('Relation', '?')}"
            rows.append([label, layout, name, f"{calls:,}", fmt_ms(ms), f"{ms * 1000 / calls:.1f}"])
    return rows


def measure(layouts: dict[str, Layout], scenario: Scenario, reps: int) -> None:
    """Warm-up, then `reps` runs per layout, alternating which layout goes first."""
    names = [n for n in LAYOUTS if scenario.statements(n) is not None]
    samples: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps + 1):
        for name in names if rep % 2 else reversed(names):
            statements = scenario.statements(name)
            assert statements is not None
            seconds = layouts[name].run(statements, scenario.write)
            if rep:  # rep 0 is the warm-up
                samples[name].append(seconds)
    scenario.ms = {n: statistics.median(s) * 1000 for n, s in samples.items()}


# --------------------------------------------------------------------------- checks


def checks(
    url: str,
    part_url: str,
    layouts: dict[str, Layout],
    sql: dict[str, list[Statement]],
    picks: Picks,
) -> list[tuple[str, str]]:
    """What still works against the partitioned schema: ordercli itself, the contract's
    invariants, id uniqueness. Runs last: the ordercli cancel here is committed (to part)."""
    part, plain = layouts["part"], layouts["plain"]
    rows: list[tuple[str, str]] = []

    def cli(label: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = run_cli(part_url, *args)
        err = result.stderr.strip().splitlines()
        errors = [line for line in err if line.startswith("Error:")]
        rows.append((label, f"exit {result.returncode}" + (f": `{errors[0]}`" if errors else "")))
        return result

    oid = picks.order_id
    status = "SELECT status FROM orders WHERE id = %s"
    cli("`ordercli migrate` via `?options=-csearch_path%3Dpart,public`", "migrate")
    cli("`ordercli list --limit 3` (part)", "list", "--limit", "3", "--format", "json")
    cli("`ordercli summary --limit 3` (part)", "summary", "--limit", "3", "--format", "json")
    before = (part.scalar(status, (oid,)), plain.scalar(status, (oid,)))
    result = cli(f"`ordercli cancel {oid}` (part, committed)", "--echo-sql", "cancel", str(oid))
    after = (part.scalar(status, (oid,)), plain.scalar(status, (oid,)))
    rows.append(
        (
            "options reach PostgreSQL (the URL's query goes to psycopg.connect)",
            f"part.orders {before[0]} → {after[0]}; public.orders {before[1]} → {after[1]}",
        )
    )
    rows.append(
        (
            "cancel's SQL on part = the SQL measured above",
            "yes" if echoed(result) == [s.text for s in sql["cancel"]] else "**no**",
        )
    )
    event = fetch_row(
        part.conn,
        "SELECT count(*), bool_and(e.order_created_at = o.created_at) FROM order_event e "
        "JOIN orders o ON o.id = e.order_id WHERE e.order_id = %s",
        (oid,),
    )
    rows.append(
        ("events for it (order_created_at filled by trigger)", f"{event[0]}, key ok: {event[1]}")
    )
    shown = cli(f"`ordercli show {oid}` (part)", "show", str(oid), "--format", "json")
    if shown.returncode == 0:
        rows.append(("show's events (part)", str(len(json.loads(shown.stdout)["events"]))))
    again = cli(f"`ordercli cancel {oid}` again (part)", "cancel", str(oid), "--format", "json")
    if again.returncode == 0:
        rows.append(("second cancel changed", str(json.loads(again.stdout)[0]["changed"])))
    cli(f"`ordercli archive {oid}` (part)", "archive", str(oid))
    cli(f"`ordercli archive {oid} --undo` (part)", "archive", str(oid), "--undo")
    orders_before = part.scalar("SELECT count(*) FROM orders")
    customers_before = part.scalar("SELECT count(*) FROM customer")
    cli("`ordercli seed --count 10` (part)", "seed", "--count", "10", "--seed", "2")
    rows.append(
        (
            "seed wrote",
            f"{part.scalar('SELECT count(*) FROM orders') - orders_before} orders; "
            f"{part.scalar('SELECT count(*) FROM customer') - customers_before} customers "
            "(committed before the orders, as in every seed)",
        )
    )
    only_part = database_url(url, urlsplit(url).path.lstrip("/"), "options=-csearch_path%3Dpart")
    result = run_cli(only_part, "migrate")
    err = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    rows.append(
        (
            "`ordercli migrate` via `?options=-csearch_path%3Dpart` (no public)",
            f"exit {result.returncode}" + (f": `{err[0]}`" if err else ""),
        )
    )
    rows.append(
        (
            "… left a customer table in part",
            str(part.scalar(f"SELECT to_regclass('{PART}.customer') IS NOT NULL")),
        )
    )

    # The contract's invariants, checked on the data.
    totals = """SELECT count(*) FROM orders o LEFT JOIN (
        SELECT order_id, SUM(quantity * unit_price_cents) AS total FROM order_item GROUP BY 1
    ) i ON i.order_id = o.id WHERE o.total_cents <> COALESCE(i.total, 0)"""
    rows.append(
        (
            "orders whose total ≠ sum of items (plain / part)",
            f"{plain.scalar(totals)} / {part.scalar(totals)}",
        )
    )
    events = """SELECT count(*) FROM orders o WHERE o.status = 'cancelled' AND (
        SELECT count(*) FROM order_event e WHERE e.order_id = o.id) <> 1"""
    rows.append(("cancelled orders without exactly one event (part)", str(part.scalar(events))))
    rows.append(("customer with orders deleted (part FK only)", refuse_customer_delete(part)))
    rows.append(
        (
            "DELETE of an order with an event (RESTRICT)",
            try_sql(part, [f"DELETE FROM orders WHERE id = {oid}"]),
        )
    )
    cascade = try_sql(
        part,
        [
            f"DELETE FROM orders WHERE id = {oid + 1}",
            f"SELECT count(*) FROM order_item WHERE order_id = {oid + 1}",
        ],
    )
    rows.append(("DELETE of an order without events; its items left (CASCADE)", cascade))

    # id uniqueness across partitions.
    ids = fetch_row(part.conn, "SELECT count(*), count(DISTINCT id) FROM orders")
    rows.append(("part.orders rows / distinct ids", f"{ids[0]:,} / {ids[1]:,}"))
    identity = fetch_row(
        part.conn,
        "SELECT count(*) FILTER (WHERE a.attidentity <> ''), count(*) "
        "FROM pg_partition_tree(%s) t JOIN pg_attribute a "
        "ON a.attrelid = t.relid AND a.attname = 'id'",
        (f"{PART}.orders",),
    )
    rows.append(
        (
            "tables in the orders tree with an identity on id",
            f"{identity[0]} of {identity[1]} (the parent: one sequence, "
            f"`{part.scalar('SELECT pg_get_serial_sequence(%s, %s)', (f'{PART}.orders', 'id'))}`)",
        )
    )
    first, last = picks.months[0], picks.months[-2]
    rows.append(
        (
            "two INSERTs through the parent, different months: ids",
            try_sql(
                part,
                [
                    "INSERT INTO orders (customer_id, created_at) VALUES "
                    f"({picks.customer_id}, '{first:%Y-%m-%d} 12:00'), "
                    f"({picks.customer_id}, '{last:%Y-%m-%d} 12:00') RETURNING id"
                ],
            ),
        )
    )
    rows.append(
        (
            "INSERT straight into a partition, id from the identity",
            try_sql(
                part,
                [
                    f"INSERT INTO {PART}.orders_{suffix(last)} (customer_id, created_at) "
                    f"VALUES ({picks.customer_id}, '{last:%Y-%m-%d} 12:00') RETURNING id"
                ],
            ),
        )
    )
    rows.append(
        (
            f"INSERT of a second order with id {oid} (other month)",
            try_sql(
                part,
                [
                    "INSERT INTO orders (id, customer_id, created_at) VALUES "
                    f"({oid}, {picks.customer_id}, '{last:%Y-%m-%d} 12:00') RETURNING id",
                    f"SELECT count(*) FROM orders WHERE id = {oid}",
                ],
            ),
        )
    )
    return rows


def try_sql(layout: Layout, statements: Sequence[str]) -> str:
    """Run statements in a rolled-back transaction: "ok" (+ the last rows) or the error."""
    try:
        with layout.conn.transaction(force_rollback=True), layout.conn.cursor() as cursor:
            rows: list[Any] = []
            for statement in statements:
                cursor.execute(statement)
                rows = cursor.fetchall() if cursor.description is not None else []
    except psycopg.Error as exc:
        return f"refused: `{first_line(exc)}`"
    values = ", ".join(str(v) for row in rows for v in row)
    return "accepted" + (f" ({values})" if values else "")


def refuse_customer_delete(part: Layout) -> str:
    """A new customer whose only order is in part.orders: only part's FK can refuse.
    (ordercli itself never deletes customers; this is the database's guarantee.)"""
    return try_sql(
        part,
        [
            "INSERT INTO customer (name, email) VALUES ('Part Check', 'part-check@example.com')",
            "INSERT INTO orders (customer_id) SELECT id FROM customer "
            "WHERE email = 'part-check@example.com'",
            "DELETE FROM customer WHERE email = 'part-check@example.com'",
        ],
    )


# --------------------------------------------------------------------------- report


# The leaves of a partitioned table, or the table itself (pg_partition_tree gives no row
# for a plain table); partitioned parents and indexes have no storage of their own.
SIZES = """
    WITH leaf AS (
        SELECT relid FROM pg_partition_tree(%(t)s::regclass) WHERE isleaf
        UNION SELECT %(t)s::regclass WHERE NOT EXISTS (SELECT FROM pg_partition_tree(%(t)s))
    )
    SELECT count(*), SUM(pg_total_relation_size(relid) - pg_indexes_size(relid)),
        SUM(pg_indexes_size(relid)), SUM(pg_total_relation_size(relid))
    FROM leaf"""


def sizes(layout: Layout) -> list[list[str]]:
    rows = []
    schema = SEARCH_PATH[layout.name].split(",")[0]
    for table in ("orders", "order_item", "order_event"):
        n, heap, index, total = fetch_row(layout.conn, SIZES, {"t": f"{schema}.{table}"})
        mb = [f"{v / 2**20:,.1f}" for v in (heap, index, total)]
        rows.append([f"`{table}`", layout.name, str(n), *mb])
    return rows


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value < 10 else f"{value:,.1f}"


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def git_revision() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def report(
    args: argparse.Namespace,
    command: str,
    server: dict[str, str],
    steps: list[tuple[str, float]],
    all_scenarios: list[Scenario],
    size_rows: list[list[str]],
    check_rows: list[tuple[str, str]],
    echo_check: dict[str, bool],
    months: int,
    loads: tuple[str, str],
) -> str:
    timing_rows = []
    for s in all_scenarios:
        plain, part = s.ms.get("plain"), s.ms.get("part")
        ratio = f"{part / plain:.2f}×" if plain and part else "—"
        base = s.baseline.ms.get("plain") if s.baseline else None
        if plain is None and base and part:
            ratio = f"{part / base:.3f}× of plain DELETE"
        if s.error:
            ratio = f"failed: {s.error}"
        timing_rows.append([s.label, fmt_ms(plain), fmt_ms(part), ratio, s.partitions or "—"])
    echo_ok = all(echo_check.values())
    settings = ", ".join(f"{k} {v}" for k, v in server.items())
    out = [
        f"# PostgreSQL partitioning of orders / order_item by month — {args.count:,} orders",
        "",
        f"Reproduce: `{command}`",
        "",
        f"ordercli git {git_revision()}; {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {settings}. Load average {loads[0]} at start, "
        f"{loads[1]} at the end.",
        "",
        "**The machine is shared (2 cores, other benchmarks running): timings are noisy. "
        "Compare the two layouts as ratios within this run, not absolute numbers across "
        "runs.** Both layouts live in the same database (plain: schema `public`; partitioned: "
        f"schema `{PART}`, {months} monthly partitions + DEFAULT per table; `customer` and "
        "`ordercli_migration` shared). Each figure is the median of "
        f"{args.reps} runs after one warm-up, the two layouts alternating, over one "
        "autocommit psycopg connection per layout with prepared statements off (ordercli runs "
        "each statement once per process: always a custom plan, so pruning happens at plan "
        "time); connection and process start-up are not included.",
        "",
        "## Build",
        "",
        table(["step", "seconds"], [[label, f"{sec:,.1f}"] for label, sec in steps]),
        "",
        "## Timings (ms)",
        "",
        table(
            ["operation", "plain", "partitioned", "part / plain", "partitions read"],
            timing_rows,
        ),
        "",
        "- SQL: ordercli's own statements with their parameters, captured in-process from the "
        "logger behind `--echo-sql`; the texts were compared with `ordercli --echo-sql` run "
        "as a command on the same database: "
        + ("identical for every command." if echo_ok else f"**differences**: {echo_check}"),
        "- ‡ not what ordercli runs: a partition-aware variant, on the partitioned layout "
        "only; the plain column runs ordercli's statement.",
        "- partitions read: scan nodes that ran at least once in EXPLAIN ANALYZE "
        '("in plan": more partitions were planned, but runtime pruning or a LIMIT already '
        "met skipped them; — : not read at all). Lookups made by triggers are not "
        "in the plan: cancel's event INSERT looks its order's created_at up by id (every "
        "orders partition), and ON DELETE CASCADE deletes the items of each order "
        "(order_item partitions pruned by the key).",
        "- Writes run in a transaction that is rolled back (the rollback is not timed). "
        "DETACH takes an ACCESS EXCLUSIVE lock on the parent for its duration; "
        "DETACH … CONCURRENTLY is refused while a DEFAULT partition exists (and inside a "
        "transaction).",
        "",
        "## Where the writes' time goes (one EXPLAIN ANALYZE each, rolled back)",
        "",
        table(
            ["operation", "layout", "statement / trigger", "calls", "ms", "µs per call"],
            [row for s in all_scenarios for row in s.triggers],
        ),
        "",
        "Foreign-key checks and ON DELETE actions run as per-row triggers (not in the plan, "
        "not in the partition counts). On the partitioned layout each call's internal query "
        "goes through a partitioned table (pruned at run time), and costs several times more "
        "per row.",
        "",
        "## Sizes (MB, summed over partitions; table = heap + TOAST + FSM/VM)",
        "",
        table(["table", "layout", "partitions", "table", "indexes", "total"], size_rows),
        "",
        "## What still works against the partitioned schema",
        "",
        table(["check", "result"], check_rows),
        "",
        "## DDL that partitioning forced",
        "",
        "- `orders`: `PARTITION BY RANGE (created_at)`; PRIMARY KEY `(id)` → `(id, created_at)` "
        "(a unique key on a partitioned table must contain the partition key). Nothing can "
        "make `id` alone unique any more; the identity sequence on the parent keeps ids "
        "unique only as long as nobody supplies one.",
        "- `order_item`: new column `order_created_at` (a copy of its order's `created_at`), "
        "`PARTITION BY RANGE (order_created_at)`, PRIMARY KEY `(id, order_created_at)`, "
        "FOREIGN KEY `(order_id, order_created_at) → orders (id, created_at) ON DELETE "
        "CASCADE`. It cannot be filled by a trigger: a BEFORE ROW trigger may not change "
        "the partition a row goes to, so the writer (ordercli's seed, the shop's application) "
        "must supply it.",
        "- `order_event` (not partitioned): new column `order_created_at` filled by a BEFORE "
        "INSERT trigger (lookup by id), FOREIGN KEY `(order_id, order_created_at) → orders "
        "(id, created_at) ON DELETE RESTRICT`.",
        "- Unchanged: `orders.customer_id → customer (id) ON DELETE RESTRICT`, the CHECKs and "
        "defaults, `customer` (unique email, pg_trgm index), migration 2's indexes (created "
        "on the parents, cascaded to every partition).",
        "- Operations: a month's partitions must exist before its orders arrive (else they go "
        "to DEFAULT, and a new partition overlapping rows in DEFAULT cannot be created "
        "without moving them); autovacuum never ANALYZEs the partitioned parents; an orders "
        "partition cannot be dropped while an order_item partition references it (drop the "
        "items month first; a detached items partition keeps its FK and must lose it).",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1_000_000, help="orders to seed")
    parser.add_argument("--reps", type=int, default=5, help="measured runs (≥ 5)")
    parser.add_argument(
        "--pg-url",
        default="postgresql://root@127.0.0.1:5432/postgres",
        help="a server where the user may CREATE DATABASE",
    )
    parser.add_argument("--db-name", help="throw-away database (default partbench_COUNT)")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    args = parser.parse_args(argv)
    if args.reps < 5:
        parser.error("--reps must be at least 5")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    name = args.db_name or f"partbench_{args.count}"
    url = database_url(args.pg_url, name)
    part_url = database_url(args.pg_url, name, "options=-csearch_path%3Dpart,public")
    command = shlex.join(["python", "benchmarks/partitioning.py", *(argv or sys.argv[1:])])
    start_load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    layouts = {n: Layout(url, n) for n in LAYOUTS}
    try:
        steps = build(args.pg_url, url, name, args.count)
        plain, part = layouts["plain"], layouts["part"]
        server = {
            "PostgreSQL": str(plain.scalar("SHOW server_version")),
            **{k: str(plain.scalar(f"SHOW {k}")) for k in ("shared_buffers", "work_mem", "jit")},
            "max_parallel_workers_per_gather": str(
                plain.scalar("SHOW max_parallel_workers_per_gather")
            ),
        }
        picks = choose(plain)
        log("capturing ordercli's SQL")
        sql = ordercli_statements(url, picks)
        echo_check: dict[str, bool] = {}
        for key, cli in cli_args(picks).items():
            result = run_cli(url, "--echo-sql", *cli, "--format", "json")
            lines = echoed(result)
            echo_check[key] = bool(lines) and lines == [s.text for s in sql[key]][: len(lines)]
        leaves = {
            t: {
                str(r[0]).split(".")[-1]
                for r in part.conn.execute(
                    "SELECT relid::regclass FROM pg_partition_tree(%s) WHERE isleaf",
                    (f"{PART}.{t}",),
                )
            }
            for t in ("orders", "order_item")
        }
        fk_names = detached_fk_names(part, f"order_item_{suffix(picks.retention_start)}")
        all_scenarios = scenarios(sql, picks, fk_names)
        size_rows = sizes(plain) + sizes(part)
        for scenario in all_scenarios:
            log(f"measuring {scenario.label}")
            try:
                measure(layouts, scenario, args.reps)
                if scenario.explain and scenario.part is not None:
                    explained = explain(part, scenario.part)
                    scenario.partitions = partitions_read(explained, leaves)
                    if scenario.show_triggers and scenario.plain is not None:
                        short = scenario.label.split(":")[0].split(" (")[0]
                        scenario.triggers = trigger_rows(
                            short, "plain", explain(plain, scenario.plain)
                        ) + trigger_rows(short, "part", explained)
            except psycopg.Error as exc:
                scenario.error = first_line(exc)
                log(f"  failed: {scenario.error}")
                for layout in layouts.values():
                    layout.close()
        log("checks against the partitioned schema")
        check_rows = checks(url, part_url, layouts, sql, picks)
        end_load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
        print(
            report(
                args,
                command,
                server,
                steps,
                all_scenarios,
                size_rows,
                check_rows,
                echo_check,
                len(picks.months) - 1,
                (start_load, end_load),
            )
        )
    finally:
        for layout in layouts.values():
            layout.close()
        if not args.keep:
            log(f"dropping database {name}")
            with pg_connect(args.pg_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
