"""Versioned schema migrations: ordered, named, never edited once released.

Each step is a list of operations written against table names (not today's models),
with dialect fragments from the backend filled in. Applied steps are recorded in
`ordercli_migration`; the version is the highest applied id.

Every operation can be run again after an interruption at any statement, because
MySQL/MariaDB commit each DDL statement on their own and PostgreSQL builds indexes
`CONCURRENTLY` outside any transaction: statements are idempotent (`IF NOT EXISTS`,
`IF EXISTS`) or carry a `pending` check of the catalog, and the version row is written
last. How a run is wrapped depends on the engine and on the database:

- SQLite: the whole run is one `BEGIN IMMEDIATE` transaction (its DDL is transactional),
  with foreign keys off so that tables can be rebuilt (migration 3).
- PostgreSQL, empty database: one transaction under an advisory lock, as a first use
  must be (plain index builds on empty tables).
- PostgreSQL, existing database (only `ordercli migrate`): each operation on its own,
  index builds `CONCURRENTLY` so the shop's writes go on, DDL taking table locks with a
  short `lock_timeout` and retried; an advisory lock held by a second connection keeps
  two migrates apart (a session lock would not survive PgBouncer's transaction pooling).
- MySQL/MariaDB: each operation on its own, under a GET_LOCK() named lock.
"""

from __future__ import annotations

import contextlib
import datetime
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import peewee

from ordercli.backends import Backend, MySQLBackend, PostgresBackend, SqliteBackend
from ordercli.errors import MigrationBlocked, PendingMigrations
from ordercli.timeutil import utcnow

Check = Callable[[peewee.Database], bool]


@dataclass(frozen=True)
class Op:
    """One re-runnable unit of a migration step.

    `statements` run together (in one transaction when `transactional`); `pending`, when
    given, is asked first and the op is skipped when it says the work is already done;
    `python` is work done in Python instead (data fixes), idempotent too, shown by
    `migrate --sql` as the comment `note`."""

    statements: tuple[str, ...] = ()
    pending: Check | None = None
    transactional: bool = True
    python: Callable[[peewee.Database], None] | None = None
    note: str = ""


def sql(*statements: str, pending: Check | None = None, transactional: bool = True) -> Op:
    return Op(tuple(statements), pending, transactional)


Ops = Callable[[Backend, bool], list[Op]]  # (backend, live) -> operations


@dataclass(frozen=True)
class Migration:
    id: int
    name: str
    ops: Ops = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.id:04d}_{self.name}"


# --- the catalog: what is already there ----------------------------------------------------


def _scalar(db: peewee.Database, query: str, params: Sequence[Any] = ()) -> Any:
    row = db.execute_sql(query, params).fetchone()
    return None if row is None else row[0]


def _pg_index_state(db: peewee.Database, name: str) -> bool | None:
    """True: a valid index; False: an invalid one (an interrupted CONCURRENTLY build);
    None: no such index."""
    value = _scalar(
        db, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
    )
    return None if value is None else bool(value)


def _pg_column_type(db: peewee.Database, table: str, column: str) -> str | None:
    return _text_or_none(
        db,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s AND column_name = %s",
        (table, column),
    )


def _pg_constraint(db: peewee.Database, table: str, name: str) -> bool | None:
    """True: validated; False: NOT VALID; None: absent."""
    value = _scalar(
        db,
        "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
        (table, name),
    )
    return None if value is None else bool(value)


def _text_or_none(db: peewee.Database, query: str, params: Sequence[Any]) -> str | None:
    value = _scalar(db, query, params)
    return None if value is None else str(value)


def _columns_not_timestamptz(table: str, columns: Sequence[str]) -> Check:
    return lambda db: any(
        _pg_column_type(db, table, c) != "timestamp with time zone" for c in columns
    )


def _pg_constraint_is(table: str, name: str, state: bool | None) -> Check:
    return lambda db: _pg_constraint(db, table, name) is state


def _mysql_constraint_missing(table: str, name: str) -> Check:
    return lambda db: not _mysql_constraint_exists(db, table, name)


def _mysql_constraint_exists(db: peewee.Database, table: str, name: str) -> bool:
    return bool(
        _scalar(
            db,
            "SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s AND CONSTRAINT_NAME = %s",
            (table, name),
        )
    )


# --- building blocks shared by the steps ----------------------------------------------------


