"""Turning records into table, JSON or CSV on stdout. Nothing here touches the database.

JSON and CSV are written row by row as the records arrive, so `list --limit 0`
streams with flat memory; Rich is only used for the human table.
"""

from __future__ import annotations

import csv
import datetime
import enum
import itertools
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

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


def json_default(value: Any) -> Any:
    """What json.dumps cannot write itself (it calls this only for such values)."""
    if isinstance(value, datetime.datetime):
        return iso_utc(value)
    if isinstance(value, datetime.date):
        return value.isoformat()  # a period's first day: YYYY-MM-DD
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


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
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def table_value(field: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if field.endswith(MONEY_SUFFIX) and isinstance(value, int):
        return f"{value / 100:,.2f}"
    return str(value)


def write_json_array(rows: Iterable[Sequence[Any]], fields: Sequence[str], out: TextIO) -> None:
    encode = json.JSONEncoder(ensure_ascii=False, default=json_default).encode
    out.write("[")
    separator = "\n  "
    for row in rows:
        out.write(separator + encode(dict(zip(fields, row, strict=True))))
        separator = ",\n  "
    out.write("\n]\n" if separator != "\n  " else "]\n")


PLAIN_TYPES = frozenset({int, str, float})


def write_csv(rows: Iterable[Sequence[Any]], fields: Sequence[str], out: TextIO) -> None:
    """CSV with a header; booleans as true/false, timestamps ISO 8601, NULL as empty.

    Export speed is bounded by this loop, so only the columns that need it are converted
    — those whose first value is not a plain int or str; a column's type does not change
    from row to row, and NULLs anywhere are written as empty cells by the csv module."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields)
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    special = [i for i, value in enumerate(first) if value.__class__ not in PLAIN_TYPES]
    for row in itertools.chain((first,), rows):
        if special:
            cells = list(row)
            for i in special:
                cells[i] = csv_value(cells[i])
            writer.writerow(cells)
        else:
            writer.writerow(row)


def build_table(
    rows: Iterable[Sequence[Any]], fields: Sequence[str], title: str | None = None
) -> Table:
    table = Table(title=title, title_justify="left")
    for field in fields:
        # Money is shown in units (12.34), so the header drops the _cents suffix.
        header = field.removesuffix(MONEY_SUFFIX)
        table.add_column(header, justify="right" if field in NUMERIC_FIELDS else "left")
    for row in rows:
        table.add_row(
            *(table_value(field, value) for field, value in zip(fields, row, strict=True))
        )
    return table


def render_records(
    records: Iterable[Sequence[Any]],
    fields: Sequence[str],
    fmt: OutputFormat,
    title: str | None = None,
    empty_message: str = "No rows.",
) -> None:
    """Rows (sequences in `fields` order, e.g. named tuples) as a table, JSON or CSV."""
    if fmt is OutputFormat.json:
        write_json_array(records, fields, sys.stdout)
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
        text = json.dumps(order, indent=2, ensure_ascii=False, default=json_default)
        sys.stdout.write(text + "\n")
        return
    if fmt is OutputFormat.csv:
        write_csv([[order[field] for field in fields]], fields, sys.stdout)
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
    console.print(build_table(_columns(order["items"], items), items, title="Items"))
    if order["events"]:
        events = ("created_at", "from_status", "to_status", "actor", "reason")
        console.print(build_table(_columns(order["events"], events), events, title="History"))


def _columns(records: Iterable[dict[str, Any]], fields: Sequence[str]) -> list[list[Any]]:
    return [[record[field] for field in fields] for record in records]


# --- revenue: the rows, and on a table a bar per period --------------------------------------

BAR_EIGHTHS = " ▏▎▍▌▋▊▉"
PIPED_BAR_WIDTH = 40  # piped tables are never cut, so the bar needs a width of its own
MIN_BAR_WIDTH = 8


def revenue_bar(value: int, largest: int, width: int) -> str:
    """A horizontal bar `width` cells long at `largest`, in eighths of a cell."""
    if largest <= 0 or value <= 0:
        return ""
    eighths = max(1, round(value * width * 8 / largest))
    full, part = divmod(eighths, 8)
    return "█" * full + (BAR_EIGHTHS[part] if part else "")


def render_revenue(
    records: Sequence[Sequence[Any]], fields: Sequence[str], fmt: OutputFormat
) -> None:
    """Periods as a table with a bar per period proportional to its revenue (the bar
    takes the width the numbers leave, so the table fits the terminal); json and csv
    carry the rows only."""
    if fmt is not OutputFormat.table or not records:
        render_records(records, fields, fmt, empty_message="No paid or shipped orders.")
        return
    console = stdout_console()
    cells = [[table_value(f, v) for f, v in zip(fields, row, strict=True)] for row in records]
    headers = [f.removesuffix(MONEY_SUFFIX) for f in fields]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    # Each column has one cell of padding either side and the box one border per column
    # plus one: the bar column gets the rest of the terminal.
    used = sum(widths) + 3 * (len(fields) + 1) + 1
    width = console.width - used if console.is_terminal else PIPED_BAR_WIDTH
    width = max(width, MIN_BAR_WIDTH)
    table = Table(title=None)
    for field, header in zip(fields, headers, strict=True):
        numeric = field in NUMERIC_FIELDS or field in ("revenue_cents", "customers")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    table.add_column("", no_wrap=True, min_width=width, max_width=width)
    revenue_index = list(fields).index("revenue_cents")
    largest = max(int(row[revenue_index]) for row in records)
    for row, row_cells in zip(records, cells, strict=True):
        bar = revenue_bar(int(row[revenue_index]), largest, width)
        table.add_row(*(Text(c) for c in row_cells), Text(bar, style="green"))
    console.print(table)
    sys.stdout.flush()
