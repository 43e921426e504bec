"""The one place that knows how to open, configure, migrate and close the database.

`connect(url)` yields a `Connection`, the one handle on the open database: the core
(queries, orders, seeding, bulk) takes it as its first argument and asks it for anything
engine-specific (`conn.max_bind_params()`, `conn.iterate(query)`, `conn.retrying(work)`).
Nothing reaches for a module global.

The Peewee models are bound to `database`, a proxy that points at the innermost
open connection; leaving a `connect` block points it back at the connection outside it,
so `with connect(a) as a: with connect(b) as b: ...` can use `a` again afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import peewee

from ordercli import migrations
from ordercli.backends import Backend, Feature, backend_for
from ordercli.errors import DatabaseFailure, DatabaseUnavailable, OrderCliError
from ordercli.urls import redact

T = TypeVar("T")

# What the Peewee models are bound to (models.py): chosen at run time, by connect().
database = peewee.DatabaseProxy()

_TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|SET\s+TRANSACTION)\b", re.I
)
_WHITESPACE = re.compile(r"\s+")


class Connection:
    """One open database: the Peewee database and its engine's `Backend`.

    Engine-specific work goes through these methods, so a caller never pairs a backend
    with a database itself (and cannot pair it with another connection's)."""

    def __init__(self, database: peewee.Database, backend: Backend) -> None:
        self.database = database
        self.backend = backend

    def has(self, feature: Feature) -> bool:
        """Whether the engine offers `feature` (queries.py picks query shapes by it)."""
        return feature in self.backend.features

    def max_bind_params(self) -> int:
        """How many placeholders one statement may carry."""
        return self.backend.max_bind_params(self.database)

    def max_statement_bytes(self) -> int | None:
        """How large one statement may be, when the server limits it."""
        return self.backend.max_statement_bytes(self.database)

    def lock_groups(self, ids: Sequence[int], limit: int) -> list[list[int]]:
        """`ids` grouped in the order every caller locks them in (see Backend)."""
        return self.backend.lock_groups(self.database, ids, limit)

    def lock_rows(self, query: peewee.Select) -> peewee.Select:
        """`query` locking the rows it returns until the transaction ends."""
        return self.backend.lock_rows(query)

    def iterate(self, query: peewee.Select, stream: bool = False) -> Iterator[tuple[Any, ...]]:
        """Raw rows of `query`; with `stream`, in flat memory (see Backend.iterate)."""
        return self.backend.iterate(self.database, query, stream)

    def execute(self, query: peewee.Query) -> Any:
        """Run a Peewee query on this connection (not on whichever the models point at)."""
        return query.execute(self.database)

    def sql(self, query: peewee.Query) -> tuple[str, list[Any]]:
        """The SQL text and parameters this connection's engine would run for `query`."""
        sql, params = self.database.get_sql_context().sql(query).query()
        return str(sql), list(params)

    def execute_repeated(self, sql: str, params: Sequence[Any]) -> Any:
        """Run a statement that is sent many times with different parameters."""
        return self.backend.execute_repeated(self.database, sql, params)

    def check_returning(self) -> None:
        """Refuse early if the engine lacks INSERT ... RETURNING (seed needs it)."""
        self.backend.check_returning(self.database)

    def after_bulk_load(self) -> None:
        """Leave freshly loaded tables ready to query (planner statistics)."""
        self.backend.after_bulk_load(self.database)

    def write_transaction(self) -> Any:
        """A transaction for read-then-write: rows read in it stay ours until commit."""
        return self.backend.write_transaction(self.database)

    def read_only_transaction(self) -> contextlib.AbstractContextManager[None]:
        """A transaction that can only read (`--dry-run`)."""
        return self.backend.read_only_transaction(self.database)

    def retrying(self, work: Callable[[], T], attempts: int = 6, read_only: bool = False) -> T:
        """Run `work` in a write transaction (with `read_only`, a read-only one: --dry-run);
        run it again when the database asks for that.

        Deadlocks and serialization failures (InnoDB, PostgreSQL) and an exhausted SQLite
        busy timeout roll the whole transaction back, so doing it again is safe. Anything
        else propagates at once."""
        for attempt in itertools.count(1):
            try:
                transaction = (
                    self.read_only_transaction() if read_only else self.write_transaction()
                )
                with transaction:
                    return work()
            except Exception as exc:
                if attempt >= attempts or not self.backend.is_transient(exc):
                    raise
                time.sleep(random.uniform(0, min(0.025 * 2**attempt, 1.0)))  # jittered backoff
        raise AssertionError("unreachable")


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
def connect(url: str, echo_sql: bool = False, migrate: bool = True) -> Iterator[Connection]:
    """Open the database at `url`, bring its schema up to date, and close it afterwards.

    Every driver error inside the block leaves as an `OrderCliError` whose message has
    the password removed; the transaction that raised it has already rolled back.
    The models point at this database inside the block and back at the enclosing
    connection's (if any) after it."""
    chosen = backend_for(url)
    secrets = chosen.url.secrets
    echo = SqlEcho(secrets) if echo_sql else None
    logger = logging.getLogger("peewee")
    previous_level = logger.level
    if echo is not None:
        logger.addHandler(echo)
        logger.setLevel(logging.DEBUG)
    db = chosen.create_database()
    outer = database.obj
    database.initialize(db)
    try:
        with translate_errors(chosen):
            try:
                db.connect()
            except peewee.PeeweeException as exc:
                raise DatabaseUnavailable(
                    f"cannot open the {chosen.name} database: {_first_line(exc)}"
                ) from None
            conn = Connection(db, chosen.refine(db))
            if migrate:
                migrations.ensure_schema(db, conn.backend)
            yield conn
    finally:
        database.initialize(outer)
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
