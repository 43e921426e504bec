"""Turning records into table, JSON or CSV on stdout. Nothing here touches the database.

JSON and CSV are written row by row as the records arrive, so `list --limit 0`
streams with flat memory; Rich is only used for the human table.
"""

from __future__ import annotations

import csv
import datetime
import enum
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

MONEY_SUFFIX = "_cents"
NUMERIC_FIELDS = frozenset(
    {
        "id",
        "customer_id",
        "orders",
        "paid_orders",
        "item_count",
        "quantity",
        "total_cents",
        "spent_cents",
        "unit_price_cents",
        "line_total_cents",
    }
)
# Wide enough that a piped table is never wrapped or cut.
PIPE_WIDTH = 100_000


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def stdout_console() -> Console:
    """A console for the data on stdout; colour and width follow the terminal and NO_COLOR."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PIPE_WIDTH, color_system=None)
    return console


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_value(item) for item in value]
    return value


def iso_utc(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.isoformat()


def csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return iso_utc(value)
    return value


def table_value(field: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if field.endswith(MONEY_SUFFIX) and isinstance(value, int):
        return f"{value / 100:,.2f}"
    return str(value)


def write_json_array(records: Iterable[dict[str, Any]], out: TextIO) -> None:
    out.write("[")
    separator = "\n  "
    for record in records:
        out.write(separator + json.dumps(json_value(record), ensure_ascii=False))
        separator = ",\n  "
    out.write("\n]\n" if separator != "\n  " else "]\n")


def write_csv(records: Iterable[dict[str, Any]], fields: Sequence[str], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    for record in records:
        writer.writerow([csv_value(record[field]) for field in fields])


def build_table(
    records: Iterable[dict[str, Any]], fields: Sequence[str], title: str | None = None
) -> Table:
    table = Table(title=title, title_justify="left")
    for field in fields:
        # Money is shown in units (12.34), so the header drops the _cents suffix.
        header = field.removesuffix(MONEY_SUFFIX)
        table.add_column(header, justify="right" if field in NUMERIC_FIELDS else "left")
    for record in records:
        table.add_row(*(table_value(field, record[field]) for field in fields))
    return table


def render_records(
    records: Iterable[dict[str, Any]],
    fields: Sequence[str],
    fmt: OutputFormat,
    title: str | None = None,
    empty_message: str = "No rows.",
) -> None:
    if fmt is OutputFormat.json:
        write_json_array(records, sys.stdout)
    elif fmt is OutputFormat.csv:
        write_csv(records, fields, sys.stdout)
    else:
        table = build_table(records, fields, title)
        if table.row_count:
            stdout_console().print(table)
        else:
            stderr_console().print(empty_message)
    sys.stdout.flush()


def render_order_detail(order: dict[str, Any], fields: Sequence[str], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        sys.stdout.write(json.dumps(json_value(order), indent=2, ensure_ascii=False) + "\n")
        return
    if fmt is OutputFormat.csv:
        write_csv([order], fields, sys.stdout)
        return
    console = stdout_console()
    customer = order["customer"]
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    for label, value in (
        ("order", order["id"]),
        ("status", order["status"]),
        ("total", table_value("total_cents", order["total_cents"])),
        ("archived", table_value("is_archived", order["is_archived"])),
        ("created", table_value("created_at", order["created_at"])),
        ("updated", table_value("updated_at", order["updated_at"])),
        ("customer", f"{customer['id']}  {customer['name']} <{customer['email']}>"),
    ):
        header.add_row(label, str(value))
    console.print(header)
    items = ("sku", "quantity", "unit_price_cents", "line_total_cents")
    console.print(build_table(order["items"], items, title="Items"))
    if order["events"]:
        events = ("created_at", "from_status", "to_status", "actor", "reason")
        console.print(build_table(order["events"], events, title="History"))
