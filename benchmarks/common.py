"""What bench.py and scale.py share: targets (the databases and their raw drivers),
timings, child processes, datasets and the report header.

Both scripts import this module; neither imports the other.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import platform
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import peewee

import ordercli
from ordercli.db import connect, database
from ordercli.models import Customer, Order, Status
from ordercli.seeding import FIRST_NAMES, LAST_NAMES, _generate_orders

REPO = Path(__file__).resolve().parent.parent
SMALL_SIZES_MAX = 100_000  # sizes up to this are seeded untimed; larger ones in section 2
SEED_SECTION_MAX = 100_000
QUICK_SIZES = (10_000, 100_000)
SMOKE_SIZE = 1_000  # --smoke: SQLite, seconds; CI runs it
ALL_SECTIONS = (1, 2, 3, 4, 5, 6, 7)
# --quick leaves out 2 (the 1M seed) and 5 (the naive N+1 reference: ~25 s of its own, and
# nothing in it changes when ordercli's queries do; section 3 times ordercli's side).
QUICK_SECTIONS = (1, 3, 4, 6, 7)
STARTUP_REPS_MIN = 10
RETRIES = 2  # a failed row (or dataset) is measured again at most this many times
PG_INSERT_ROWS = 8192  # rows per multi-row INSERT in the PostgreSQL INSERT baseline
PG_ITERSIZE = 2000  # rows per fetch of the raw server-side cursor (ordercli uses 2000 too)
SEED_WINDOW = datetime.timedelta(days=365)  # ordercli's seed window (seeding.SEED_WINDOW)
# The raw SQLite connections copy these settings from an ordercli connection (read back
# at start-up, so they follow ordercli if its pragmas change).
SQLITE_PRAGMAS = ("foreign_keys", "journal_mode", "synchronous", "busy_timeout", "cache_size")

# The parent of every measured child: runs it alone, so RUSAGE_CHILDREN is its peak RSS.
WRAPPER = """\
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as sink:
    started = time.perf_counter()
    code = subprocess.call(sys.argv[2:], stdout=sink)
    seconds = time.perf_counter() - started
maxrss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"returncode": code, "seconds": seconds, "maxrss_kb": maxrss_kb}))
"""

# The raw-driver export: the SQL of `ordercli list --limit 0`, written with csv.writer.
# It imports only the driver, so its RSS is the driver's, not ordercli's.
RAW_EXPORT = """\
import csv, json, sys
backend, target, spec = sys.argv[1:4]
with open(spec) as f:
    spec = json.load(f)
writer = csv.writer(sys.stdout, lineterminator="\\n")
writer.writerow(spec["columns"])
if backend == "sqlite":
    import sqlite3
    conn = sqlite3.connect(target, isolation_level=None)
    for name, value in spec["pragmas"]:
        conn.execute(f"PRAGMA {name} = {value}")
    writer.writerows(conn.execute(spec["sql"], spec["params"]))
    conn.close()
elif backend == "mysql":
    import pymysql, pymysql.cursors
    conn = pymysql.connect(**spec["connect"], autocommit=True)
    with conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(spec["sql"], spec["params"])
        writer.writerows(cursor)
    conn.close()
else:
    import psycopg
    with psycopg.connect(target) as conn, conn.cursor(name="export") as cursor:
        cursor.itersize = spec["itersize"]
        cursor.execute(spec["sql"], spec["params"])
        writer.writerows(cursor)
