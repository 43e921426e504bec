"""Benchmark ordercli against the raw database drivers, on SQLite, PostgreSQL and MySQL.

    python benchmarks/bench.py [--quick] [--backends sqlite,postgresql,mysql]
        [--sizes 10000,100000,1000000] [--reps 5] [--sections 1,2,3,4,5,6,7] [--keep]
        [--pg-url postgresql://root@127.0.0.1/postgres]
        [--mysql-url mysql://root@127.0.0.1:3306/] [--workdir /tmp/ordercli-bench]

Progress goes to stderr; one Markdown report goes to stdout at the end. Every timing is
the median of `--reps` repetitions after one warm-up run, and the runs that a table
compares (ordercli and its raw-driver baseline) are interleaved, so drift on a noisy
machine hits both sides alike: only ratios from the same run mean anything.

Sections: 1 seed throughput, 2 seed of the large sizes (wall time, peak RSS), 3 summary,
4 list, 5 summary against a naive N+1 implementation, 6 CSV export, 7 start-up time.
It uses only ordercli's public entry points (db.connect, seeding.seed, the queries'
Select builders) so that it keeps working while ordercli's internals change. See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
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
from playhouse.test_utils import count_queries

import ordercli
from ordercli.db import connect, database
from ordercli.models import Customer, Order, OrderItem, Status
from ordercli.queries import list_orders, list_query, summarize_customers, summary_query
from ordercli.seeding import FIRST_NAMES, LAST_NAMES, _generate_orders, seed

REPO = Path(__file__).resolve().parent.parent
SMALL_SIZES_MAX = 100_000  # sizes up to this are seeded untimed; larger ones in section 2
SEED_SECTION_MAX = 100_000
QUICK_SIZES = (10_000, 100_000)
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

        return pymysql.err.OperationalError

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


def compile_sql(query: peewee.Query) -> tuple[str, list[Any]]:
    """The SQL and parameters Peewee sends for `query` on the open database."""
    sql, params = database.obj.get_sql_context().sql(query).query()
    return sql, list(params)


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


# --------------------------------------------------------------------------- 1. seed


def bench_seed(targets: Sequence[Target], sizes: Sequence[int], reps: int, workdir: Path) -> Table:
    table = Table(
        "1. seed: rows/s (customers + orders + items), a fresh database for every run",
        [
            "backend",
            "orders",
            "rows",
            "ordercli",
            "rows/s",
            "raw baseline",
            "rows/s",
            "ordercli/raw",
        ],
    )
    table.notes.append(
        f"Medians of {reps} runs after a warm-up. Run *r* seeds with `seed_value=r`, and the raw "
        "baselines insert the very rows seed draws for it (generated before the clock starts, "
        "explicit ids) into an ordercli-migrated database, in one transaction. `seed()` is "
        "timed in-process on an open connection; the command is the whole `ordercli --db URL "
        "seed --count N --seed r --format json` process (interpreter start, imports, connect, "
        "schema check, seed). The ratio is of rows/s: 1.00 = as fast as the raw driver."
    )
    for target in targets:
        for size in sizes:
            log(f"1. seed: {target.name}, {size:,} orders, {reps + 1} runs of each variant")
            try:
                label = f"{target.name} {size:,}"
                add_rows(table, target, label, seed_rows, target, size, reps, workdir)
            finally:
                target.drop_scratch()
    return table


def seed_rows(target: Target, size: int, reps: int, workdir: Path) -> list[list[str]]:
    stats = median_times(seed_trials(target, size, workdir), reps)
    rows = num(stats["`seed()` in-process"].rows)
    return [
        [
            target.name,
            num(size),
            rows,
            ours,
            num(stats[ours].rows_per_second),
            raw,
            num(stats[raw].rows_per_second),
            ratio(stats[ours].rows_per_second / stats[raw].rows_per_second),
        ]
        for ours in ("`seed()` in-process", "`ordercli seed` command")
        for raw in target.raw_loaders()
    ]


def seed_trials(target: Target, size: int, workdir: Path) -> dict[str, Trial]:
    generated: dict[int, SeedRows] = {}

    def rows_for(rep: int) -> SeedRows:
        if rep not in generated:  # keep one repetition's rows, shared by the baselines
            generated.clear()
            generated[rep] = generate_seed_rows(size, rep)
        return generated[rep]

    def in_process(rep: int) -> Measured:
        with connect(target.fresh()):
            started = time.perf_counter()
            result = seed(size, seed_value=rep)
            seconds = time.perf_counter() - started
        return Measured(seconds, result.customers + result.orders + result.items)

    def command(rep: int) -> Measured:
        run, rows = seed_command(target.fresh(), size, rep, workdir / "seed.json")
        return replace(run, rows=rows)

    def raw(load: Loader) -> Trial:
        def trial(rep: int) -> Measured:
            rows = rows_for(rep)
            return Measured(load(target.fresh(), rows), rows.count)

        return trial

    trials: dict[str, Trial] = {
        "`seed()` in-process": in_process,
        "`ordercli seed` command": command,
    }
    trials.update({label: raw(load) for label, load in target.raw_loaders().items()})
    return trials


# --------------------------------------------------------------------------- 2. large seeds


def large_seed_table(runs: Sequence[tuple[Target, int, Measured | str]]) -> Table:
    table = Table(
        "2. seed of the large datasets: the whole command, one run each",
        ["backend", "orders", "rows", "wall s", "rows/s", "peak RSS MB"],
    )
    table.notes.append(
        "`ordercli --db URL seed --count N --seed 1 --format json` into an empty database, "
        "run once from a small wrapper process, so that RUSAGE_CHILDREN's maxrss is this "
        "child's alone. These databases are the large datasets of the sections below."
    )
    for target, size, run in runs:
        if isinstance(run, str):
            table.notes.append(f"**{target.name} {size:,} failed**: {run}")
            continue
        table.rows.append(
            [
                target.name,
                num(size),
                num(run.rows),
                f"{run.seconds:.1f}",
                num(run.rows / run.seconds),
                f"{run.rss_mb:.0f}",
            ]
        )
    return table


# --------------------------------------------------------------------------- 3. summary


def bench_summary(datasets: Sequence[Dataset], reps: int) -> Table:
    table = Table(
        "3. summary: top 50 customers by money spent",
        [
            "backend",
            "orders",
            "ordercli ms",
            "raw ms",
            "ordercli/raw",
            "statements",
            "same SQL",
            "same rows",
        ],
    )
    table.notes.append(
        "`summarize_customers(limit=50)` in-process against the identical SQL and parameters "
        "(from `summary_query(limit=50)`) through the raw driver (execute + fetchall). "
        "Statements counted with `playhouse.test_utils.count_queries()` (the contract says 1); "
        "same SQL: the statement ordercli ran is the one the raw driver runs."
    )
    for ds in datasets:
        log(f"3. summary: {ds.label}")
        add_rows(table, ds.target, ds.label, summary_rows, ds, reps)
    return table


def summary_rows(ds: Dataset, reps: int) -> list[list[str]]:
    with connect(ds.url):
        result = compare_read(
            ds, lambda: summarize_customers(limit=50), summary_query(limit=50), reps
        )
    ours = [(value(row, "customer_id"), value(row, "spent_cents")) for row in result.ours_rows]
    same = ours == [(row[0], int(row[5])) for row in result.raw_rows]
    return [
        [
            ds.target.name,
            num(ds.orders),
            ms(result.ours.ms),
            ms(result.raw.ms),
            ratio(result.ours.seconds / result.raw.seconds),
            must_be_one(result.statements),
            yes(result.same_sql),
            yes(same),
        ]
    ]


@dataclass(frozen=True)
class ReadComparison:
    ours: Stats
    raw: Stats
    statements: int  # what ordercli ran, counted by count_queries()
    same_sql: bool  # ordercli ran exactly the SQL and parameters the raw driver runs
    ours_rows: list[Any]
    raw_rows: list[Any]


def compare_read(
    ds: Dataset, ours: Callable[[], list[Any]], query: peewee.Query, reps: int
) -> ReadComparison:
    """ordercli's `ours()` against `query`'s SQL run through the raw driver (fetchall).

    Call it with the dataset open (`with connect(ds.url)`); the SQL is compiled there."""
    sql, params = compile_sql(query)
    conn = ds.target.raw(ds.url)

    def raw() -> list[Any]:
        return ds.target.fetchall(conn, sql, params)

    try:
        with count_queries() as counter:
            ours_rows = ours()
        executed = [record.msg for record in counter.get_queries()]
        same_sql = [(text, list(values)) for text, values in executed] == [(sql, params)]
        stats = median_times(
            {"ordercli": lambda _rep: timed(ours), "raw": lambda _rep: timed(raw)}, reps
        )
        return ReadComparison(
            stats["ordercli"], stats["raw"], counter.count, same_sql, ours_rows, raw()
        )
    finally:
        conn.close()


# --------------------------------------------------------------------------- 4. list


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


def bench_list(datasets: Sequence[Dataset], reps: int) -> Table:
    table = Table(
        "4. list: status paid, email substring, newest 50",
        [
            "backend",
            "orders",
            "needle",
            "customers matching",
            "rows",
            "ordercli ms",
            "raw ms",
            "ordercli/raw",
            "statements",
            "same SQL",
            "same ids",
        ],
    )
    table.notes.append(
        "`list(list_orders(statuses=[Status.PAID], email=needle, limit=50))` against the "
        "identical SQL of `list_query(...)` through the raw driver (execute + fetchall). The "
        "common needle `user1` matches about one customer in nine (the 50 rows are among the "
        "newest few hundred orders); the rare one, the local part of one customer's email "
        "with its run tag, matches a single customer and a handful of orders."
    )
    for ds in datasets:
        log(f"4. list: {ds.label}")
        add_rows(table, ds.target, ds.label, list_rows, ds, reps)
    return table


def list_rows(ds: Dataset, reps: int) -> list[list[str]]:
    with connect(ds.url):
        return [
            list_row(ds, kind, needle, reps)
            for kind, needle in (("common", "user1"), ("rare", rare_needle()))
        ]


def list_row(ds: Dataset, kind: str, needle: str, reps: int) -> list[str]:
    result = compare_read(
        ds,
        lambda: list(list_orders(statuses=[Status.PAID], email=needle, limit=50)),
        list_query(statuses=[Status.PAID], email=needle, limit=50),
        reps,
    )
    same = [value(row, "id") for row in result.ours_rows] == [row[0] for row in result.raw_rows]
    return [
        ds.target.name,
        num(ds.orders),
        f"{kind} `{needle}`",
        num(matching_customers(needle)),
        num(len(result.ours_rows)),
        ms(result.ours.ms),
        ms(result.raw.ms),
        ratio(result.ours.seconds / result.raw.seconds),
        must_be_one(result.statements),
        yes(result.same_sql),
        yes(same),
    ]


# --------------------------------------------------------------------------- 5. N+1


def naive_summary(limit: int = 50) -> list[tuple[int, int]]:
    """Summary the way the original Django view computed it: a query per customer for
    their orders and a query per order for its items, summed and sorted in Python."""
    spent_statuses = [Status.PAID.value, Status.SHIPPED.value]
    spent: list[tuple[int, int]] = []
    for customer in Customer.select().where(Customer.is_active == True):  # noqa: E712
        total = 0
        orders = Order.select().where(
            (Order.customer == customer.id)
            & Order.status.in_(spent_statuses)
            & (Order.is_archived == False)  # noqa: E712
        )
        for order in orders:
            for item in OrderItem.select().where(OrderItem.order == order.id):
                total += item.quantity * item.unit_price_cents
        spent.append((customer.id, total))
    spent.sort(key=lambda pair: (-pair[1], pair[0]))
    return spent[:limit]


def bench_n_plus_one(datasets: Sequence[Dataset], reps: int) -> Table:
    table = Table(
        "5. summary before/after: naive N+1 through Peewee models vs ordercli's one SELECT "
        "(smallest dataset)",
        [
            "backend",
            "orders",
            "customers",
            "N+1 ms",
            "N+1 statements",
            "ordercli ms",
            "ordercli statements",
            "speed-up",
            "same top 50",
        ],
    )
    table.notes.append(
        "The naive version (`naive_summary` in bench.py) loads the active customers, then "
        "each one's paid/shipped orders, then each order's items, sums quantity × unit price "
        "in Python, sorts and keeps 50. The counting run of each side is its warm-up. "
        "Same top 50 compares (customer_id, spent_cents)."
    )
    for ds in datasets:
        log(f"5. N+1 summary: {ds.label}")
        add_rows(table, ds.target, ds.label, n_plus_one_rows, ds, reps)
    return table


def n_plus_one_rows(ds: Dataset, reps: int) -> list[list[str]]:
    with connect(ds.url):
        with count_queries() as naive_count:
            naive = naive_summary(50)
        with count_queries() as ours_count:
            ours = summarize_customers(limit=50)
        same = naive == [(value(r, "customer_id"), value(r, "spent_cents")) for r in ours]
        stats = median_times(
            {
                "naive": lambda _rep: timed(lambda: naive_summary(50)),
                "ordercli": lambda _rep: timed(lambda: summarize_customers(limit=50)),
            },
            reps,
            warmup=False,  # the counting runs above were the warm-ups
        )
    a, b = stats["naive"], stats["ordercli"]
    return [
        [
            ds.target.name,
            num(ds.orders),
            num(ds.customers),
            ms(a.ms),
            num(naive_count.count),
            ms(b.ms),
            must_be_one(ours_count.count),
            f"{a.seconds / b.seconds:,.0f}×",
            yes(same),
        ]
    ]


# --------------------------------------------------------------------------- 6. export

EXPORT_COLUMNS = (
    "id",
    "customer_id",
    "email",
    "status",
    "total_cents",
    "item_count",
    "is_archived",
    "created_at",
)


def bench_export(datasets: Sequence[Dataset], reps: int, workdir: Path) -> Table:
    table = Table(
        "6. export: every order as CSV to /dev/null (largest dataset)",
        [
            "backend",
            "orders",
            "ordercli s",
            "rows/s",
            "peak RSS MB",
            "raw s",
            "rows/s",
            "peak RSS MB",
            "ordercli/raw (time)",
            "ordercli/raw (RSS)",
        ],
    )
    table.notes.append(
        "ordercli: `ordercli --db URL list --limit 0 --format csv > /dev/null`. Raw: a child "
        "Python that runs the identical SQL (`list_query(limit=0)`) through the driver and "
        "writes the rows with `csv.writer` to /dev/null; SQLite iterates the cursor, "
        f"PostgreSQL uses a server-side cursor in a transaction (itersize {PG_ITERSIZE:,}), "
        "MySQL an unbuffered PyMySQL `SSCursor`. "
        "Both are whole processes, timed and measured (maxrss) from a wrapper process."
    )
    for ds in datasets:
        log(f"6. export: {ds.label}")
        add_rows(table, ds.target, ds.label, export_rows, ds, reps, workdir)
    return table


def export_rows(ds: Dataset, reps: int, workdir: Path) -> list[list[str]]:
    with connect(ds.url):
        sql, params = compile_sql(list_query(limit=0))
    spec = workdir / f"export-{ds.target.name}.json"
    spec.write_text(
        json.dumps(
            {
                "sql": sql,
                "params": params,
                "columns": EXPORT_COLUMNS,
                "pragmas": [],
                "itersize": PG_ITERSIZE,
                **ds.target.export_spec(ds.url),
            }
        )
    )
    ours = ordercli_command(ds.url, "list", "--limit", "0", "--format", "csv")
    raw = [sys.executable, "-c", RAW_EXPORT, ds.target.name, ds.target.export_target(ds.url)]
    try:
        stats = median_times(
            {
                "ordercli": lambda _rep: replace(run_child(ours), rows=ds.orders),
                "raw": lambda _rep: replace(run_child([*raw, str(spec)]), rows=ds.orders),
            },
            reps,
        )
    finally:
        spec.unlink()
    a, b = stats["ordercli"], stats["raw"]
    return [
        [
            ds.target.name,
            num(ds.orders),
            f"{a.seconds:.2f}",
            num(a.rows_per_second),
            f"{a.rss_mb:.0f}",
            f"{b.seconds:.2f}",
            num(b.rows_per_second),
            f"{b.rss_mb:.0f}",
            ratio(a.seconds / b.seconds),
            ratio(a.rss_mb / b.rss_mb),
        ]
    ]


# --------------------------------------------------------------------------- 7. start-up


def bench_startup(ds: Dataset, reps: int) -> Table:
    reps = max(reps, STARTUP_REPS_MIN)
    table = Table(
        "7. start-up: whole-process wall time (SQLite)",
        ["command", "ms", "× `python -c pass`"],
    )
    table.notes.append(
        f"Medians of {reps} runs after a warm-up, interleaved, stdout to /dev/null; the "
        f"`list` runs against the {ds.size:,}-order SQLite dataset."
    )
    commands = {
        "`python -c pass`": [sys.executable, "-c", "pass"],
        "`ordercli --help`": [ordercli_executable(), "--help"],
        "`ordercli --db sqlite:///… list`": ordercli_command(ds.url, "list"),
    }
    log(f"7. start-up: {len(commands)} commands × {reps + 1} runs")
    stats = median_times(
        {label: (lambda _rep, c=command: run_child(c)) for label, command in commands.items()},
        reps,
    )
    baseline = stats["`python -c pass`"].seconds
    for label, result in stats.items():
        table.rows.append([label, ms(result.ms), ratio(result.seconds / baseline)])
    return table


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
        f"peewee {peewee.__version__}",
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
        return table


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark ordercli against the raw SQLite, PostgreSQL and MySQL drivers.",
        epilog="Progress goes to stderr, the Markdown report to stdout.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 10k and 100k only; seed timed at 10k only; sections 1,3,4,6,7 "
        "unless --sections says otherwise (under 2 minutes)",
    )
    parser.add_argument(
        "--sections",
        type=csv_list(int),
        help="which sections to run, e.g. 3,4 (default: all; with --quick: 1,3,4,6,7)",
    )
    parser.add_argument("--backends", default="sqlite,postgresql", type=csv_list(str))
    parser.add_argument("--sizes", default="10000,100000,1000000", type=csv_list(int))
    parser.add_argument("--reps", default=5, type=int, help="measured runs per timing (≥ 5)")
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1/postgres")
    parser.add_argument(
        "--mysql-url",
        default="mysql://root@127.0.0.1:3306/",
        help="a MySQL/MariaDB server where the user may CREATE DATABASE (the path is ignored)",
    )
    parser.add_argument("--workdir", default="/tmp/ordercli-bench", type=Path)
    parser.add_argument(
        "--keep", action="store_true", help="keep the dataset databases (bench_<size>)"
    )
    parser.add_argument(
        "--scale",
        type=csv_list(int),
        metavar="SIZES",
        help="instead: the scaling curve (benchmarks/scale.py) at these sizes, e.g. "
        "1000000,3000000,10000000; writes docs/scale.json and docs/scale.png",
    )
    args = parser.parse_args(argv)
    if args.reps < 5:
        parser.error("--reps must be at least 5")
    unknown = set(args.backends) - {"sqlite", "postgresql", "mysql"}
    if unknown:
        parser.error(
            f"unknown backend(s): {', '.join(sorted(unknown))}; use sqlite,postgresql,mysql"
        )
    if any(size < 8 for size in args.sizes):
        parser.error("every size must be at least 8 orders")
    args.sizes = sorted(set(args.sizes))
    if args.quick:
        args.sizes = [size for size in args.sizes if size <= SMALL_SIZES_MAX] or list(QUICK_SIZES)
    if args.sections is None:
        args.sections = QUICK_SECTIONS if args.quick else ALL_SECTIONS
    if not set(args.sections) <= set(ALL_SECTIONS):
        parser.error(f"sections are numbered {ALL_SECTIONS[0]} to {ALL_SECTIONS[-1]}")
    args.sections = frozenset(args.sections)
    return args


def csv_list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(part.strip()) for part in text.split(",") if part.strip()]

    return parse


def run(args: argparse.Namespace, targets: Sequence[Target], tables: list[Table]) -> None:
    """Run the chosen sections, appending each one's table to `tables` as it completes."""
    workdir: Path = args.workdir
    sizes: list[int] = args.sizes
    reps: int = args.reps
    sections: frozenset[int] = args.sections

    seed_sizes = [size for size in sizes if size <= SEED_SECTION_MAX]
    if args.quick:
        seed_sizes = seed_sizes[:1]
    if 1 in sections and seed_sizes:
        tables.append(
            run_section("1. seed", lambda: bench_seed(targets, seed_sizes, reps, workdir))
        )

    datasets: list[Dataset] = []
    large: list[tuple[Target, int, Measured | str]] = []  # section 2: a run or an error
    if sections - {1, 2}:  # the read sections need a dataset of every size
        to_build = sizes
    elif 2 in sections:  # section 2 alone: only the large seeds
        to_build = [size for size in sizes if size > SMALL_SIZES_MAX]
    else:
        to_build = []
    for target in targets:
        for size in to_build:
            is_large = size > SMALL_SIZES_MAX
            timing = "one timed run, section 2" if is_large else "not timed"
            log(f"dataset: {target.name}, ordercli seed --count {size:,} --seed 1 ({timing})")
            label = f"dataset {target.name} {size:,}"
            try:
                built = retried(target, label, build_dataset, target, size, workdir)
                dataset = retried(target, label, open_dataset, target, size)
            except Exception as exc:  # no dataset: the read sections do without it
                log(f"{label} failed again: {short(exc)}")
                if is_large:
                    large.append((target, size, short(exc)))
                continue
            if is_large:
                large.append((target, size, built))
            datasets.append(dataset)
    if 2 in sections and large:
        tables.append(large_seed_table(large))
    if not datasets:
        return

    # Per backend: a backend whose large seed failed still gets its largest dataset.
    by_target = [[ds for ds in datasets if ds.target is t] for t in targets]
    smallest = [min(group, key=lambda ds: ds.size) for group in by_target if group]
    largest = [max(group, key=lambda ds: ds.size) for group in by_target if group]
    sqlite_smallest = [ds for ds in smallest if isinstance(ds.target, SqliteTarget)]
    if 3 in sections:
        tables.append(run_section("3. summary", lambda: bench_summary(datasets, reps)))
    if 4 in sections:
        tables.append(run_section("4. list", lambda: bench_list(datasets, reps)))
    if 5 in sections:
        tables.append(run_section("5. N+1", lambda: bench_n_plus_one(smallest, reps)))
    if 6 in sections:
        tables.append(run_section("6. export", lambda: bench_export(largest, reps, workdir)))
    if 7 in sections and sqlite_smallest:
        tables.append(run_section("7. start-up", lambda: bench_startup(sqlite_smallest[0], reps)))
    elif 7 in sections:
        skipped = Table("7. start-up: whole-process wall time (SQLite)", [])
        skipped.notes.append("Not run: it needs the SQLite backend (`--backends sqlite,…`).")
        tables.append(skipped)


