"""Write-side operations on existing orders: status moves (pay, ship, cancel) and archive.

Each is one transaction: lock the requested rows, check every id, then one
conditional set-based UPDATE (plus the audit events). Any refusal raises before
anything is written, so several ids are all or nothing. Customers are never
touched, let alone deleted.
"""

from __future__ import annotations

import getpass
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

from peewee import Field

from ordercli.bulk import BulkInsert
from ordercli.db import Connection
from ordercli.domain import TRANSITIONS
from ordercli.errors import NotFound, Refused
from ordercli.models import Order, OrderEvent, Status
from ordercli.timeutil import utcnow

T = TypeVar("T")


class StatusChange(NamedTuple):
    """What `pay`, `ship` and `cancel` report per order (the contract's JSON fields)."""

    id: int
    previous_status: str
    status: str
    changed: bool


CancelResult = StatusChange  # the name before pay and ship existed


class ArchiveResult(NamedTuple):
    id: int
    is_archived: bool
    changed: bool


EVENT_FIELDS: list[Field] = [
    OrderEvent.order,
    OrderEvent.from_status,
    OrderEvent.to_status,
    OrderEvent.reason,
    OrderEvent.actor,
    OrderEvent.created_at,
]


def current_actor() -> str | None:
    """Who is running the command, for the audit trail."""
    actor = os.environ.get("ORDERCLI_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items. (Peewee's `chunked` pads every group
    to `size` and pops the padding: ~40 ms per call at SQLite's 32,750, even for 1 id.)"""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _ids_per_statement(conn: Connection) -> int:
    """How many ids one `id IN (...)` statement may carry, leaving room for its other
    parameters."""
    return conn.max_bind_params() - 16


def _id_chunks(conn: Connection, ids: Sequence[int]) -> Iterable[Sequence[int]]:
    return _batches(ids, _ids_per_statement(conn))


def _locked_rows(
    conn: Connection, ids: Sequence[int], *fields: Any, lock: bool = True
) -> dict[int, tuple[Any, ...]]:
    """Lock the orders and read them, in the backend's lock order (ids in order; on Citus
    shard by shard), the same for every caller so concurrent ones cannot deadlock; without
    `lock` (a dry run, in a read-only transaction) just read them."""
    found: dict[int, tuple[Any, ...]] = {}
    for chunk in conn.lock_groups(ids, _ids_per_statement(conn)):
        query = Order.select(Order.id, *fields).where(Order.id.in_(chunk)).order_by(Order.id)
        for row in conn.execute((conn.lock_rows(query) if lock else query).tuples()):
            found[row[0]] = row[1:]
    missing = [i for i in ids if i not in found]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise NotFound(f"no order with id{plural} {_id_list(missing)}; nothing was changed")
    return found


def _rows_per_statement(conn: Connection, columns: int, *texts: str | None) -> int:
    """Rows per multi-row INSERT: within the bind-parameter limit and, where the server
    limits a statement's size (MySQL's max_allowed_packet), within half of that too
    (a 9 KB --reason on 2,000 events is 18 MB)."""
    by_params = conn.max_bind_params() // columns
    limit = conn.max_statement_bytes()
    if limit is None:
        return by_params
    row_bytes = 200 + sum(len(t.encode("utf-8")) * 2 for t in texts if t)  # escaped, worst case
    return max(1, min(by_params, limit // 2 // row_bytes))


def _id_list(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


# How each target status reads in a refusal ("cannot be paid").
_VERB = {Status.PAID: "paid", Status.SHIPPED: "shipped", Status.CANCELLED: "cancelled"}
# What a refused status means, when it says more than its name.
_WHY: dict[str, str] = {Status.DRAFT: "draft (not paid yet)"}
_FINAL = (Status.SHIPPED, Status.CANCELLED)  # "already shipped", "already cancelled"


def _refusal(refused: dict[str, list[int]], target: Status) -> str:
    """One line naming every refused order and its status, e.g. "order 7 is already
    shipped and cannot be cancelled; nothing was changed"."""
    parts = []
    for status, ids in refused.items():
        several = len(ids) > 1
        shown = _WHY.get(status, status)  # a StrEnum key matches its plain value
        already = "already " if status in _FINAL else ""
        verb = "are" if several else "is"
        parts.append(f"order{'s' if several else ''} {_id_list(ids)} {verb} {already}{shown}")
    return f"{' and '.join(parts)} and cannot be {_VERB[target]}; nothing was changed"


def change_status(
    conn: Connection,
    order_ids: Sequence[int],
    target: Status,
    reason: str | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> list[StatusChange]:
    """Move orders to `target` by the rule table (domain.TRANSITIONS): the one code path
    behind `pay`, `ship` and `cancel`.

    One transaction: lock the orders (in id order) and read their statuses, refuse if any
    is unknown or may not move to `target` (nothing written), then one conditional UPDATE
    and one multi-row INSERT of the events per batch of ids under the backend's parameter
    limit. Orders already in `target` are reported unchanged, without an event."""
    allowed = TRANSITIONS[target]
    ids = list(dict.fromkeys(order_ids))

    def attempt() -> tuple[dict[int, str], list[int]]:
        found = _locked_rows(conn, ids, Order.status, lock=not dry_run)
        previous = {order_id: row[0] for order_id, row in found.items()}
        refused: dict[str, list[int]] = {}
        for i in ids:
            if previous[i] != target and previous[i] not in allowed:
                refused.setdefault(previous[i], []).append(i)
        if refused:
            raise Refused(_refusal(refused, target))
        to_change = [i for i in ids if previous[i] in allowed]
        if to_change and not dry_run:
            now = utcnow()
            sources = [s.value for s in allowed]
            for chunk in _id_chunks(conn, to_change):
                changed = conn.execute(
                    Order.update(status=target.value, updated_at=now).where(
                        Order.id.in_(chunk), Order.status.in_(sources)
                    )
                )
                if changed != len(chunk):  # the rows are locked: this cannot race
                    raise RuntimeError(f"updated {changed} of {len(chunk)} locked orders")
            # One multi-row INSERT per batch; its text is Peewee's one-row statement
            # widened (bulk.py): compiling 1,000 rows through insert_many took longer
            # than the database's whole transaction.
            insert = BulkInsert(conn, OrderEvent, EVENT_FIELDS)
            per_statement = _rows_per_statement(conn, len(EVENT_FIELDS), reason, actor)
            events = [(i, previous[i], target.value, reason, actor, now) for i in to_change]
            for batch in _batches(events, per_statement):
                params = list(itertools.chain.from_iterable(batch))
                conn.execute_repeated(insert.sql(len(batch)), params).close()
        return previous, to_change

    previous, to_change = conn.retrying(attempt, read_only=dry_run)
    changed_ids = set(to_change)
    return [StatusChange(i, previous[i], target.value, i in changed_ids) for i in ids]


def pay_orders(
    conn: Connection,
    order_ids: Sequence[int],
    reason: str | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> list[StatusChange]:
    """Mark draft orders paid; already-paid ones are reported unchanged."""
    return change_status(conn, order_ids, Status.PAID, reason, actor, dry_run)


def ship_orders(
    conn: Connection,
    order_ids: Sequence[int],
    reason: str | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> list[StatusChange]:
    """Mark paid orders shipped; already-shipped ones are reported unchanged."""
    return change_status(conn, order_ids, Status.SHIPPED, reason, actor, dry_run)


def cancel_orders(
    conn: Connection,
    order_ids: Sequence[int],
    reason: str | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> list[StatusChange]:
    """Cancel draft or paid orders; already-cancelled ones are reported unchanged."""
    return change_status(conn, order_ids, Status.CANCELLED, reason, actor, dry_run)


def archive_orders(
    conn: Connection, order_ids: Sequence[int], undo: bool = False, dry_run: bool = False
) -> list[ArchiveResult]:
    """Hide orders from list and summary (or show them again with `undo`)."""
    ids = list(dict.fromkeys(order_ids))
    target = not undo

    def attempt() -> list[int]:
        found = _locked_rows(conn, ids, Order.is_archived, lock=not dry_run)
        to_change = [i for i in ids if bool(found[i][0]) != target]
        if dry_run:
            return to_change
        now = utcnow()
        for chunk in _id_chunks(conn, to_change):
            conn.execute(
                Order.update(is_archived=target, updated_at=now).where(
                    Order.id.in_(chunk), Order.is_archived != target
                )
            )
        return to_change

    to_change = conn.retrying(attempt, read_only=dry_run)
    changed_ids = set(to_change)
    return [ArchiveResult(i, target, i in changed_ids) for i in ids]