def create_index(backend: Backend, live: bool, name: str, definition: str) -> list[Op]:
    """`CREATE INDEX name definition`, re-runnable.

    On a live PostgreSQL it is built CONCURRENTLY (writes go on while it builds); an
    interrupted concurrent build leaves an INVALID index behind, which is dropped and
    built again."""
    if isinstance(backend, PostgresBackend) and live:
        return [
            sql(
                f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
                pending=lambda db: _pg_index_state(db, name) is False,
                transactional=False,
            ),
            sql(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} {definition}",
                pending=lambda db: _pg_index_state(db, name) is None,
                transactional=False,
            ),
        ]
    return [sql(f"CREATE INDEX IF NOT EXISTS {name} {definition}")]


def drop_index(backend: Backend, live: bool, name: str, table: str) -> list[Op]:
    if isinstance(backend, MySQLBackend):
        return [sql(f"DROP INDEX IF EXISTS {name} ON {table}")]
    if isinstance(backend, PostgresBackend) and live:
        return [
            sql(
                f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
                pending=lambda db: _pg_index_state(db, name) is not None,
                transactional=False,
            )
        ]
    return [sql(f"DROP INDEX IF EXISTS {name}")]


def refuse_rows(table: str, bad: str, what: str) -> Op:
    """Stop the migration, naming the rows, when `table` holds rows matching `bad`:
    values ordercli cannot read back and will not guess at. Nothing is changed."""

    def check(db: peewee.Database) -> None:
        count, example = db.execute_sql(
            f"SELECT COUNT(*), MIN(id) FROM {table} WHERE {bad}"
        ).fetchone()
        if count:
            raise MigrationBlocked(
                f"{table} has {count} row(s) with {what} (e.g. id {example}), which ordercli "
                "cannot read back; fix or delete them, then run `ordercli migrate` again"
            )

    return Op(python=check, note=f"check: no {table} row with {what}")


# --- 1 --------------------------------------------------------------------------------------


def _initial_schema(backend: Backend, live: bool) -> list[Op]:
    d = backend.ddl

    def boolean(col: str, default: str) -> str:
        check = d["bool_check"].format(col=col)
        return f"{col} {d['bool']} NOT NULL DEFAULT {d[default]} {check}".rstrip()

    return [
        sql(f"""CREATE TABLE IF NOT EXISTS customer (
            id {d["pk"]},
            name VARCHAR(120) NOT NULL,
            email VARCHAR(254) NOT NULL UNIQUE,
            {boolean("is_active", "true")},
            created_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]}
        ){d["table_options"]}"""),
        sql(f"""CREATE TABLE IF NOT EXISTS orders (
            id {d["pk"]},
            customer_id {d["fk"]} NOT NULL,
            status VARCHAR(20) NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'paid', 'shipped', 'cancelled')),
            total_cents INTEGER NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
            {boolean("is_archived", "false")},
            created_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]},
            updated_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]},
            FOREIGN KEY (customer_id) REFERENCES customer (id) ON DELETE RESTRICT
        ){d["table_options"]}"""),
        sql(f"""CREATE TABLE IF NOT EXISTS order_item (
            id {d["pk"]},
            order_id {d["fk"]} NOT NULL,
            sku VARCHAR(64) NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity >= 1),
            unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
            FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE
        ){d["table_options"]}"""),
        # RESTRICT: the audit trail outlives nothing it describes, and is never lost silently.
        sql(f"""CREATE TABLE IF NOT EXISTS order_event (
            id {d["pk"]},
            order_id {d["fk"]} NOT NULL,
            from_status VARCHAR(20) NOT NULL,
            to_status VARCHAR(20) NOT NULL,
            reason TEXT,
            actor TEXT,
            created_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]},
            FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE RESTRICT
        ){d["table_options"]}"""),
        # list: newest first within a customer or a time window; summary: per customer.
        *create_index(
            backend, live, "orders_customer_id_idx", "ON orders (customer_id, created_at)"
        ),
        *create_index(backend, live, "orders_created_at_idx", "ON orders (created_at)"),
        *create_index(backend, live, "order_item_order_id_idx", "ON order_item (order_id)"),
        *create_index(backend, live, "order_event_order_id_idx", "ON order_event (order_id)"),
        *_citus_distribution(backend),
    ]


