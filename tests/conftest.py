"""Fixtures: every test that takes `db_url` runs once per backend, each on its own database.

PostgreSQL tests read ORDERCLI_TEST_POSTGRES_URL (a database the test user may
CREATE DATABASE from); without it they skip, except under CI=true where a missing
or unreachable server fails the run. The same goes for MySQL/MariaDB
(ORDERCLI_TEST_MYSQL_URL) and for PgBouncer (ORDERCLI_TEST_PGBOUNCER_URL: transaction
pooling in front of that PostgreSQL server, with `?prepare_threshold=none`), through
which the "pgbouncer" backend runs every test on a database made directly on PostgreSQL.
The "citus" backend (ORDERCLI_TEST_CITUS_URL: the admin database of a Citus coordinator,
e.g. the one `scripts/citus-cluster up` prints) runs every test on a database of its own,
made on every node with the citus extension and the coordinator's workers added.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import typer
import typer.main
import typer.testing
from helpers import Run, pg_connect
from typer.testing import CliRunner

from ordercli.cli import app

POSTGRES_ENV = "ORDERCLI_TEST_POSTGRES_URL"
MYSQL_ENV = "ORDERCLI_TEST_MYSQL_URL"
PGBOUNCER_ENV = "ORDERCLI_TEST_PGBOUNCER_URL"
CITUS_ENV = "ORDERCLI_TEST_CITUS_URL"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("sqlite", "postgresql", "mysql", "pgbouncer", "citus")


def _missing_backend(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: backends may not be skipped)", pytrace=False)
    pytest.skip(message)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def _postgres_admin(url: str) -> Iterator[Any]:
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _missing_backend(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {exc}")
    try:
        yield conn
    finally:
        conn.close()


class Concurrent:
    """A Dropper job that may run alongside the other Concurrent jobs queued with it."""

    def __init__(self, job: Callable[[], None]) -> None:
        self.job = job


class Dropper:
    """Drops finished tests' databases on background threads.

    PostgreSQL's DROP DATABASE waits for a checkpoint (~0.8 s on an idle server, seconds
    while others write to it), longer than most tests take; done while the next tests
    run, it costs the suite almost nothing. Drops run `parallel` at a time, because drops
    waiting together share one checkpoint (8 drops on a busy server: 10 s at once, 210 s
    one by one), and the pgbouncer backend doubles the PostgreSQL databases.

    Jobs run in the order queued, except that consecutive Concurrent jobs overlap: any
    other job waits for every earlier one to finish, and every later one waits for it."""

    def __init__(self, parallel: int = 12) -> None:
        self.jobs: queue.Queue[Callable[[], None] | Concurrent | None] = queue.Queue()
        self.errors: list[BaseException] = []
        self.pool = ThreadPoolExecutor(parallel, thread_name_prefix="drop-database")
        self.thread = threading.Thread(target=self._run, name="drop-databases", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        running: list[Future[None]] = []
        while (job := self.jobs.get()) is not None:
            if isinstance(job, Concurrent):
                running.append(self.pool.submit(job.job))
                continue
            self._finish(running)
            try:
                job()
            except BaseException as exc:  # reported at the end of the session
                self.errors.append(exc)
        self._finish(running)

    def _finish(self, running: list[Future[None]]) -> None:
        for future in running:
            if (exc := future.exception()) is not None:
                self.errors.append(exc)
        running.clear()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        self.pool.shutdown()


@pytest.fixture(scope="session")
def dropper() -> Iterator[Dropper]:
    drops = Dropper()
    yield drops
    drops.close()
    assert not drops.errors, f"dropping test databases failed: {drops.errors[:3]}"


def _drop_postgres(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_postgres_database(admin: Any) -> str:
    name = f"ordercli_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    # A commit need not wait for its WAL to reach the disk: nothing here survives a
    # server crash or is tested for that, and flushes queue behind the DROPs'
    # checkpoints (PostgreSQL tests of test_bad_input: 45 s -> 37 s).
    admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    return name


class Creator:
    """Creates the next tests' PostgreSQL databases `ahead` of them, on a background
    thread: CREATE DATABASE (0.05 s on an idle server, 0.3 s and more on a busy one)
    happens while the tests before run. After a failure it stops, and tests create their
    databases themselves (and skip or fail as with any unreachable backend)."""

    def __init__(
        self, base: str, ahead: int = 2, create: Callable[[Any], str] = _create_postgres_database
    ) -> None:
        self.base = base
        self.create = create
        self.ready: queue.Queue[str | None] = queue.Queue()
        self.wanted: queue.Queue[bool] = queue.Queue()
        self.failed = self.closed = False
        for _ in range(ahead):
            self.wanted.put(True)
        self.thread = threading.Thread(target=self._run, name="create-databases", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        while self.wanted.get() and not self.closed:
            try:
                with psycopg.connect(self.base, autocommit=True, connect_timeout=5) as admin:
                    self.ready.put(self.create(admin))
            except Exception:
                self.failed = True
                self.ready.put(None)
                return

    def take(self) -> str | None:
        """A fresh database's name, or None: create one yourself."""
        if self.failed and self.ready.empty():
            return None
        name = self.ready.get()
        self.wanted.put(True)
        return name

    def close(self) -> list[str]:
        """Stop; the names of the databases made and never taken."""
        self.closed = True
        self.wanted.put(False)
        self.thread.join()
        left: list[str] = []
        while not self.ready.empty():
            if (name := self.ready.get()) is not None:
                left.append(name)
        return left