"""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Measured:
    """One run: its time, the rows it handled and (for child processes) its peak RSS."""

    seconds: float
    rows: int = 0
    rss_mb: float = 0.0


@dataclass(frozen=True)
class Stats:
    """Medians over the measured repetitions (the warm-up run is not among them)."""

    seconds: float
    rows: float
    rows_per_second: float
    rss_mb: float

    @classmethod
    def of(cls, samples: Sequence[Measured]) -> Stats:
        return cls(
            seconds=statistics.median(s.seconds for s in samples),
            rows=statistics.median(s.rows for s in samples),
            rows_per_second=statistics.median(s.rows / s.seconds for s in samples),
            rss_mb=statistics.median(s.rss_mb for s in samples),
        )

    @property
    def ms(self) -> float:
        return self.seconds * 1000


@dataclass
class Table:
    """One section of the report."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: bool = False  # a row or the whole section could not be measured

    def markdown(self) -> str:
        lines = [f"## {self.title}", ""]
        if self.rows:
            lines.append("| " + " | ".join(self.columns) + " |")
            lines.append("|" + "|".join("---" for _ in self.columns) + "|")
            lines.extend("| " + " | ".join(row) + " |" for row in self.rows)
        else:
            lines.append("(nothing measured)")
        if self.notes:
            lines.append("")
            lines.extend(self.notes)
        return "\n".join(lines)


Trial = Callable[[int], Measured]  # called with the repetition number (0 = warm-up)


def timed(fn: Callable[[], object]) -> Measured:
    started = time.perf_counter()
    fn()
    return Measured(time.perf_counter() - started)


def median_times(trials: Mapping[str, Trial], reps: int, warmup: bool = True) -> dict[str, Stats]:
    """Run each trial once to warm up, then `reps` more times, round-robin; medians.

    Interleaving the trials that a table compares keeps a slow patch of a noisy machine
    from landing on one side of a ratio only."""
    if warmup:
        for trial in trials.values():
            trial(0)
    samples: dict[str, list[Measured]] = {label: [] for label in trials}
    for rep in range(1, reps + 1):
        for label, trial in trials.items():
            samples[label].append(trial(rep))
    return {label: Stats.of(runs) for label, runs in samples.items()}


def value(row: Any, name: str) -> Any:
    """A field of a row ordercli returned, be it a dict or a named tuple."""
    return row[name] if isinstance(row, Mapping) else getattr(row, name)


# --------------------------------------------------------------------------- formatting


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:,.1f}"


def num(value: float) -> str:
    return f"{value:,.0f}"


def ratio(value: float) -> str:
    return f"{value:.2f}×"


def yes(flag: bool) -> str:
    return "yes" if flag else "**NO**"


def must_be_one(count: int) -> str:
    return str(count) if count == 1 else f"**{count}** (expected 1)"


_started = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


def short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [""]
    return f"{type(exc).__name__}: {lines[0][:300]}"


def retried(target: Target, label: str, work: Callable[..., Any], *args: Any) -> Any:
    """`work(*args)`; if it fails, tried again (up to RETRIES more times) once the
    database answers again.

    On a shared machine a PostgreSQL server restarted by someone else (the test suite's
    fault injection restarts the cluster) breaks whatever ran at that moment; such a run
    says nothing about ordercli."""
    for attempt in range(RETRIES):
        try:
            return work(*args)
        except Exception as exc:  # any failure: wait for the database, then try again
            log(f"{label} failed ({short(exc)}); attempt {attempt + 2} of {RETRIES + 1}")
            target.wait_until_ready()
    return work(*args)


def add_rows(
    table: Table, target: Target, label: str, build: Callable[..., list[list[str]]], *args: Any
) -> None:
    """Add the rows `build(*args)` measures; if it keeps failing, a note says so and the
    section goes on to its other rows."""
    try:
        table.rows.extend(retried(target, label, build, *args))
    except Exception as exc:  # report it, keep the rest of the run
        log(f"{label} failed again: {short(exc)}")
        traceback.print_exc()
        table.notes.append(f"**{label} failed**: {short(exc)}")
        table.failed = True


# --------------------------------------------------------------------------- child processes


def ordercli_executable() -> str:
    beside = Path(sys.executable).with_name("ordercli")
    found = str(beside) if beside.exists() else shutil.which("ordercli")
    if not found:
        raise BenchError("the ordercli console script is not installed next to this Python")
    return found