def _citus_distribution(backend: Backend) -> list[Op]:
    """On Citus only: the new tables distributed over the workers (see CitusBackend).

    One op, in one transaction (Citus DDL is transactional, two-phase committed), skipped
    once `orders` is distributed; later steps' DDL on these tables is propagated to every
    shard by Citus."""
    statements = backend.distribution_statements()
    if not statements:
        return []

    def pending(db: peewee.Database) -> bool:
        cursor = db.execute_sql(
            "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'orders'::regclass"
        )
        return cursor.fetchone() is None

    return [
        sql(
            # One connection per worker for the rest of the migration's transaction: Citus
            # refuses some DDL (CREATE EXTENSION, foreign keys to a reference table) after
            # a parallel, many-connection operation in the same transaction.
            "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'",
            *statements,
            pending=pending,
        )
    ]


# --- 2 --------------------------------------------------------------------------------------

SUMMARY_INDEX = "ON orders (customer_id, is_archived, status, total_cents, created_at)"
EMAIL_FTS_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS customer_email_fts_insert AFTER INSERT ON customer BEGIN "
    "INSERT INTO customer_email_fts (rowid, email) VALUES (new.id, new.email); END",
    "CREATE TRIGGER IF NOT EXISTS customer_email_fts_delete AFTER DELETE ON customer BEGIN "
    "INSERT INTO customer_email_fts (customer_email_fts, rowid, email) "
    "VALUES ('delete', old.id, old.email); END",
    "CREATE TRIGGER IF NOT EXISTS customer_email_fts_update AFTER UPDATE OF email ON customer "
    "BEGIN INSERT INTO customer_email_fts (customer_email_fts, rowid, email) "
    "VALUES ('delete', old.id, old.email); "
    "INSERT INTO customer_email_fts (rowid, email) VALUES (new.id, new.email); END",
)


def _search_and_summary_indexes(backend: Backend, live: bool) -> list[Op]:
    """Indexes that keep `summary` and `list --email` fast at millions of orders.

    - summary reads, per customer, only is_archived/status/total_cents/created_at: a
      covering index lets it scan the index and never the table (1M orders on SQLite:
      2.3 s -> 0.4 s). It also serves every lookup the old (customer_id, created_at)
      index served, so that one goes.
    - `--email` is a substring search: a trigram index (pg_trgm GIN on PostgreSQL, an
      FTS5 trigram table kept in sync by triggers on SQLite) finds the few matching
      customers without reading them all (rare needle, 1M orders on SQLite: 106 ms -> 1 ms).
    """
    ops = [
        *create_index(backend, live, "orders_customer_summary_idx", SUMMARY_INDEX),
        *drop_index(backend, live, "orders_customer_id_idx", "orders"),
    ]
    if isinstance(backend, PostgresBackend):
        ops += [
            sql("CREATE EXTENSION IF NOT EXISTS pg_trgm"),
            *create_index(
                backend,
                live,
                "customer_email_trgm_idx",
                "ON customer USING gin (lower(email) gin_trgm_ops)",
            ),
        ]
    elif isinstance(backend, SqliteBackend):
        ops += [
            sql(
                "CREATE VIRTUAL TABLE IF NOT EXISTS customer_email_fts USING fts5("
                "email, content='customer', content_rowid='id', tokenize='trigram')"
            ),
            sql(*EMAIL_FTS_TRIGGERS),
            sql("INSERT INTO customer_email_fts (customer_email_fts) VALUES ('rebuild')"),
        ]
    return ops


# --- 3 --------------------------------------------------------------------------------------

STATUSES = "('draft', 'paid', 'shipped', 'cancelled')"
TIMESTAMPS = {
    "customer": ("created_at",),
    "orders": ("created_at", "updated_at"),
    "order_event": ("created_at",),
}


def _refuse_what_cannot_be_read(backend: Backend, live: bool) -> list[Op]:
    """The database refuses what ordercli could not read back (CONTRACT, Schema).

    - SQLite: STRICT tables (integers are integers, text is text), timestamps CHECKed to
      the one text form that sorts correctly; rows other writers left in other forms are
      rewritten in it first (same instant), and rows that hold no readable value stop the
      migration with the row named.
    - PostgreSQL: `timestamptz` (existing values are UTC wall time, read as UTC), defaults
      `now()`, CHECKs keeping timestamps inside years 1-9999 (no 'infinity').
    - MySQL/MariaDB: status CHECKed byte for byte (the PAD SPACE collation let
      'shipped ' pass `IN`), no zero dates; padded statuses already stored are trimmed.
    """
    if isinstance(backend, SqliteBackend):
        return _sqlite_strict_tables()
    if isinstance(backend, PostgresBackend):
        return _postgres_timestamptz(backend, live)
    if isinstance(backend, MySQLBackend):
        return _mysql_exact_checks()
    raise NotImplementedError(backend.name)


