"""Versioned schema migrations: ordered, named, never edited once released.

Each step is a list of DDL statements written against table names (not today's
models), with dialect fragments from the backend filled in. Applied steps are
recorded in `ordercli_migration`; the version is the highest applied id. Two
processes migrating a fresh database at once are serialised by the backend's
migration lock, and the loser re-reads the version inside the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import peewee

from ordercli.backends import Backend
from ordercli.models import utcnow

Statements = Callable[[Backend], list[str]]


@dataclass(frozen=True)
class Migration:
    id: int
    name: str
    statements: Statements


def _initial_schema(backend: Backend) -> list[str]:
    d = backend.ddl

    def boolean(col: str, default: str) -> str:
        check = d["bool_check"].format(col=col)
        return f"{col} {d['bool']} NOT NULL DEFAULT {d[default]} {check}".rstrip()

    return [
        f"""CREATE TABLE customer (
            id {d["pk"]},
            name VARCHAR(120) NOT NULL,
            email VARCHAR(254) NOT NULL UNIQUE,
            {boolean("is_active", "true")},
            created_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]}
        )""",
        f"""CREATE TABLE orders (
            id {d["pk"]},
            customer_id {d["fk"]} NOT NULL REFERENCES customer (id) ON DELETE RESTRICT,
            status VARCHAR(20) NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'paid', 'shipped', 'cancelled')),
            total_cents INTEGER NOT NULL DEFAULT 0 CHECK (total_cents >= 0),
            {boolean("is_archived", "false")},
            created_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]},
            updated_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]}
        )""",
        f"""CREATE TABLE order_item (
            id {d["pk"]},
            order_id {d["fk"]} NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
            sku VARCHAR(64) NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity >= 1),
            unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0)
        )""",
        # RESTRICT: the audit trail outlives nothing it describes, and is never lost silently.
        f"""CREATE TABLE order_event (
            id {d["pk"]},
            order_id {d["fk"]} NOT NULL REFERENCES orders (id) ON DELETE RESTRICT,
            from_status VARCHAR(20) NOT NULL,
            to_status VARCHAR(20) NOT NULL,
            reason TEXT,
            actor TEXT,
            created_at {d["timestamp"]} NOT NULL DEFAULT {d["now"]}
        )""",
        # list: newest first within a customer or a time window; summary: per customer.
        "CREATE INDEX orders_customer_id_idx ON orders (customer_id, created_at)",
        "CREATE INDEX orders_created_at_idx ON orders (created_at)",
        "CREATE INDEX order_item_order_id_idx ON order_item (order_id)",
        "CREATE INDEX order_event_order_id_idx ON order_event (order_id)",
    ]


MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial_schema", _initial_schema),)

LATEST_VERSION = MIGRATIONS[-1].id


def _create_version_table(db: peewee.Database, backend: Backend) -> None:
    ts = backend.ddl["timestamp"]
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS ordercli_migration ("
        "id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, "
        f"applied_at {ts} NOT NULL)"
    )


def migrate(db: peewee.Database, backend: Backend) -> tuple[int, list[str]]:
    """Apply pending migrations; return the schema version and the names applied.

    When the schema is current this is one probe of the version table and nothing else."""
    applied_now: list[str] = []
    if backend.read_schema_version(db) == LATEST_VERSION:
        return LATEST_VERSION, applied_now
    with backend.migration_lock(db):
        _create_version_table(db, backend)
        cursor = db.execute_sql("SELECT id FROM ordercli_migration")
        applied = {row[0] for row in cursor.fetchall()}
        for step in MIGRATIONS:
            if step.id in applied:
                continue
            for statement in step.statements(backend):
                db.execute_sql(statement)
            p = db.param
            db.execute_sql(
                f"INSERT INTO ordercli_migration (id, name, applied_at) VALUES ({p}, {p}, {p})",
                (step.id, step.name, utcnow()),
            )
            applied_now.append(f"{step.id:04d}_{step.name}")
    version = backend.read_schema_version(db)
    return (version or 0), applied_now