def child_env() -> dict[str, str]:
    """The environment of measured children: no ordercli settings leak in from ours."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORDERCLI_")}


def run_child(command: Sequence[str], stdout: str | Path = os.devnull) -> Measured:
    """Run `command` under the wrapper: wall time and peak RSS of that child alone."""
    wrapper = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(stdout), *command],
        capture_output=True,
        text=True,
        env=child_env(),
        check=False,
    )
    errors = wrapper.stderr.strip()
    try:
        report = json.loads(wrapper.stdout)
    except json.JSONDecodeError:
        log(errors)
        raise BenchError(f"the measuring wrapper failed: {errors[-300:]}") from None
    if report["returncode"] != 0:
        log(errors)
        shown = " ".join(shlex.quote(arg) if len(arg) < 100 else "…" for arg in command)
        last = errors.splitlines()[-1] if errors else ""
        raise BenchError(f"`{shown}` exited with {report['returncode']}: {last}")
    return Measured(seconds=report["seconds"], rss_mb=report["maxrss_kb"] / 1024)


def ordercli_command(url: str, *args: str) -> list[str]:
    return [ordercli_executable(), "--db", url, *args]


def seed_command(url: str, count: int, seed_value: int, out: Path) -> tuple[Measured, int]:
    """`ordercli seed` in a child; its measurement and the rows it reported adding."""
    command = ordercli_command(
        url, "seed", "--count", str(count), "--seed", str(seed_value), "--format", "json"
    )
    run = run_child(command, stdout=out)
    added = json.loads(out.read_text())
    return run, added["customers"] + added["orders"] + added["items"]


# --------------------------------------------------------------------------- databases

Loader = Callable[[str, "SeedRows"], float]  # raw load of rows into a database URL: seconds


class Target:
    """One backend: where its databases live and how the raw driver reaches them."""

    name: str
    version: str

    def __init__(self) -> None:
        self.scratch: list[str] = []  # databases made by fresh(), dropped by drop_scratch()

    def url(self, db: str) -> str:
        raise NotImplementedError

    def create_empty(self, db: str) -> str:
        """A new, empty database (no schema), replacing any previous one; its URL."""
        raise NotImplementedError

    def migrated(self, db: str) -> str:
        """A new database with ordercli's schema and no rows, replacing any previous one."""
        raise NotImplementedError

    def fresh(self) -> str:
        """A new database with ordercli's schema and no rows, under a name of its own.

        The throw-away databases of a section are dropped together at its end: on
        PostgreSQL each DROP DATABASE waits for a checkpoint, once is enough."""
        db = f"bench_scratch_{len(self.scratch) + 1}"
        self.scratch.append(db)
        return self.migrated(db)

    def drop_scratch(self) -> None:
        while self.scratch:
            name = self.scratch.pop()
            try:
                self.drop(name)
            except Exception as exc:  # cleaning up must not hide what went before
                log(f"could not drop {name}: {short(exc)}")

    def wait_until_ready(self) -> None:
        """Return once the database server accepts connections again."""

    def drop(self, db: str) -> None:
        raise NotImplementedError

    def raw(self, url: str) -> Any:
        """A raw driver connection set up like ordercli's (autocommit, same pragmas)."""
        raise NotImplementedError

    def fetchall(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run `sql` on a `raw()` connection and fetch every row (the read baseline)."""
        return list(conn.execute(sql, params).fetchall())

    def export_spec(self, url: str) -> dict[str, Any]:
        """Extra settings the raw export child needs (see RAW_EXPORT)."""
        return {}

    def raw_loaders(self) -> dict[str, Loader]:
        """The raw-driver seed baselines: {label: loader}."""
        raise NotImplementedError

    def export_target(self, url: str) -> str:
        """What the raw export child connects to (a file path or a conninfo URL)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqliteTarget(Target):
    name = "sqlite"
    version = sqlite3.sqlite_version

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.pragmas = self.ordercli_pragmas()

    def ordercli_pragmas(self) -> list[tuple[str, Any]]:
        """The settings of an ordercli connection, for the raw connections to copy."""
        url = self.migrated("bench_pragmas")
        try:
            with connect(url):
                return [
                    (name, database.obj.execute_sql(f"PRAGMA {name}").fetchone()[0])
                    for name in SQLITE_PRAGMAS
                ]
        finally:
            self.drop("bench_pragmas")

    def path(self, db: str) -> Path:
        return self.workdir / f"{db}.db"

    def url(self, db: str) -> str:
        return f"sqlite:///{self.path(db)}"  # an absolute path: sqlite:////tmp/...

    def drop(self, db: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path(db)}{suffix}").unlink(missing_ok=True)

    def create_empty(self, db: str) -> str:
        self.drop(db)
        return self.url(db)

    def migrated(self, db: str) -> str:
        url = self.create_empty(db)
        with connect(url):
            pass
        return url

    def export_target(self, url: str) -> str:
        return url.removeprefix("sqlite:///")

    def raw(self, url: str) -> sqlite3.Connection:
        conn = sqlite3.connect(self.export_target(url), isolation_level=None, timeout=30)
        for name, setting in self.pragmas:
            conn.execute(f"PRAGMA {name} = {setting}")
        return conn

    def raw_loaders(self) -> dict[str, Loader]:
        return {"sqlite3 executemany, 1 transaction": self.load_executemany}

    def export_spec(self, url: str) -> dict[str, Any]:
        return {"pragmas": self.pragmas}

    def load_executemany(self, url: str, rows: SeedRows) -> float:
        conn = self.raw(url)
        try:
            started = time.perf_counter()
            conn.execute("BEGIN")
            for table, columns, values in rows.tables():
                marks = ", ".join("?" for _ in columns)
                conn.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values
                )
            conn.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            conn.close()