# Indexes holding a timestamp column: ALTER ... TYPE timestamptz rebuilds them under
# its ACCESS EXCLUSIVE lock (timestamp -> timestamptz is not binary-coercible), which
# blocked the shop's inserts for 7.4 s at 1M orders. On a live database they are dropped
# CONCURRENTLY first and built again CONCURRENTLY after (reads are slower meanwhile).
TIMESTAMP_INDEXES = {
    "orders": (
        ("orders_created_at_idx", "ON orders (created_at)"),
        ("orders_customer_summary_idx", SUMMARY_INDEX),
    ),
}


def _index_before_timestamptz(table: str, columns: Sequence[str], name: str) -> Check:
    still_timestamp = _columns_not_timestamptz(table, columns)
    return lambda db: still_timestamp(db) and _pg_index_state(db, name) is not None


def _postgres_timestamptz(backend: Backend, live: bool) -> list[Op]:
    ops: list[Op] = []
    for table, columns in TIMESTAMPS.items():
        indexes = TIMESTAMP_INDEXES.get(table, ()) if live else ()
        for name, _ in indexes:
            ops.append(
                sql(
                    f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
                    pending=_index_before_timestamptz(table, columns, name),
                    transactional=False,
                )
            )
        # With the session in UTC, timestamp -> timestamptz reinterprets nothing and
        # rewrites nothing (PostgreSQL 12+): a catalog change under a brief lock.
        alter = ", ".join(
            f"ALTER COLUMN {c} TYPE timestamptz, ALTER COLUMN {c} SET DEFAULT now()"
            for c in columns
        )
        ops.append(
            sql(
                "SET LOCAL TimeZone = 'UTC'",
                "SET LOCAL lock_timeout = '2s'",
                f"ALTER TABLE {table} {alter}",
                pending=_columns_not_timestamptz(table, columns),
            )
        )
        for name, definition in indexes:
            ops += create_index(backend, live, name, definition)
        in_range = " AND ".join(
            f"{c} >= '0001-01-01 00:00:00+00' AND {c} < '10000-01-01 00:00:00+00'" for c in columns
        )
        name = f"{table}_timestamps_in_range"
        ops += [
            refuse_rows(
                table, f"NOT ({in_range})", "a timestamp that is infinity or outside years 1-9999"
            ),
            # NOT VALID takes the table lock only for a moment; VALIDATE then scans the
            # table under a lock that lets writes go on.
            sql(
                "SET LOCAL lock_timeout = '2s'",
                f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({in_range}) NOT VALID",
                pending=_pg_constraint_is(table, name, None),
            ),
            sql(
                f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}",
                pending=_pg_constraint_is(table, name, False),
            ),
        ]
    return ops


def _mysql_exact_checks() -> list[Op]:
    ops = [
        # PAD SPACE let 'shipped ' satisfy IN (...): such a row meant that status.
        sql(
            "UPDATE orders SET status = TRIM(TRAILING ' ' FROM status) "
            f"WHERE BINARY status NOT IN {STATUSES}"
        ),
        sql(
            "ALTER TABLE orders ADD CONSTRAINT orders_status_exact "
            f"CHECK (BINARY status IN {STATUSES})",
            pending=_mysql_constraint_missing("orders", "orders_status_exact"),
        ),
    ]
    for table, columns in TIMESTAMPS.items():
        valid = " AND ".join(
            f"{c} >= '0001-01-01' AND MONTH({c}) > 0 AND DAYOFMONTH({c}) > 0" for c in columns
        )
        name = f"{table}_timestamps_valid"
        ops += [
            refuse_rows(table, f"NOT ({valid})", "a zero date (0000-00-00 or a zero month or day)"),
            sql(
                f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({valid})",
                pending=_mysql_constraint_missing(table, name),
            ),
        ]
    return ops


_SQLITE_TIMESTAMP_GLOB = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"
)


