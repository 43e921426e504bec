"""Fixtures: every test that takes `db_url` runs once per backend, each on its own database.

PostgreSQL tests read ORDERCLI_TEST_POSTGRES_URL (a database the test user may
CREATE DATABASE from); without it they skip, except under CI=true where a missing
or unreachable server fails the run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from helpers import Run
from typer.testing import CliRunner

from ordercli.cli import app

POSTGRES_ENV = "ORDERCLI_TEST_POSTGRES_URL"
MYSQL_ENV = "ORDERCLI_TEST_MYSQL_URL"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ("sqlite", "postgresql", "mysql")


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


class Dropper:
    """Drops finished tests' databases on a background thread.

    PostgreSQL's DROP DATABASE waits for a checkpoint (~0.8 s here), longer than most
    tests take; done while the next tests run, it costs the suite almost nothing."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="drop-databases", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            try:
                job()
            except BaseException as exc:  # reported at the end of the session
                self.errors.append(exc)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()


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


@pytest.fixture
def postgres_url(dropper: Dropper) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        _missing_backend(f"{POSTGRES_ENV} is not set")
        raise AssertionError  # unreachable: skip/fail raise
    name = f"ordercli_test_{uuid.uuid4().hex[:12]}"
    with _postgres_admin(base) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(base, name)
    finally:
        dropper.jobs.put(functools.partial(_drop_postgres, base, name))


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
    fixture = {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mysql": "mysql_url"}[
        request.param
    ]
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ordercli in-process: cli(db_url, "list", "--format", "json")."""
    monkeypatch.delenv("ORDERCLI_DATABASE_URL", raising=False)
    monkeypatch.delenv("ORDERCLI_ECHO_SQL", raising=False)
    monkeypatch.setenv("ORDERCLI_ACTOR", "pytest")
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