@pytest.fixture(scope="session")
def postgres_databases(dropper: Dropper) -> Iterator[Creator | None]:
    base = os.environ.get(POSTGRES_ENV)
    creator = Creator(base) if base else None
    yield creator
    if creator is not None and base:
        for name in creator.close():
            dropper.jobs.put(Concurrent(functools.partial(_drop_postgres, base, name)))


@pytest.fixture
def postgres_url(dropper: Dropper, postgres_databases: Creator | None) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base or postgres_databases is None:
        _missing_backend(f"{POSTGRES_ENV} is not set")
        raise AssertionError  # unreachable: skip/fail raise
    name = postgres_databases.take()
    if name is None:
        with _postgres_admin(base) as admin:
            name = _create_postgres_database(admin)
    try:
        yield _with_database(base, name)
    finally:
        dropper.jobs.put(Concurrent(functools.partial(_drop_postgres, base, name)))


@pytest.fixture
def pgbouncer_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (created and dropped directly on PostgreSQL)
    reached through PgBouncer: its host, port and query (`?prepare_threshold=none`)."""
    import psycopg

    bouncer = os.environ.get(PGBOUNCER_ENV)
    if not bouncer:
        _missing_backend(f"{PGBOUNCER_ENV} is not set")
        raise AssertionError  # unreachable: skip/fail raise
    direct = str(request.getfixturevalue("postgres_url"))
    name = urlsplit(direct).path.lstrip("/")
    url = _with_database(bouncer, name)
    try:
        pg_connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        _missing_backend(f"PgBouncer at {PGBOUNCER_ENV} is unreachable: {exc}")
    try:
        yield url
    finally:
        # PgBouncer keeps its server connections to the database open when the test's
        # clients are gone, until the DROP (queued behind others): end them now, or they
        # add up to max_connections over a few dozen quick tests.
        with psycopg.connect(direct, autocommit=True, connect_timeout=10) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def _citus_nodes(admin: Any) -> list[tuple[str, int]]:
    """The coordinator's workers (host, port), from its admin database."""
    rows = admin.execute(
        "SELECT nodename, nodeport FROM pg_dist_node "
        "WHERE groupid <> 0 AND noderole = 'primary' ORDER BY nodeport"
    ).fetchall()
    return [(str(host), int(port)) for host, port in rows]