def sqlite_timestamp_check(column: str) -> str:
    """True for text in the form `YYYY-MM-DD HH:MM:SS[.f{1,6}]` naming a real instant in
    years 1-9999: the one form that compares correctly as text."""
    c = column
    return (
        f"typeof({c}) = 'text' AND {c} >= '0001-01-01' "
        f"AND {c} GLOB '{_SQLITE_TIMESTAMP_GLOB}' "
        f"AND (length({c}) = 19 OR (length({c}) BETWEEN 21 AND 26 AND substr({c}, 20, 1) = '.' "
        f"AND substr({c}, 21) NOT GLOB '*[^0-9]*')) "
        f"AND datetime({c}) IS substr({c}, 1, 19)"
    )


def _ts(column: str) -> str:
    return (
        f"{column} TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP CHECK ({sqlite_timestamp_check(column)})"
    )


SQLITE_STRICT_TABLES = {
    "customer": f"""(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL UNIQUE,
        is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
        {_ts("created_at")}
    ) STRICT""",
    "orders": f"""(
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customer (id) ON DELETE RESTRICT,
        status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN {STATUSES}),
        total_cents INTEGER NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
        is_archived INTEGER NOT NULL DEFAULT 0 CHECK (is_archived IN (0, 1)),
        {_ts("created_at")},
        {_ts("updated_at")}
    ) STRICT""",
    "order_item": """(
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
        sku TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity >= 1),
        unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0)
    ) STRICT""",
    "order_event": f"""(
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders (id) ON DELETE RESTRICT,
        from_status TEXT NOT NULL,
        to_status TEXT NOT NULL,
        reason TEXT,
        actor TEXT,
        {_ts("created_at")}
    ) STRICT""",
}
SQLITE_COLUMNS = {
    "customer": ("id", "name", "email", "is_active", "created_at"),
    "orders": (
        "id",
        "customer_id",
        "status",
        "total_cents",
        "is_archived",
        "created_at",
        "updated_at",
    ),
    "order_item": ("id", "order_id", "sku", "quantity", "unit_price_cents"),
    "order_event": ("id", "order_id", "from_status", "to_status", "reason", "actor", "created_at"),
}
SQLITE_INTEGERS = {
    "customer": ("is_active",),
    "orders": ("customer_id", "total_cents", "is_archived"),
    "order_item": ("order_id", "quantity", "unit_price_cents"),
    "order_event": ("order_id",),
}
SQLITE_TEXTS = {
    "customer": ("name", "email"),
    "orders": ("status",),
    "order_item": ("sku",),
    "order_event": ("from_status", "to_status", "reason", "actor"),
}


def normalise_sqlite_timestamps(db: peewee.Database) -> None:
    """Rewrite timestamps other writers stored in another form (`2026-03-01T12:00:00`,
    `...+02:00`, `2026-03-01`, Unix epoch numbers) as the UTC text form, same instant.
    A value that names no instant stops the migration (nothing is changed)."""
    for table, columns in TIMESTAMPS.items():
        for column in columns:
            rows = db.execute_sql(
                f"SELECT id, {column} FROM {table} "
                f"WHERE NOT coalesce({sqlite_timestamp_check(column)}, 0)"
            ).fetchall()
            for row_id, value in rows:
                fixed = _sqlite_timestamp_text(value)
                if fixed is None:
                    raise MigrationBlocked(
                        f"{table}.{column} of id {row_id} holds {value!r}, which is no "
                        "timestamp ordercli can read; fix or delete that row, then run "
                        "`ordercli migrate` again"
                    )
                db.execute_sql(f"UPDATE {table} SET {column} = ? WHERE id = ?", (fixed, row_id))


def _sqlite_timestamp_text(value: Any) -> str | None:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.datetime.fromtimestamp(value, datetime.UTC)
        elif isinstance(value, str):
            moment = datetime.datetime.fromisoformat(value.strip())
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(datetime.UTC)
        except OverflowError:
            return None
    return str(moment.replace(tzinfo=None))


def refuse_sqlite_type_mismatches(db: peewee.Database) -> None:
    """Money, quantities, flags and keys must be integers, names and statuses text:
    `total_cents = 'abc'` or `12.5` (a table without STRICT kept them) is not guessed at."""
    for table in SQLITE_COLUMNS:
        for kind, columns in (("integer", SQLITE_INTEGERS[table]), ("text", SQLITE_TEXTS[table])):
            for column in columns:
                allowed = f"('{kind}', 'null')"
                row = db.execute_sql(
                    f"SELECT id, {column} FROM {table} WHERE typeof({column}) NOT IN {allowed} "
                    "LIMIT 1"
                ).fetchone()
                if row is not None:
                    raise MigrationBlocked(
                        f"{table}.{column} of id {row[0]} holds {row[1]!r}, not an {kind}; "
                        "fix or delete that row, then run `ordercli migrate` again"
                    )