class ServerTarget(Target):
    """A database server: databases are made and dropped through an admin connection."""

    admin_url: str
    admin: Any

    def url(self, db: str) -> str:
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{db}"))

    def export_target(self, url: str) -> str:
        return url

    def administer(self, sql: str) -> None:
        """Run CREATE/DROP DATABASE, reconnecting if the server restarted meanwhile."""
        try:
            self.admin_execute(sql)
        except self.connection_error():
            self.wait_until_ready()
            self.admin_execute(sql)

    def admin_execute(self, sql: str) -> None:
        raise NotImplementedError

    def connection_error(self) -> type[Exception]:
        """The driver's error for a lost or refused connection."""
        raise NotImplementedError

    def close(self) -> None:
        self.admin.close()


class PostgresTarget(ServerTarget):
    name = "postgresql"
    template = "bench_template"

    def __init__(self, admin_url: str) -> None:
        import psycopg

        super().__init__()
        self.admin_url = admin_url
        self.admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
        row = self.admin.execute("SHOW server_version").fetchone()
        self.version = str(row[0]) if row else "?"
        self.has_template = False

    def admin_execute(self, sql: str) -> None:
        self.admin.execute(sql)

    def connection_error(self) -> type[Exception]:
        import psycopg

        return psycopg.OperationalError

    def wait_until_ready(self, timeout: float = 120) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(psycopg.Error):
                self.admin.execute("SELECT 1")
                return
            with contextlib.suppress(psycopg.Error):
                self.admin.close()
                self.admin = psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)
                continue
            if time.monotonic() > deadline:
                raise BenchError(f"PostgreSQL did not come back within {timeout:.0f} s")
            time.sleep(1)

    def drop(self, db: str) -> None:
        self.administer(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

    def create_empty(self, db: str, template: str = "template1") -> str:
        self.drop(db)
        self.administer(f'CREATE DATABASE "{db}" TEMPLATE "{template}"')
        return self.url(db)

    def migrated(self, db: str) -> str:
        # A copy of an empty database that ordercli migrated once: the same as migrating
        # each new database, and quicker.
        if not self.has_template:
            with connect(self.create_empty(self.template)):
                pass
            self.has_template = True
        return self.create_empty(db, template=self.template)

    def raw(self, url: str) -> Any:
        import psycopg

        return psycopg.connect(url, autocommit=True)

    def raw_loaders(self) -> dict[str, Loader]:
        return {
            "psycopg COPY FROM STDIN, write_row": self.load_copy,
            f"psycopg INSERT … VALUES, {PG_INSERT_ROWS:,} rows/statement": self.load_insert,
        }

    def load_copy(self, url: str, rows: SeedRows) -> float:
        def load(conn: Any) -> None:
            with conn.cursor() as cursor:
                for table, columns, values in rows.tables():
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in values:
                            copy.write_row(row)

        return self._one_transaction(url, load)

    def load_insert(self, url: str, rows: SeedRows) -> float:
        """Multi-row INSERTs with `$n` placeholders through a RawCursor.

        A plain cursor takes `%s` and psycopg rewrites them to `$n` in Python on every
        execute of a statement over 4 KiB (its query cache stops there): that alone
        halves the throughput of 8,192-row statements, so it would be no ceiling."""
        import psycopg

        def load(conn: Any) -> None:
            with psycopg.RawCursor(conn) as cursor:
                for table, columns, values in rows.tables():
                    statements: dict[int, str] = {}  # the SQL text of each statement size
                    for start in range(0, len(values), PG_INSERT_ROWS):
                        chunk = values[start : start + PG_INSERT_ROWS]
                        if len(chunk) not in statements:
                            statements[len(chunk)] = insert_sql(table, columns, len(chunk))
                        cursor.execute(statements[len(chunk)], list(chain.from_iterable(chunk)))

        return self._one_transaction(url, load)

    def _one_transaction(self, url: str, load: Callable[[Any], None]) -> float:
        conn = self.raw(url)
        try:
            started = time.perf_counter()
            with conn.transaction():
                load(conn)
            return time.perf_counter() - started
        finally:
            conn.close()


class MySqlTarget(ServerTarget):
    """MariaDB (or MySQL) through PyMySQL, the driver ordercli uses."""

    name = "mysql"
    # ordercli's connections run this too (MySQLBackend.create_database).
    init_command = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"

    def __init__(self, admin_url: str) -> None:
        import pymysql

        super().__init__()
        self.admin_url = admin_url
        self.server = self.connect_params(admin_url)
        self.server.pop("database", None)
        self.admin = pymysql.connect(**self.server, autocommit=True, connect_timeout=5)
        with self.admin.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
        self.version = str(row[0]) if row else "?"

    @staticmethod
    def connect_params(url: str) -> dict[str, Any]:
        """PyMySQL's connect() arguments for a mysql:// URL (user, password, host, port, db)."""
        parts = urlsplit(url)
        params: dict[str, Any] = {"host": parts.hostname or "127.0.0.1", "charset": "utf8mb4"}
        if parts.port:
            params["port"] = parts.port
        if parts.username:
            params["user"] = unquote(parts.username)
        if parts.password:
            params["password"] = unquote(parts.password)
        if parts.path.strip("/"):
            params["database"] = unquote(parts.path.strip("/"))
        return params

    def admin_execute(self, sql: str) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(sql)

    def connection_error(self) -> type[Exception]:
        import pymysql

        error: type[Exception] = pymysql.err.OperationalError
        return error

    def wait_until_ready(self, timeout: float = 120) -> None:
        import pymysql

        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(pymysql.err.Error):
                self.admin.ping(reconnect=True)
                return
            if time.monotonic() > deadline:
                raise BenchError(f"MySQL did not come back within {timeout:.0f} s")
            time.sleep(1)

    def drop(self, db: str) -> None:
        self.administer(f"DROP DATABASE IF EXISTS `{db}`")

    def create_empty(self, db: str) -> str:
        self.drop(db)
        self.administer(f"CREATE DATABASE `{db}`")
        return self.url(db)

    def migrated(self, db: str) -> str:
        # No template databases on MySQL: ordercli migrates each new database.
        url = self.create_empty(db)
        with connect(url):
            pass
        return url

    def export_spec(self, url: str) -> dict[str, Any]:
        return {"connect": {**self.connect_params(url), "init_command": self.init_command}}

    def raw(self, url: str) -> Any:
        import pymysql

        return pymysql.connect(
            **self.connect_params(url), autocommit=True, init_command=self.init_command
        )

    def fetchall(self, conn: Any, sql: str, params: Sequence[Any]) -> list[Any]:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def raw_loaders(self) -> dict[str, Loader]:
        return {"PyMySQL executemany (multi-row INSERT), 1 transaction": self.load_executemany}

    def load_executemany(self, url: str, rows: SeedRows) -> float:
        """`cursor.executemany("INSERT … VALUES (%s, …)", rows)`: PyMySQL rewrites it into
        multi-row INSERTs of up to `Cursor.max_stmt_length` (1,024,000) bytes each."""
        conn = self.raw(url)
        try:
            started = time.perf_counter()
            conn.begin()
            with conn.cursor() as cursor:
                for table, columns, values in rows.tables():
                    marks = ", ".join("%s" for _ in columns)
                    cursor.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", values
                    )
            conn.commit()
            return time.perf_counter() - started
        finally:
            conn.close()