def _create_citus_database(admin: Any) -> str:
    """A database on the coordinator and every worker, with the extension and the workers
    added: Citus 13 propagates CREATE DATABASE to the workers (when asked to), but not
    the extension, which each node needs before the coordinator can add it.

    The database's tables get 4 shards instead of Citus's default 32 (two per worker
    still): migrate takes 0.5 s instead of 1.6 s, and every test migrates."""
    import psycopg

    name = f"ordercli_test_{uuid.uuid4().hex[:12]}"
    workers = _citus_nodes(admin)
    if not workers:
        raise RuntimeError(f"the Citus coordinator at {CITUS_ENV} has no workers")
    coordinator = admin.info
    admin.execute("SET citus.enable_create_database_propagation TO on")
    admin.execute(f'CREATE DATABASE "{name}"')
    _set_citus_test_settings(admin, name)
    nodes = [(coordinator.host, coordinator.port), *workers]

    def create_extension(node: tuple[str, int]) -> None:
        host, port = node
        with psycopg.connect(
            host=host, port=port, dbname=name, user=coordinator.user, autocommit=True
        ) as conn:
            conn.execute("CREATE EXTENSION citus")

    # CREATE EXTENSION citus takes ~0.6 s on each node: all at once.
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(create_extension, nodes))
    with psycopg.connect(
        host=coordinator.host,
        port=coordinator.port,
        dbname=name,
        user=coordinator.user,
        autocommit=True,
    ) as new:
        new.execute(
            "SELECT citus_set_coordinator_host(%s, %s)", (coordinator.host, coordinator.port)
        )
        for host, port in workers:
            new.execute("SELECT citus_add_node(%s, %s)", (host, port))
    return name


def _drop_citus(base: str, name: str) -> None:
    """Drop the database on every node (Citus propagates the DROP; the coordinator's
    cached connections to the workers are ended first, or the workers refuse it)."""
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
        _, *workers = _node_admins(admin)
        for node in workers:
            with psycopg.connect(**node) as conn:
                _end_sessions(conn, name)
        admin.execute("SET citus.enable_create_database_propagation TO on")
        # in use: a worker's maintenance daemon reconnected to the coordinator meanwhile
        _while_in_use(
            lambda: admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'),
            attempts=10,
            pause_s=0.5,
        )
        # A copy of the template (_copy_citus_database) is not a database Citus created,
        # so the DROP above did not reach the workers: drop it there too.
        for node in workers:
            with psycopg.connect(**node) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _while_in_use(statement: Callable[[], object], attempts: int, pause_s: float) -> None:
    """Run `statement` (a DROP or a CREATE … TEMPLATE) again while PostgreSQL refuses it
    because a session is still in the database, up to `attempts` times."""
    import psycopg

    for attempt in range(1, attempts + 1):
        try:
            statement()
            return
        except psycopg.errors.ObjectInUse:
            if attempt == attempts:
                raise
            time.sleep(pause_s)


def _end_sessions(conn: Any, name: str) -> None:
    """Terminate every session in database `name` on the node `conn` is connected to."""
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )


def _set_citus_test_settings(admin: Any, name: str) -> None:
    """Per-database settings (not copied by CREATE DATABASE … TEMPLATE): commits that do
    not wait for the disk, and 4 shards per table (see _create_citus_database)."""
    admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    admin.execute(f'ALTER DATABASE "{name}" SET citus.shard_count = 4')


def _node_admins(admin: Any) -> list[dict[str, Any]]:
    """Connection keywords for the `postgres` database of the coordinator and each worker
    (where Citus is not loaded, so nothing done there is propagated)."""
    me = admin.info
    nodes = [(me.host, me.port), *_citus_nodes(admin)]
    return [
        {"host": host, "port": port, "dbname": "postgres", "user": me.user, "autocommit": True}
        for host, port in nodes
    ]


def _make_citus_template(admin: Any) -> str:
    """A test database made the slow way (_create_citus_database: the extension created on
    every node, ~0.6 s each, and the workers added), then closed to connections so that
    CREATE DATABASE … TEMPLATE can copy it on each node."""
    import psycopg

    name = _create_citus_database(admin)
    for node in _node_admins(admin):
        with psycopg.connect(**node) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            _end_sessions(conn, name)
    return name


def _copy_citus_database(template: str, admin: Any) -> str:
    """A fresh test database: the template copied on every node at once (its Citus
    metadata, workers included, is the same on each, so the copies form a cluster as the
    originals do). Per-database settings are not copied; they are set again. About a third
    of _create_citus_database's time, and most of its CPU saved."""
    import psycopg

    name = f"ordercli_test_{uuid.uuid4().hex[:12]}"

    def copy(node: dict[str, Any]) -> None:
        with psycopg.connect(**node) as conn:
            # in use: a session that was still leaving the template
            _while_in_use(
                lambda: conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'),
                attempts=50,
                pause_s=0.1,
            )

    nodes = _node_admins(admin)
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(copy, nodes))
    _set_citus_test_settings(admin, name)
    return name