def _sqlite_strict_tables() -> list[Op]:
    """The documented table rebuild (new table, copy, drop, rename), all four tables at
    once inside the migration's one transaction, with foreign keys off meanwhile."""
    ops = [
        Op(
            python=normalise_sqlite_timestamps,
            note="rewrite timestamps stored in other forms as UTC 'YYYY-MM-DD HH:MM:SS[.ffffff]'",
        ),
        Op(
            python=refuse_sqlite_type_mismatches,
            note="check: integer and text columns hold integers and text",
        ),
    ]
    for table, body in SQLITE_STRICT_TABLES.items():
        columns = ", ".join(SQLITE_COLUMNS[table])
        ops.append(
            sql(
                f"DROP TABLE IF EXISTS {table}_strict",
                f"CREATE TABLE {table}_strict {body}",
                f"INSERT INTO {table}_strict ({columns}) SELECT {columns} FROM {table}",
            )
        )
    ops.append(sql(*(f"DROP TABLE {t}" for t in reversed(SQLITE_STRICT_TABLES))))
    ops.append(sql(*(f"ALTER TABLE {t}_strict RENAME TO {t}" for t in SQLITE_STRICT_TABLES)))
    ops += [
        sql(f"CREATE INDEX orders_customer_summary_idx {SUMMARY_INDEX}"),
        sql("CREATE INDEX orders_created_at_idx ON orders (created_at)"),
        sql("CREATE INDEX order_item_order_id_idx ON order_item (order_id)"),
        sql("CREATE INDEX order_event_order_id_idx ON order_event (order_id)"),
        sql(*EMAIL_FTS_TRIGGERS),
    ]
    return ops


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial_schema", _initial_schema),
    Migration(2, "search_and_summary_indexes", _search_and_summary_indexes),
    Migration(3, "refuse_what_cannot_be_read", _refuse_what_cannot_be_read),
)

LATEST_VERSION = MIGRATIONS[-1].id


# --- running them ---------------------------------------------------------------------------


def _version_table(backend: Backend) -> str:
    return (
        "CREATE TABLE IF NOT EXISTS ordercli_migration ("
        "id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
        f"applied_at {backend.ddl['timestamp']} NOT NULL){backend.ddl['table_options']}"
    )


def _applied(db: peewee.Database) -> set[int]:
    return {row[0] for row in db.execute_sql("SELECT id FROM ordercli_migration").fetchall()}


def ensure_schema(db: peewee.Database, backend: Backend) -> None:
    """What every command does on opening the database: nothing when the schema is
    current (one probe); create it in an empty database; upgrade a SQLite file; refuse
    on a server, where only `ordercli migrate` changes an existing schema."""
    version = backend.read_schema_version(db)
    if version is not None and version >= LATEST_VERSION:
        return
    # Version 0: the version table exists and no step is recorded yet, i.e. the first
    # use of an empty database is under way in another process (MySQL commits each DDL)
    # or was interrupted: creating the schema is still a first use, not an upgrade.
    if version and not backend.upgrades_on_use:
        # Another process may be creating the schema of an empty database step by step
        # (MySQL commits each step): wait for its migration lock, then look again.
        with backend.migration_lock(db):
            version = backend.read_schema_version(db)
        if version is not None and version >= LATEST_VERSION:
            return
        raise PendingMigrations(
            f"the database schema is at version {version} and this ordercli needs version "
            f"{LATEST_VERSION}: run `ordercli migrate` to upgrade it"
        )
    migrate(db, backend, version)


_UNKNOWN = -1


def migrate(
    db: peewee.Database, backend: Backend, version: int | None = _UNKNOWN
) -> tuple[int, list[str]]:
    """Apply pending migrations; return the schema version and the names applied.

    When the schema is current this is one probe of the version table and nothing else."""
    if version == _UNKNOWN:
        version = backend.read_schema_version(db)
    if version is not None and version >= LATEST_VERSION:
        return version, []
    if isinstance(backend, SqliteBackend):
        applied_now = _migrate_sqlite(db, backend)
    elif isinstance(backend, PostgresBackend) and version is None:
        applied_now = _migrate_in_one_transaction(db, backend)
    else:
        applied_now = _migrate_step_by_step(db, backend)
    return backend.read_schema_version(db) or 0, applied_now


