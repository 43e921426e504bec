"""Write-side operations on existing orders: cancel and archive.

Each is one transaction: lock the requested rows, check every id, then one
conditional set-based UPDATE (plus the audit events). Any refusal raises before
anything is written, so several ids are all or nothing. Customers are never
touched, let alone deleted.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from peewee import Field, chunked

from ordercli.db import backend, database, lock_rows, retrying
from ordercli.errors import NotFound, Refused
from ordercli.models import CANCELLABLE, Order, OrderEvent, Status, utcnow


class CancelResult(NamedTuple):
    id: int
    previous_status: str
    status: str
    changed: bool


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


def _id_chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    # Leave room for the statement's other parameters.
    return chunked(ids, backend().max_bind_params(database.obj) - 16)


def _locked_rows(ids: Sequence[int], *fields: Any) -> dict[int, tuple[Any, ...]]:
    """Lock the orders (in id order, so concurrent callers cannot deadlock) and read them."""
    found: dict[int, tuple[Any, ...]] = {}
    for chunk in _id_chunks(sorted(ids)):
        query = Order.select(Order.id, *fields).where(Order.id.in_(chunk)).order_by(Order.id)
        for row in lock_rows(query).tuples():
            found[row[0]] = row[1:]
    missing = [i for i in ids if i not in found]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise NotFound(f"no order with id{plural} {_id_list(missing)}; nothing was changed")
    return found


def _id_list(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def cancel_orders(
    order_ids: Sequence[int],
    reason: str | None = None,
    actor: str | None = None,
    dry_run: bool = False,
) -> list[CancelResult]:
    """Cancel draft or paid orders; already-cancelled ones are reported unchanged."""
    ids = list(dict.fromkeys(order_ids))

    def attempt() -> tuple[dict[int, str], list[int]]:
        found = _locked_rows(ids, Order.status)
        previous = {order_id: row[0] for order_id, row in found.items()}
        shipped = [i for i in ids if previous[i] == Status.SHIPPED]
        if shipped:
            plural = "s" if len(shipped) > 1 else ""
            raise Refused(
                f"order{plural} {_id_list(shipped)} already shipped and cannot be cancelled; "
                "nothing was changed"
            )
        to_cancel = [i for i in ids if previous[i] in CANCELLABLE]
        if to_cancel and not dry_run:
            now = utcnow()
            cancellable = [s.value for s in CANCELLABLE]
            for chunk in _id_chunks(to_cancel):
                changed = (
                    Order.update(status=Status.CANCELLED.value, updated_at=now)
                    .where(Order.id.in_(chunk), Order.status.in_(cancellable))
                    .execute()
                )
                if changed != len(chunk):  # the rows are locked: this cannot race
                    raise RuntimeError(f"cancel updated {changed} of {len(chunk)} locked orders")
            events = [
                (i, previous[i], Status.CANCELLED.value, reason, actor, now) for i in to_cancel
            ]
            per_statement = backend().max_bind_params(database.obj) // len(EVENT_FIELDS)
            for batch in chunked(events, per_statement):
                OrderEvent.insert_many(batch, fields=EVENT_FIELDS).as_rowcount().execute()
        return previous, to_cancel

    previous, to_cancel = retrying(attempt)
    changed_ids = set(to_cancel)
    return [CancelResult(i, previous[i], Status.CANCELLED.value, i in changed_ids) for i in ids]


def archive_orders(order_ids: Sequence[int], undo: bool = False) -> list[ArchiveResult]:
    """Hide orders from list and summary (or show them again with `undo`)."""
    ids = list(dict.fromkeys(order_ids))
    target = not undo

    def attempt() -> list[int]:
        found = _locked_rows(ids, Order.is_archived)
        to_change = [i for i in ids if bool(found[i][0]) != target]
        now = utcnow()
        for chunk in _id_chunks(to_change):
            (
                Order.update(is_archived=target, updated_at=now)
                .where(Order.id.in_(chunk), Order.is_archived != target)
                .execute()
            )
        return to_change

    to_change = retrying(attempt)
    changed_ids = set(to_change)
    return [ArchiveResult(i, target, i in changed_ids) for i in ids]