def insert_sql(table: str, columns: Sequence[str], rows: int) -> str:
    """INSERT INTO table (columns) VALUES ($1, $2, …), (…): `rows` rows, numbered params."""
    width = len(columns)
    values = ", ".join(
        "(" + ", ".join(f"${row * width + col + 1}" for col in range(width)) + ")"
        for row in range(rows)
    )
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"


def open_targets(
    backends: Sequence[str], pg_url: str, workdir: Path, mysql_url: str
) -> tuple[list[Target], list[str]]:
    """The requested backends that can be used, and a note for each one that cannot."""
    targets: list[Target] = []
    notes: list[str] = []
    for name in backends:
        if name == "sqlite":
            targets.append(SqliteTarget(workdir))
            continue
        if name == "mysql":
            try:
                targets.append(MySqlTarget(mysql_url))
            except ImportError:
                notes.append("**MySQL skipped**: PyMySQL is not installed (`ordercli[mysql]`).")
            except Exception as exc:  # unreachable server, bad URL, refused login: skip it
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                notes.append(f"**MySQL skipped**: cannot connect to `{mysql_url}`: {first_line}")
            continue
        try:
            targets.append(PostgresTarget(pg_url))
        except ImportError:
            notes.append("**PostgreSQL skipped**: psycopg is not installed (`ordercli[postgres]`).")
        except Exception as exc:  # unreachable server, bad URL, refused login: skip it
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            notes.append(f"**PostgreSQL skipped**: cannot connect to `{pg_url}`: {first_line}")
    for note in notes:
        log(note.replace("**", ""))
    return targets, notes