def _run_steps(
    db: peewee.Database, backend: Backend, live: bool, one_transaction: bool
) -> list[str]:
    db.execute_sql(_version_table(backend))
    applied = _applied(db)
    done: list[str] = []
    for step in MIGRATIONS:
        if step.id in applied:
            continue
        for op in step.ops(backend, live):
            if one_transaction:
                _execute(db, op)
            else:
                _run_alone(db, backend, op)
        p = db.param
        once = " ON CONFLICT DO NOTHING" if isinstance(backend, PostgresBackend) else ""
        with db.atomic():
            db.execute_sql(
                "INSERT INTO ordercli_migration (id, name, applied_at) "
                f"VALUES ({p}, {p}, {p}){once}",
                (step.id, step.name, utcnow()),
            )
        done.append(step.label)
    return done


def _execute(db: peewee.Database, op: Op) -> None:
    if op.pending is not None and not op.pending(db):
        return
    if op.python is not None:
        op.python(db)
    for statement in op.statements:
        db.execute_sql(statement)


def _run_alone(db: peewee.Database, backend: Backend, op: Op, attempts: int = 30) -> None:
    """One op in its own transaction (or none: CONCURRENTLY), retried when it gave up
    waiting for a table lock (`lock_timeout`: a long transaction of the shop's holds it;
    waiting longer would queue every write behind the migration)."""
    for attempt in range(1, attempts + 1):
        try:
            if op.transactional:
                with db.atomic():
                    _execute(db, op)
            else:
                _execute(db, op)
            return
        except peewee.DatabaseError as exc:
            if attempt == attempts or not backend.is_lock_timeout(exc):
                raise
            time.sleep(random.uniform(0.05, 0.5))


def _migrate_sqlite(db: peewee.Database, backend: Backend) -> list[str]:
    # Foreign keys off while tables are rebuilt (the pragma is a no-op in a transaction).
    conn = db.connection()
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with db.atomic("IMMEDIATE"):
            return _run_steps(db, backend, live=False, one_transaction=True)
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def _migrate_in_one_transaction(db: peewee.Database, backend: PostgresBackend) -> list[str]:
    with db.atomic():
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (backend.advisory_lock_key,))
        return _run_steps(db, backend, live=False, one_transaction=True)


def _migrate_step_by_step(db: peewee.Database, backend: Backend) -> list[str]:
    with _upgrade_lock(db, backend):
        return _run_steps(db, backend, live=True, one_transaction=False)


@contextlib.contextmanager
def _upgrade_lock(db: peewee.Database, backend: Backend) -> Iterator[None]:
    """Two upgrading migrates kept apart, where that costs the shop nothing.

    PostgreSQL has no such lock here: a session advisory lock does not survive
    PgBouncer's transaction pooling, and a transaction held open for the purpose makes
    every CREATE INDEX CONCURRENTLY wait for it to end. Every op is re-runnable and the
    version row is written with ON CONFLICT DO NOTHING, so two runs at once both end
    with the schema upgraded (the first use of an empty database is still serialised)."""
    if isinstance(backend, PostgresBackend):
        yield
        return
    with backend.migration_lock(db):
        yield


def pending_sql(db: peewee.Database, backend: Backend) -> list[str]:
    """The statements `migrate` would run now, as SQL text (Python data fixes as
    `--` comments). Reads the catalog; changes nothing."""
    version = backend.read_schema_version(db)
    live = version is not None and not isinstance(backend, SqliteBackend)
    applied = set() if version is None else _applied(db)
    lines: list[str] = []
    if version is None:
        lines.append(_version_table(backend) + ";")
    for step in MIGRATIONS:
        if step.id in applied:
            continue
        lines.append(f"-- {step.label}")
        for op in step.ops(backend, live):
            if live and op.pending is not None and version is not None and not op.pending(db):
                continue
            if op.python is not None:
                lines.append(f"-- {op.note}")
            lines += [" ".join(s.split()) + ";" for s in op.statements]
        lines.append(
            "INSERT INTO ordercli_migration (id, name, applied_at) "
            f"VALUES ({step.id}, '{step.name}', CURRENT_TIMESTAMP);"
        )
    return lines