def clean_up(targets: Sequence[Target], sizes: Sequence[int], keep: bool, workdir: Path) -> None:
    for target in targets:
        target.drop_scratch()
        names = [PostgresTarget.template] if isinstance(target, PostgresTarget) else []
        if not keep:
            names += [dataset_db(size) for size in sizes]
        for name in names:
            try:
                target.drop(name)
            except Exception as exc:  # report it, clean up the rest
                log(f"could not drop {name}: {short(exc)}")
        target.close()
    for leftover in ("seed.json", "seed-output.json"):
        (workdir / leftover).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scale:
        import scale  # beside this file; it imports this module for its helpers

        return scale.main(
            [
                *("--sizes", ",".join(map(str, args.scale))),
                *("--backends", ",".join(args.backends), "--reps", str(args.reps)),
                *("--pg-url", args.pg_url, "--mysql-url", args.mysql_url),
                *("--json", str(REPO / "docs" / "scale.json")),
                *("--chart", str(REPO / "docs" / "scale.png")),
                *(["--keep"] if args.keep else []),
            ]
        )
    args.workdir.mkdir(parents=True, exist_ok=True)
    targets, notes = open_targets(args.backends, args.pg_url, args.workdir, args.mysql_url)
    if not targets:
        plain = " ".join(note.replace("**", "") for note in notes)
        print(f"Error: no usable backend. {plain}", file=sys.stderr)
        return 1
    log(f"backends {', '.join(t.name for t in targets)}; sizes {args.sizes}; reps {args.reps}")
    head = header(targets)
    tables: list[Table] = []
    try:
        run(args, targets, tables)
    except Exception as exc:  # still report what was measured before it
        log(f"the benchmark stopped: {short(exc)}")
        traceback.print_exc()
        notes.append(f"**The benchmark stopped early**: {short(exc)}")
    finally:
        clean_up(targets, args.sizes, args.keep, args.workdir)
    elapsed = time.perf_counter() - _started
    load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    skipped = ", ".join(str(n) for n in ALL_SECTIONS if n not in args.sections)
    notes.append(
        f"Sizes {', '.join(f'{size:,}' for size in args.sizes)} orders"
        + (f"; sections {skipped} not run" if skipped else "")
        + (" (`--quick`: seed timed at the smallest size only)" if args.quick else "")
        + "."
    )
    notes.append(
        f"Whole benchmark: {elapsed:.0f} s (load average at the end: {load}). Times are "
        f"medians of {args.reps} runs after a warm-up; the runs compared in a row are "
        "interleaved. The machine is shared and noisy: compare ratios within this report, "
        "not absolute numbers across reports."
    )
    print(head + "\n\n" + "\n\n".join(notes) + "\n\n" + "\n\n".join(t.markdown() for t in tables))
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