@pytest.fixture(scope="session")
def citus_databases(dropper: Dropper) -> Iterator[Creator | None]:
    """Each test's Citus database, copied ahead of it from one template per test process."""
    import psycopg

    base = os.environ.get(CITUS_ENV)
    template = None
    if base:
        try:
            with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
                template = _make_citus_template(admin)
        except (psycopg.Error, RuntimeError):
            template = None  # the tests' own attempt reports it (skip, or fail under CI)
    creator = (
        Creator(base, create=functools.partial(_copy_citus_database, template))
        if base and template
        else None
    )
    yield creator
    if base and creator is not None:
        for name in creator.close():
            dropper.jobs.put(Concurrent(functools.partial(_drop_citus, base, name)))
    if base and template:
        dropper.jobs.put(Concurrent(functools.partial(_drop_citus, base, template)))


@pytest.fixture
def citus_url(dropper: Dropper, citus_databases: Creator | None) -> Iterator[str]:
    """A fresh Citus database (coordinator and workers), dropped afterwards."""
    import psycopg

    base = os.environ.get(CITUS_ENV)
    if not base:
        _missing_backend(f"{CITUS_ENV} is not set")
        raise AssertionError  # unreachable: skip/fail raise
    name = citus_databases.take() if citus_databases is not None else None
    if name is None:
        try:
            with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
                name = _create_citus_database(admin)
        except (psycopg.Error, RuntimeError) as exc:
            _missing_backend(f"Citus at {CITUS_ENV} is unusable: {exc}")
            raise AssertionError from None  # unreachable: skip/fail raise
    try:
        yield _with_database(base, name)
    finally:
        dropper.jobs.put(Concurrent(functools.partial(_drop_citus, base, name)))


@contextlib.contextmanager
def _mysql_admin(url: str) -> Iterator[Any]:
    import pymysql

    parts = urlsplit(url)
    try:
        conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            autocommit=True,
            connect_timeout=5,
        )
    except pymysql.err.OperationalError as exc:
        _missing_backend(f"MySQL at {MYSQL_ENV} is unreachable: {exc}")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MySQL/MariaDB database, dropped afterwards."""
    base = os.environ.get(MYSQL_ENV)
    if not base:
        _missing_backend(f"{MYSQL_ENV} is not set")
        raise AssertionError  # unreachable: skip/fail raise
    name = f"ordercli_test_{uuid.uuid4().hex[:12]}"
    with _mysql_admin(base) as admin:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")
        try:
            yield _with_database(base, name)
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orders.db'}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database on each backend in turn."""
    fixture = {
        "sqlite": "sqlite_url",
        "postgresql": "postgres_url",
        "mysql": "mysql_url",
        "pgbouncer": "pgbouncer_url",
        "citus": "citus_url",
    }[request.param]
    return str(request.getfixturevalue(fixture))


@functools.cache
def _click_command(typer_app: typer.Typer) -> Any:
    return typer.main.get_command(typer_app)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ordercli in-process: cli(db_url, "list", "--format", "json")."""
    monkeypatch.delenv("ORDERCLI_DATABASE_URL", raising=False)
    monkeypatch.delenv("ORDERCLI_ECHO_SQL", raising=False)
    monkeypatch.setenv("ORDERCLI_ACTOR", "pytest")
    # CliRunner.invoke builds the click command from the Typer app anew on every call
    # (~12 ms, a third of a small command's in-process run): build it once instead.
    monkeypatch.setattr(typer.testing, "_get_command", _click_command)
    runner = CliRunner()

    def run(
        url: str | None, *args: str, echo: bool = False, env: dict[str, str] | None = None
    ) -> Run:
        argv: list[str] = []
        if url is not None:
            argv += ["--db", url]
        if echo:
            argv.append("--echo-sql")
        result = runner.invoke(app, [*argv, *args], env=env)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, result.stdout, result.stderr)

    return run
