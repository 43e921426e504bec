"""Helpers shared by the tests: running the CLI, arranging rows, checking invariants."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ordercli.db import Connection, connect, database
from ordercli.models import Customer, Order, OrderItem
from ordercli.timeutil import utcnow
from ordercli.urls import DatabaseUrl


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def sql(self) -> list[str]:
        """The statements --echo-sql printed."""
        return [line[5:] for line in self.stderr.splitlines() if line.startswith("SQL: ")]

    @property
    def selects(self) -> list[str]:
        return [s for s in self.sql if s.lstrip().upper().startswith("SELECT")]


def run_script(
    args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would."""
    script = Path(sys.executable).with_name("ordercli")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ordercli"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERCLI_")}
    full_env.update({"ORDERCLI_ACTOR": "pytest", **(env or {})})
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=180,
        check=False,
    )


def describe(result: Run | subprocess.CompletedProcess[str]) -> str:
    """What to show when an exit-code assertion fails."""
    return f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def pg_connect(url: str, **kwargs: Any) -> Any:
    """A raw psycopg connection to a PostgreSQL test URL, direct or through PgBouncer.

    The URL is read the way ordercli reads it (DatabaseUrl): its query parameters become
    keywords, so `?prepare_threshold=none` (which libpq's conninfo would reject) reaches
    psycopg as None — no server-side prepared statements behind PgBouncer."""
    import psycopg

    parsed = DatabaseUrl.parse(url)
    return psycopg.connect(dbname=parsed.database, **{**parsed.connect_params, **kwargs})


@contextlib.contextmanager
def opened(url: str) -> Iterator[Connection]:
    """Open the database in-process to arrange or inspect rows through the models."""
    with connect(url) as conn:
        yield conn


def add_customer(email: str, name: str = "Test Customer", is_active: bool = True) -> int:
    return int(Customer.insert(name=name, email=email, is_active=is_active).execute())


def add_order(
    customer_id: int,
    status: str = "paid",
    items: Sequence[tuple[str, int, int]] = (("SKU-1", 1, 1000),),
    created_at: datetime.datetime | None = None,
    is_archived: bool = False,
) -> int:
    """An order with its items and the matching total."""
    when = created_at or utcnow()
    with database.atomic():
        order_id = int(
            Order.insert(
                customer=customer_id,
                status=status,
                total_cents=sum(q * p for _, q, p in items),
                is_archived=is_archived,
                created_at=when,
                updated_at=when,
            ).execute()
        )
        OrderItem.insert_many(
            [(order_id, sku, q, p) for sku, q, p in items],
            fields=[OrderItem.order, OrderItem.sku, OrderItem.quantity, OrderItem.unit_price_cents],
        ).execute()
    return order_id


def invariant_violations() -> dict[str, int]:
    """Counts of rows breaking the contract's invariants (all must be 0)."""
    checks = {
        "orders_without_items": (
            "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS "
            "(SELECT 1 FROM order_item i WHERE i.order_id = o.id)"
        ),
        "wrong_totals": (
            "SELECT COUNT(*) FROM orders o WHERE o.total_cents <> COALESCE("
            "(SELECT SUM(i.quantity * i.unit_price_cents) FROM order_item i "
            "WHERE i.order_id = o.id), 0)"
        ),
        "orphan_items": (
            "SELECT COUNT(*) FROM order_item i WHERE NOT EXISTS "
            "(SELECT 1 FROM orders o WHERE o.id = i.order_id)"
        ),
    }
    return {name: int(database.execute_sql(sql).fetchone()[0]) for name, sql in checks.items()}


def scalar(sql: str, params: Sequence[Any] = ()) -> Any:
    return database.execute_sql(sql, params).fetchone()[0]


def is_citus(url: str) -> bool:
    """Whether the test database is a Citus one (the `citus` backend of the suite)."""
    if not url.startswith(("postgresql://", "postgres://")):
        return False
    with pg_connect(url, connect_timeout=5) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone()
            is not None
        )


SCRIPT = Path(sys.executable).with_name("ordercli")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ordercli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def on_terminal(args: list[str], columns: int, rows: int = 60) -> tuple[int, str, str]:
    """Run the installed script with stdout on a pseudo-terminal `columns` wide.

    Returns the exit code, what the terminal received (colour codes removed, `\\r\\n` as
    `\\n`) and stderr. The terminal is read while the program runs, so long output
    cannot block it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ORDERCLI_") and k not in ("COLUMNS", "LINES", "NO_COLOR")
    }
    env.update({"TERM": "xterm-256color", "ORDERCLI_ACTOR": "pytest", "FORCE_COLOR": ""})
    env.pop("FORCE_COLOR")
    proc = subprocess.Popen(
        [*COMMAND, *args], stdout=follower, stderr=subprocess.PIPE, env=env, close_fds=True
    )
    os.close(follower)
    raw = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program has exited and closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(leader)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    code = proc.wait(timeout=120)
    text = ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r\n", "\n")
    return code, text, stderr