# --------------------------------------------------------------------------- seed rows


@dataclass(frozen=True)
class SeedRows:
    """The rows `seed(count, seed_value=s)` inserts into an empty database, with ids."""

    customers: list[tuple[Any, ...]]
    orders: list[tuple[Any, ...]]
    items: list[tuple[Any, ...]]

    @property
    def count(self) -> int:
        return len(self.customers) + len(self.orders) + len(self.items)

    def tables(self) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        return [
            ("customer", ("id", "name", "email", "created_at"), self.customers),
            (
                "orders",
                ("id", "customer_id", "status", "total_cents", "created_at", "updated_at"),
                self.orders,
            ),
            ("order_item", ("order_id", "sku", "quantity", "unit_price_cents"), self.items),
        ]


def generate_seed_rows(count: int, seed_value: int) -> SeedRows:
    """The same draws, in the same order, as ordercli's `seed` makes on an empty database."""
    rng = random.Random(seed_value)
    n_customers = math.ceil(count / 8)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    tag = f"{rng.getrandbits(32):08x}"
    names = [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(n_customers)]
    joined = now - SEED_WINDOW
    customers = [
        (n + 1, names[n], f"user{n + 1}.{tag}@example.com", joined) for n in range(n_customers)
    ]
    orders: list[tuple[Any, ...]] = []
    items: list[tuple[Any, ...]] = []
    generated = _generate_orders(rng, list(range(1, n_customers + 1)), count, now)
    for order_id, (order, order_items) in enumerate(generated, start=1):
        orders.append((order_id, *order))
        items.extend((order_id, *item) for item in order_items)
    return SeedRows(customers, orders, items)


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Dataset:
    target: Target
    size: int
    url: str
    customers: int
    orders: int

    @property
    def label(self) -> str:
        return f"{self.target.name} {self.size:,}"


