"""The one place that knows how to open, configure, migrate and close the database."""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import peewee

from ordercli import migrations
from ordercli.backends import Backend, backend_for
from ordercli.errors import DatabaseFailure, DatabaseUnavailable, OrderCliError
from ordercli.urls import redact

T = TypeVar("T")

database = peewee.DatabaseProxy()

_active: Backend | None = None

_TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|SET\s+TRANSACTION)\b", re.I
)
_WHITESPACE = re.compile(r"\s+")


def backend() -> Backend:
    """The backend of the open database."""
    if _active is None:
        raise RuntimeError("no database is open; use ordercli.db.connect()")
    return _active


class SqlEcho(logging.Handler):
    """Writes each statement Peewee runs to stderr as one `SQL: ...` line."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        super().__init__(logging.DEBUG)
        self.secrets = secrets

    def emit(self, record: logging.LogRecord) -> None:
        if not isinstance(record.msg, tuple):
            return
        sql = record.msg[0]
        if _TRANSACTION_CONTROL.match(sql):
            return
        line = _WHITESPACE.sub(" ", sql).strip()
        print(f"SQL: {redact(line, self.secrets)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def connect(url: str, echo_sql: bool = False, migrate: bool = True) -> Iterator[Backend]:
    """Open the database at `url`, bring its schema up to date, and close it afterwards.

    Every driver error inside the block leaves as an `OrderCliError` whose message has
    the password removed; the transaction that raised it has already rolled back."""
    global _active
    chosen = backend_for(url)
    secrets = chosen.url.secrets
    echo = SqlEcho(secrets) if echo_sql else None
    logger = logging.getLogger("peewee")
    previous_level = logger.level
    if echo is not None:
        logger.addHandler(echo)
        logger.setLevel(logging.DEBUG)
    db = chosen.create_database()
    database.initialize(db)
    _active = chosen
    try:
        with translate_errors(chosen):
            try:
                db.connect()
            except peewee.PeeweeException as exc:
                raise DatabaseUnavailable(
                    f"cannot open the {chosen.name} database: {_first_line(exc)}"
                ) from None
            chosen = _active = chosen.refine(db)
            if migrate:
                migrations.ensure_schema(db, chosen)
            yield chosen
    finally:
        _active = None
        if not db.is_closed():
            with contextlib.suppress(Exception):
                db.close()
        if echo is not None:
            logger.removeHandler(echo)
            logger.setLevel(previous_level)


def _interrupted(exc: BaseException) -> bool:
    """Ctrl-C inside a driver call: the rollback on the half-read connection then fails
    too (PyMySQL: `(0, '')`), and that error replaces the interrupt. It was one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__context__ or current.__cause__
    return False


@contextlib.contextmanager
def translate_errors(chosen: Backend) -> Iterator[None]:
    secrets = chosen.url.secrets
    try:
        yield
    except OrderCliError as exc:
        exc.args = (redact(str(exc), secrets),)
        raise
    except (peewee.OperationalError, peewee.InterfaceError) as exc:
        if _interrupted(exc):
            raise KeyboardInterrupt from None
        cause = _first_line(_original_error(exc, chosen))
        raise DatabaseUnavailable(redact(f"database error: {cause}", secrets)) from None
    except peewee.DatabaseError as exc:
        if _interrupted(exc):
            raise KeyboardInterrupt from None
        cause = _first_line(_original_error(exc, chosen))
        raise DatabaseFailure(
            redact(f"the database refused the change: {cause}", secrets)
        ) from None
    except chosen.driver_errors() as exc:
        # Driver errors Peewee does not wrap (e.g. psycopg's DeadlockDetected).
        if _interrupted(exc):
            raise KeyboardInterrupt from None
        cause = _first_line(_original_error(exc, chosen))
        raise DatabaseFailure(redact(f"database error: {cause}", secrets)) from None


def _original_error(exc: BaseException, chosen: Backend) -> BaseException:
    """The database error that started it all.

    When a statement fails, the transaction's ROLLBACK can fail too (the server is gone;
    SQLite already rolled back after a full disk: "cannot rollback - no transaction is
    active"), and Python raises that second error with the first as its __context__."""
    database_errors: tuple[type[BaseException], ...] = (
        peewee.PeeweeException,
        *chosen.driver_errors(),
    )
    original = exc
    while (earlier := original.__context__) is not None and isinstance(earlier, database_errors):
        original = earlier
    return original


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip()


def retrying(work: Callable[[], T], attempts: int = 6, read_only: bool = False) -> T:
    """Run `work` in a write transaction (with `read_only`, a read-only one: --dry-run);
    run it again when the database asks for that.

    Deadlocks and serialization failures (InnoDB, PostgreSQL) and an exhausted SQLite
    busy timeout roll the whole transaction back, so doing it again is safe. Anything
    else propagates at once."""
    chosen = backend()
    for attempt in itertools.count(1):
        try:
            transaction = (
                chosen.read_only_transaction(database.obj)
                if read_only
                else chosen.write_transaction(database.obj)
            )
            with transaction:
                return work()
        except Exception as exc:
            if attempt >= attempts or not chosen.is_transient(exc):
                raise
            time.sleep(random.uniform(0, min(0.025 * 2**attempt, 1.0)))  # jittered backoff
    raise AssertionError("unreachable")


def lock_rows(query: peewee.Select) -> peewee.Select:
    return backend().lock_rows(query)
