"""How each database engine differs: connections, DDL, transactions, locks, drivers.

Commands and queries never test which engine they run on; they ask the open
connection (db.Connection) for a write transaction, a row lock, a streaming cursor, a
bind-parameter budget, and its backend for a piece of DDL or the `Feature`s a query
may build on (queries.py chooses the query's shape from those). A new engine is a new
subclass registered in `SCHEMES` (and its URL scheme in urls.EXAMPLES).
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import itertools
import logging
import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import peewee

from ordercli.errors import ConfigError
from ordercli.urls import DatabaseUrl


class Feature(enum.Flag):
    """What an engine offers beyond plain SQL. The backend only says what it has;
    queries.py decides which query shape to build from it."""

    NONE = 0
    # A join hint that keeps the tables in the order written (MySQL/MariaDB STRAIGHT_JOIN).
    STRAIGHT_JOIN = enum.auto()
    # `customer_email_fts`, an FTS5 trigram index of the emails (SQLite, migration 2).
    EMAIL_TRIGRAMS = enum.auto()
    # Orders spread over workers, `customer` a reference table copied to each (Citus).
    SHARDED_ORDERS = enum.auto()


class Backend:
    """What one database engine needs done differently."""

    name: ClassVar[str]
    # DDL fragments used by the migrations (see migrations.py).
    ddl: ClassVar[dict[str, str]]
    # What queries.py may build on (see Feature).
    features: ClassVar[Feature] = Feature.NONE
    # Whether any command may upgrade an existing schema (a file owned by its user), or
    # only `ordercli migrate` (a server's shared, live schema).
    upgrades_on_use: ClassVar[bool] = False

    def __init__(self, url: DatabaseUrl) -> None:
        self.url = url

    def create_database(self) -> peewee.Database:
        raise NotImplementedError

    def max_bind_params(self, db: peewee.Database) -> int:
        """How many `?`/`%s` placeholders one statement may carry."""
        raise NotImplementedError

    def refine(self, db: peewee.Database) -> Backend:
        """The backend for the database actually reached (e.g. Citus behind a
        postgresql:// URL), asked once the connection is open."""
        return self

    def write_transaction(self, db: peewee.Database) -> Any:
        """A transaction for read-then-write: rows read in it stay ours until commit."""
        return db.atomic()

    def lock_groups(self, db: peewee.Database, ids: Sequence[int], limit: int) -> list[list[int]]:
        """`ids` in the groups a locking SELECT may take at once (each at most `limit`
        long), in the order every caller locks them in, so that callers cannot deadlock."""
        return _slices(sorted(ids), limit)

    def distribution_statements(self) -> list[str]:
        """DDL that spreads the freshly created tables over a cluster (Citus only)."""
        return []

    def lock_rows(self, query: peewee.Select) -> peewee.Select:
        """Lock the rows a SELECT returns until the transaction ends."""
        return query.for_update()

    @contextlib.contextmanager
    def read_only_transaction(self, db: peewee.Database) -> Iterator[None]:
        """A transaction that can only read (`--dry-run`): no write lock is taken, so it
        neither waits behind writers nor fails on a read-only file, replica or session."""
        with db.atomic():
            db.execute_sql("SET TRANSACTION READ ONLY")
            yield

    def max_statement_bytes(self, db: peewee.Database) -> int | None:
        """How large one statement may be, when the server limits it (None: no limit)."""
        return None

    @contextlib.contextmanager
    def migration_lock(self, db: peewee.Database) -> Iterator[None]:
        """Serialise schema changes between processes."""
        raise NotImplementedError
        yield  # pragma: no cover

    def read_schema_version(self, db: peewee.Database) -> int | None:
        """The applied schema version, or None before the first migration.

        Runs on the raw driver cursor, so the probe does not show up as one of the
        command's statements (see `--echo-sql` in README)."""
        raise NotImplementedError

    def iterate(
        self, db: peewee.Database, query: peewee.Select, stream: bool
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of `query` as the driver returns them (no Peewee conversion: that cost
        more per row than the database did); with `stream`, in flat memory."""
        return self.stream(db, query) if stream else iter(db.execute(query))

    def stream(self, db: peewee.Database, query: peewee.Select) -> Iterator[tuple[Any, ...]]:
        """Rows fetched a batch at a time (sqlite3 cursors already step row by row)."""
        return iter(db.execute(query))

    def execute_repeated(self, db: peewee.Database, sql: str, params: Sequence[Any]) -> Any:
        """Run a statement that will be sent many times with different parameters."""
        return db.execute_sql(sql, params)

    def check_returning(self, db: peewee.Database) -> None:
        """Refuse early if INSERT ... RETURNING (needed by seed) is missing."""

    def after_bulk_load(self, db: peewee.Database) -> None:
        """Leave freshly loaded tables ready to query (planner statistics)."""
        db.execute_sql("ANALYZE")

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """The driver's own exception classes (for what Peewee leaves unwrapped)."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """Whether the database asks for the transaction to be run again."""
        return False

    def is_lock_timeout(self, exc: BaseException) -> bool:
        """Whether a statement gave up waiting for a lock (`lock_timeout`)."""
        return False

    def period_start(self, period: str, column: peewee.Node) -> peewee.Node:
        """The first day of the UTC day, ISO week (Monday) or month holding `column` (a
        timestamp), in the engine's own date functions. Returned
        as a date, a datetime at midnight or 'YYYY-MM-DD' text, as the engine has it."""
        raise NotImplementedError


def _unicode_lower(value: Any) -> Any:
    """SQL LOWER() as Python's str.lower: SQLite's own folds ASCII only, while the
    `--email` needle is lowered in Python; both sides must fold the same way."""
    return value.lower() if isinstance(value, str) else value


def _decode_text(raw: bytes) -> str:
    """TEXT as str; bytes another writer stored that are not UTF-8 show as U+FFFD
    instead of failing the whole read."""
    return raw.decode("utf-8", "replace")


class OrdercliSqliteDatabase(peewee.SqliteDatabase):
    """SqliteDatabase whose connections switch to WAL only when they can and need to.

    Setting `journal_mode` writes the database header: on a read-only file (or one in
    a read-only directory) that fails, while reading works fine. The mode is read
    first; a file already in WAL (every file ordercli made) is left as it is, and a
    rollback-journal file that cannot be written is read in its own mode."""

    def _add_conn_hooks(self, conn: sqlite3.Connection) -> None:
        super()._add_conn_hooks(conn)  # type: ignore[misc]
        conn.text_factory = _decode_text
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("PRAGMA journal_mode = wal")


class SqliteBackend(Backend):
    name = "sqlite"
    features = Feature.EMAIL_TRIGRAMS
    upgrades_on_use = True
    ddl = {
        "pk": "INTEGER PRIMARY KEY",
        "fk": "INTEGER",
        "timestamp": "TIMESTAMP",
        "now": "CURRENT_TIMESTAMP",
        "bool": "INTEGER",
        "true": "1",
        "false": "0",
        "bool_check": "CHECK ({col} IN (0, 1))",
        "table_options": "",
    }
    busy_timeout_ms = 30_000
    default_max_variables = 32_766  # SQLITE_MAX_VARIABLE_NUMBER since SQLite 3.32

    def create_database(self) -> peewee.Database:
        db = OrdercliSqliteDatabase(
            self.url.database,
            pragmas={
                "foreign_keys": 1,
                "synchronous": "normal",
                "busy_timeout": self.busy_timeout_ms,
            },
            timeout=self.busy_timeout_ms / 1000,
            returning_clause=True,
            **self.url.connect_params,
        )
        db.register_function(_unicode_lower, "lower", 1, deterministic=True)
        return db

    def max_bind_params(self, db: peewee.Database) -> int:
        # The connection's limit, but no more than SQLite's default (32,766): Debian
        # builds allow 250,000, and statements that wide are slower to compile and to
        # parse (100k-order seed: 3.6 s at 62,500 rows per statement, 2.9 s at 8,000).
        conn = db.connection()
        limit = int(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        return min(limit, self.default_max_variables)

    def write_transaction(self, db: peewee.Database) -> Any:
        # A DEFERRED transaction that upgrades to a write fails with SQLITE_BUSY at
        # once; IMMEDIATE takes the write lock up front and waits on busy_timeout.
        return db.atomic("IMMEDIATE")

    def lock_rows(self, query: peewee.Select) -> peewee.Select:
        return query  # the IMMEDIATE transaction already excludes other writers

    @contextlib.contextmanager
    def read_only_transaction(self, db: peewee.Database) -> Iterator[None]:
        # A DEFERRED transaction takes no lock until it reads; query_only makes any
        # write in it fail instead of upgrading to a write lock.
        conn = db.connection()
        conn.execute("PRAGMA query_only = 1")
        try:
            with db.atomic("DEFERRED"):
                yield
        finally:
            conn.execute("PRAGMA query_only = 0")

    @contextlib.contextmanager
    def migration_lock(self, db: peewee.Database) -> Iterator[None]:
        with db.atomic("IMMEDIATE"):
            yield

    def driver_errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)

    def is_transient(self, exc: BaseException) -> bool:
        text = str(_driver_error(exc)).lower()
        return "database is locked" in text or "database is busy" in text

    def period_start(self, period: str, column: peewee.Node) -> peewee.Node:
        # 'weekday 0' moves forward to the next Sunday (or stays on one); six days back
        # from there is the Monday starting the ISO week.
        if period == "day":
            return peewee.fn.DATE(column)
        if period == "week":
            return peewee.fn.DATE(column, peewee.SQL("'weekday 0'"), peewee.SQL("'-6 days'"))
        return peewee.fn.STRFTIME(peewee.SQL("'%Y-%m-01'"), column)

    def read_schema_version(self, db: peewee.Database) -> int | None:
        cursor = db.connection().cursor()
        try:
            row = cursor.execute("SELECT MAX(id) FROM ordercli_migration").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return int(row[0] or 0)


def _utc_postgres_class() -> type[peewee.Database]:
    from playhouse.postgres_ext import PostgresqlExtDatabase

    class UtcPostgresDatabase(PostgresqlExtDatabase):  # type: ignore[misc]
        """Sessions in UTC, whatever PGTZ or the server says.

        Timestamps are `timestamptz` (migration 3): a naive datetime ordercli sends is read
        by the server in the session's zone, and the values it returns are converted to
        it; in UTC both are the instant meant. PgBouncer tracks TimeZone per client, so a
        session SET is safe behind it in transaction pooling. Run on the raw cursor: it is
        connection set-up, not one of the command's statements."""

        def _initialize_connection(self, conn: Any) -> None:
            conn.execute("SET TIME ZONE 'UTC'")

    return UtcPostgresDatabase


class PostgresBackend(Backend):
    name = "postgresql"
    ddl = {
        "pk": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "fk": "BIGINT",
        "timestamp": "TIMESTAMP(6) WITHOUT TIME ZONE",
        # now() follows the session's TimeZone; the column holds UTC wall time.
        "now": "(now() AT TIME ZONE 'UTC')",
        "bool": "BOOLEAN",
        "true": "TRUE",
        "false": "FALSE",
        "bool_check": "",
        "table_options": "",
    }
    # psycopg 3 sends parameters server-side; the protocol counts them in 16 bits.
    bind_param_limit = 65_535

    def __init__(self, url: DatabaseUrl) -> None:
        super().__init__(url)
        self._native_sql: dict[str, str] = {}

    advisory_lock_key = 0x6F72646572636C69  # "ordercli"

    def create_database(self) -> peewee.Database:
        _require_driver("psycopg", "postgres", "PostgreSQL")
        params = dict(self.url.connect_params)
        params.setdefault("connect_timeout", 10)
        db: peewee.Database = _utc_postgres_class()(
            self.url.database, prefer_psycopg3=True, **params
        )
        return db

    def max_bind_params(self, db: peewee.Database) -> int:
        return self.bind_param_limit

    def refine(self, db: peewee.Database) -> Backend:
        # On the raw cursor, like read_schema_version: not one of the command's statements.
        with db.connection().cursor() as cursor:
            row = cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone()
        if row is None:
            return self
        citus = CitusBackend(self.url)
        citus._native_sql = self._native_sql
        citus.configure(db)
        return citus

    @contextlib.contextmanager
    def migration_lock(self, db: peewee.Database) -> Iterator[None]:
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (self.advisory_lock_key,))
            yield

    def read_schema_version(self, db: peewee.Database) -> int | None:
        import psycopg

        conn = db.connection()
        try:
            with conn.cursor() as cursor:
                row = cursor.execute("SELECT MAX(id) FROM ordercli_migration").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        return int(row[0] or 0) if row else 0

    def period_start(self, period: str, column: peewee.Node) -> peewee.Node:
        # date_trunc's weeks are ISO weeks (Monday). The column is `timestamptz` (migration
        # 3) and date_trunc truncates it in the session's zone, which ordercli sets to UTC
        # on every connection (UtcPostgresDatabase): periods are UTC days, weeks, months.
        if period not in ("day", "week", "month"):
            raise ValueError(f"unknown period {period!r}")
        return peewee.fn.date_trunc(peewee.SQL(f"'{period}'"), column)

    def after_bulk_load(self, db: peewee.Database) -> None:
        # VACUUM sets the visibility map, without which summary's covering index cannot
        # be scanned index-only (1M orders: 1.2 s before, 0.32 s after).
        db.execute_sql("VACUUM (ANALYZE) customer, orders, order_item")

    def driver_errors(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (psycopg.Error,)

    def is_transient(self, exc: BaseException) -> bool:
        # serialization_failure, deadlock_detected
        return getattr(_driver_error(exc), "sqlstate", None) in ("40001", "40P01")

    def is_lock_timeout(self, exc: BaseException) -> bool:
        return getattr(_driver_error(exc), "sqlstate", None) == "55P03"  # lock_not_available

    def execute_repeated(self, db: peewee.Database, sql: str, params: Sequence[Any]) -> Any:
        # psycopg 3 rewrites %s placeholders to $n in Python on every execute of a
        # statement longer than 4 KiB (its cache stops there): for a wide INSERT that
        # took over half of seed's time. The statement is rewritten once here and sent
        # through a RawCursor, which takes $n as is (100k items: 66k -> 266k rows/s).
        import psycopg
        from psycopg.types.numeric import Int8Dumper

        native = self._native_sql.get(sql)
        if native is None:
            native = self._native_sql[sql] = _numbered_placeholders(sql)
        logging.getLogger("peewee").debug((sql, params))  # what --echo-sql and tests read
        cursor = psycopg.RawCursor(db.connection())
        # psycopg types each int parameter by its value (int2/int4/int8), so the same
        # statement got new parameter types batch after batch: never reused as a prepared
        # statement, and each variant kept in psycopg's cache (memory grew ~11 MB per
        # 100k orders). One type for every int keeps one prepared statement per shape.
        cursor.adapters.register_dumper(int, Int8Dumper)
        cursor.execute(native, params)
        return cursor

    def stream(self, db: peewee.Database, query: peewee.Select) -> Iterator[tuple[Any, ...]]:
        # Inside a transaction psycopg's named cursor fetches `itersize` rows a round trip
        # instead of materialising the whole result (works behind PgBouncer too).
        sql, params = db.get_sql_context().sql(query).query()
        logging.getLogger("peewee").debug((sql, params))
        with db.atomic():
            cursor = db.connection().cursor(name="ordercli_stream")
            cursor.itersize = 2000
            try:
                cursor.execute(sql, params)
                yield from cursor
            finally:
                cursor.close()


class CitusBackend(PostgresBackend):
    """PostgreSQL with the Citus extension: a coordinator with workers added.

    Chosen by `PostgresBackend.refine` when the database has the `citus` extension, so a
    postgresql:// URL to a coordinator is all a user gives. Differences from PostgreSQL:

    - Citus refuses identity columns in distributed tables: ids come from sequences
      (`BIGSERIAL`), which the coordinator hands out in the order of a statement's rows.
    - Tables are distributed by order id, co-located (an order, its items and events on
      one shard); `customer` is a reference table (a copy on every node), so its UNIQUE
      email and the foreign keys to it hold as on PostgreSQL. A distributed table's keys
      must contain its distribution column: `order_item` and `order_event` get the
      primary key `(order_id, id)`.
    - `SELECT ... FOR UPDATE` is refused on a query that reaches several shards: rows are
      locked one shard at a time (all shards in shard order, ids in order within one).
    - Transactions that write to several workers commit with two-phase commit (Citus
      does that by itself), so a multi-id cancel is all or nothing across workers.
    """

    name = "citus"
    features = Feature.SHARDED_ORDERS
    ddl = {**PostgresBackend.ddl, "pk": "BIGSERIAL PRIMARY KEY"}

    def refine(self, db: peewee.Database) -> Backend:
        return self

    def configure(self, db: peewee.Database) -> None:
        """Send every Python int as a bigint. psycopg types an int by its value (7 goes
        as smallint), and Citus prunes shards only when the value's type is the bigint
        distribution column's: `WHERE id = 7::int2` ran on all 32 shards (show: 200 ms
        instead of 1 ms), and a locking SELECT was refused as multi-shard."""
        from psycopg.types.numeric import Int8Dumper

        db.connection().adapters.register_dumper(int, Int8Dumper)

    def distribution_statements(self) -> list[str]:
        # Citus refuses foreign keys from local tables to distributed ones, so the keys
        # between the order tables are dropped while they are distributed, then made again
        # (now checked on each shard: an order and its rows are always on the same one).
        return [
            "ALTER TABLE order_item DROP CONSTRAINT order_item_order_id_fkey, "
            "DROP CONSTRAINT order_item_pkey, ADD PRIMARY KEY (order_id, id)",
            "ALTER TABLE order_event DROP CONSTRAINT order_event_order_id_fkey, "
            "DROP CONSTRAINT order_event_pkey, ADD PRIMARY KEY (order_id, id)",
            "SELECT create_reference_table('customer')",
            "SELECT create_distributed_table('orders', 'id')",
            "SELECT create_distributed_table('order_item', 'order_id', colocate_with => 'orders')",
            "SELECT create_distributed_table('order_event', 'order_id', colocate_with => 'orders')",
            "ALTER TABLE order_item ADD CONSTRAINT order_item_order_id_fkey "
            "FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE",
            "ALTER TABLE order_event ADD CONSTRAINT order_event_order_id_fkey "
            "FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE RESTRICT",
        ]

    @contextlib.contextmanager
    def migration_lock(self, db: peewee.Database) -> Iterator[None]:
        with super().migration_lock(db):
            # One connection per worker for the migration's DDL: Citus refuses some DDL
            # (CREATE EXTENSION, foreign keys to a reference table) after a parallel,
            # many-connection operation in the same transaction (e.g. CREATE INDEX).
            db.execute_sql("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
            yield

    def lock_groups(self, db: peewee.Database, ids: Sequence[int], limit: int) -> list[list[int]]:
        # A locking SELECT must stay on one shard: group the ids by the shard that holds them.
        groups: list[list[int]] = []
        if not ids:
            return groups
        cursor = db.execute_sql(
            "SELECT array_agg(x ORDER BY x) FROM unnest(%s::bigint[]) AS x "
            "GROUP BY get_shard_id_for_distribution_column('orders', x) "
            "ORDER BY get_shard_id_for_distribution_column('orders', x)",
            (list(ids),),
        )
        for (shard_ids,) in cursor.fetchall():
            groups.extend(_slices(shard_ids, limit))
        return groups

    def after_bulk_load(self, db: peewee.Database) -> None:
        db.execute_sql("VACUUM (ANALYZE) customer, orders, order_item")


class MySQLBackend(Backend):
    """MySQL and MariaDB through PyMySQL.

    - Timestamps are DATETIME(6) holding UTC wall time; the default is UTC_TIMESTAMP(6),
      which, unlike CURRENT_TIMESTAMP, ignores the server's and session's time_zone.
    - Tables are utf8mb4 with a binary collation, so email uniqueness is case-sensitive
      as on SQLite and PostgreSQL; case-insensitive search uses LOWER() on both sides.
    - Seed needs INSERT ... RETURNING to pair items with their new orders: MariaDB has
      it since 10.5. Oracle MySQL has none, and is refused with a clear error.
    - DDL is not transactional: each migration step is recorded only after all of its
      statements succeeded, under a GET_LOCK() named lock.
    """

    name = "mysql"
    features = Feature.STRAIGHT_JOIN
    ddl = {
        "pk": "BIGINT AUTO_INCREMENT PRIMARY KEY",
        "fk": "BIGINT",
        "timestamp": "DATETIME(6)",
        "now": "(UTC_TIMESTAMP(6))",
        "bool": "BOOLEAN",
        "true": "1",
        "false": "0",
        "bool_check": "",
        "table_options": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    }
    # The protocol's limit for one prepared statement; PyMySQL interpolates client-side
    # but the statement must also fit max_allowed_packet (8,192 rows ~ 0.5 MB).
    bind_param_limit = 65_535
    lock_name = "ordercli.migrate"
    lock_timeout_s = 60

    def __init__(self, url: DatabaseUrl) -> None:
        super().__init__(url)
        self._max_packet: int | None = None

    def create_database(self) -> peewee.Database:
        _require_driver("pymysql", "mysql", "MySQL/MariaDB")
        params = dict(self.url.connect_params)
        params.setdefault("connect_timeout", 10)
        # READ COMMITTED, as on PostgreSQL: no gap locks, far fewer InnoDB deadlocks
        # between concurrent cancels (which are retried anyway, see is_transient).
        params.setdefault("init_command", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return peewee.MySQLDatabase(self.url.database, charset="utf8mb4", **params)

    def after_bulk_load(self, db: peewee.Database) -> None:
        db.execute_sql("ANALYZE TABLE customer, orders, order_item").fetchall()

    def period_start(self, period: str, column: peewee.Node) -> peewee.Node:
        # WEEKDAY() counts from Monday = 0. No DATE_FORMAT: its % would clash with the
        # driver's %s placeholders.
        day = peewee.fn.DATE(column)
        if period == "day":
            return day
        if period == "week":
            offset: peewee.Node = peewee.fn.WEEKDAY(column)
        else:
            offset = peewee.NodeList((peewee.fn.DAYOFMONTH(column), peewee.SQL("- 1")), parens=True)
        return peewee.NodeList((day, peewee.SQL("- INTERVAL"), offset, peewee.SQL("DAY")))

    def driver_errors(self) -> tuple[type[Exception], ...]:
        import pymysql

        return (pymysql.err.Error,)

    def is_transient(self, exc: BaseException) -> bool:
        # ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT
        args: tuple[Any, ...] = getattr(_driver_error(exc), "args", ())
        return bool(args) and args[0] in (1213, 1205)

    def max_bind_params(self, db: peewee.Database) -> int:
        return self.bind_param_limit

    @contextlib.contextmanager
    def read_only_transaction(self, db: peewee.Database) -> Iterator[None]:
        # SET TRANSACTION (no SESSION) applies to the next transaction only.
        db.execute_sql("SET TRANSACTION READ ONLY")
        with db.atomic():
            yield

    def max_statement_bytes(self, db: peewee.Database) -> int | None:
        # PyMySQL interpolates parameters: the whole statement travels as one packet,
        # which the server refuses ("gone away") above max_allowed_packet.
        if self._max_packet is None:
            with db.connection().cursor() as cursor:
                cursor.execute("SELECT @@max_allowed_packet")
                self._max_packet = int(cursor.fetchone()[0])
        return self._max_packet

    @contextlib.contextmanager
    def migration_lock(self, db: peewee.Database) -> Iterator[None]:
        got = db.execute_sql(
            "SELECT GET_LOCK(%s, %s)", (self.lock_name, self.lock_timeout_s)
        ).fetchone()[0]
        if got != 1:
            raise ConfigError("timed out waiting for another ordercli to finish migrating")
        try:
            yield
        finally:
            db.execute_sql("SELECT RELEASE_LOCK(%s)", (self.lock_name,))

    def read_schema_version(self, db: peewee.Database) -> int | None:
        import pymysql

        try:
            with db.connection().cursor() as cursor:
                cursor.execute("SELECT MAX(id) FROM ordercli_migration")
                row = cursor.fetchone()
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] == 1146:  # ER_NO_SUCH_TABLE
                return None
            raise
        return int(row[0] or 0) if row else 0

    def stream(self, db: peewee.Database, query: peewee.Select) -> Iterator[tuple[Any, ...]]:
        """Rows from an unbuffered (server-side) cursor: flat memory."""
        import pymysql.cursors

        sql, params = db.get_sql_context().sql(query).query()
        logging.getLogger("peewee").debug((sql, params))
        cursor = db.connection().cursor(pymysql.cursors.SSCursor)
        try:
            cursor.execute(sql, params)
            yield from cursor
        finally:
            cursor.close()

    def check_returning(self, db: peewee.Database) -> None:
        version = db.connection().get_server_info()
        if "mariadb" not in version.lower():
            raise ConfigError(
                f"seed needs INSERT ... RETURNING, which MySQL {version} lacks; "
                "use MariaDB 10.5 or newer, PostgreSQL or SQLite"
            )


def _slices(items: list[int], size: int) -> list[list[int]]:
    """Consecutive slices of at most `size` (not Peewee's `chunked`, which pads every
    group to `size` first: tens of ms per call at SQLite's limit, even for one id)."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _require_driver(module: str, extra: str, engine: str) -> None:
    """Name the missing extra instead of Peewee's "psycopg2 postgres driver not found"."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{engine} needs the {module} driver: pip install 'ordercli[{extra}]'")


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's exception behind a Peewee one (Peewee passes it as the first arg)."""
    if isinstance(exc, peewee.PeeweeException) and exc.args:
        first = exc.args[0]
        if isinstance(first, BaseException):
            return first
    return exc


def _numbered_placeholders(sql: str) -> str:
    """Peewee's %s placeholders as PostgreSQL's $1, $2, ... (and %% as %)."""
    numbers = itertools.count(1)
    return re.sub(r"%[s%]", lambda m: "%" if m.group() == "%%" else f"${next(numbers)}", sql)


SCHEMES: dict[str, type[Backend]] = {
    "sqlite": SqliteBackend,
    "postgresql": PostgresBackend,
    "postgres": PostgresBackend,
    "mysql": MySQLBackend,
}


def backend_for(url: str) -> Backend:
    parsed = DatabaseUrl.parse(url)
    return SCHEMES[parsed.scheme](parsed)