def dataset_db(size: int) -> str:
    return f"bench_{size}"


def build_dataset(target: Target, size: int, workdir: Path) -> Measured:
    """`ordercli seed --count SIZE --seed 1` into a new, empty database (the dataset)."""
    url = target.create_empty(dataset_db(size))
    run, rows = seed_command(url, size, 1, workdir / "seed-output.json")
    return replace(run, rows=rows)


def open_dataset(target: Target, size: int) -> Dataset:
    url = target.url(dataset_db(size))
    with connect(url):
        customers, orders = Customer.select().count(), Order.select().count()
    return Dataset(target, size, url, customers, orders)


def rare_needle() -> str:
    """The local part of one customer's email (with its run tag): matches that customer only.

    A customer from the middle of the id range who has paid orders, so that the query
    finds a few rows: without an index on the email, a plan that walks the orders newest
    first has to read all of them to find those few."""
    customers = Customer.select().count()
    paid = Order.select(Order.customer).where(Order.status == Status.PAID.value)
    row = (
        Customer.select(Customer.email)
        .where((Customer.id >= max(1, customers // 2)) & Customer.id.in_(paid))
        .order_by(Customer.id)
        .first()
    )
    if row is None:
        raise BenchError("no customer with a paid order to pick a rare needle from")
    return str(row.email).split("@")[0]


def matching_customers(needle: str) -> int:
    return Customer.select().where(peewee.fn.LOWER(Customer.email).contains(needle.lower())).count()


# --------------------------------------------------------------------------- report


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def ordercli_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "ordercli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ordercli.__version__
    return f"{ordercli.__version__} (git {head}{', ordercli/ modified' if dirty else ''})"


def header(targets: Sequence[Target]) -> str:
    try:
        import psycopg

        psycopg_version = psycopg.__version__
    except ImportError:
        psycopg_version = "not installed"
    postgres = next((t.version for t in targets if isinstance(t, PostgresTarget)), "not used")
    mysql = next((t.version for t in targets if isinstance(t, MySqlTarget)), "not used")
    try:
        import pymysql

        pymysql_version = pymysql.__version__
    except ImportError:
        pymysql_version = "not installed"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = [
        now,
        f"CPU {cpu_model()}",
        f"{os.cpu_count()} cores",
        f"Python {platform.python_version()}",
        f"SQLite {sqlite3.sqlite_version}",
        f"PostgreSQL {postgres}",
        f"MySQL {mysql}",
        f"peewee {getattr(peewee, '__version__', '?')}",
        f"psycopg {psycopg_version}",
        f"PyMySQL {pymysql_version}",
        f"ordercli {ordercli_revision()}",
        "load average {:.1f} {:.1f} {:.1f} at start".format(*os.getloadavg()),
        f"command `{shlex.join(getattr(sys, 'orig_argv', sys.argv))}`",
    ]
    return "# ordercli benchmark\n\n" + " · ".join(facts)


def run_section(name: str, build: Callable[[], Table]) -> Table:
    """Build one section; if it fails, the report says so and the other sections still run."""
    try:
        return build()
    except Exception as exc:  # a broken section must not cost the whole run
        log(f"{name} failed: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        table = Table(name, [])
        table.notes.append(f"**Failed**: {type(exc).__name__}: {exc}")
        table.failed = True
        return table


def csv_list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(part.strip()) for part in text.split(",") if part.strip()]

    return parse
