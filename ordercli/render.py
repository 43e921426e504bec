"""Turning records into table, JSON or CSV on stdout. Nothing here touches the database.

JSON and CSV are written row by row as the records arrive, so `list --limit 0`
streams with flat memory, and they carry stored values exactly as they are. Rich is
imported only for the human table (a json/csv command never loads it).

Tables that fit: the one layout rule (`fit_columns`), for every command.
Like `kubectl get` or `gh pr list`: no borders, two spaces between columns, readable
headers (`items`, `archived`, `last order`), each record on one line. When the table
is wider than the terminal, the less important parts give way, one step at a time and
in this order, until it fits:
  1. the time of day of timestamps (dates stay: `2026-01-31`);
  2. whole columns, least important first (`GIVE_WAY`: paid orders, item count, customer
     id, name, order count, other timestamps, ...), never a value cut short; the
     command's key columns (`keep`: in `list` the email, date, id, status and money; in
     `summary` the email and the money) stay, and on 80 columns that is enough;
  3. on narrower terminals, key columns too, from the least important (list: money,
     then status, then id), never the first two (the email and the date stay whole);
  4. only if those alone are wider than the terminal, free text folds onto further
     lines inside its cell (nothing is ever cut with an ellipsis).
Wider terminals therefore show more; a table on a pipe (not a terminal) is never cut,
whatever COLUMNS or FORCE_COLOR say, and has no colour unless FORCE_COLOR asks.

Stored values are data, never markup: every cell is a `rich.text.Text`, and control
characters (escape sequences, bell, carriage return, bidi overrides, other C0/C1,
lone surrogates) are shown as visible escapes such as `\\x1b` or `\\u202e`.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import enum
import itertools
import json
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
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
        "customers",
        "total_cents",
        "spent_cents",
        "unit_price_cents",
        "line_total_cents",
        "revenue_cents",
    }
)
# Readable column headers; any other field is shown as its name, `_cents` dropped.
HEADERS = {
    "customer_id": "customer",
    "item_count": "items",
    "is_archived": "archived",
    "is_active": "active",
    "paid_orders": "paid",
    "created_at": "created",
    "updated_at": "updated",
    "last_order_at": "last order",
    "previous_status": "previous",
    "from_status": "from",
    "to_status": "to",
    "unit_price_cents": "unit price",
    "line_total_cents": "line total",
}
# Which columns give way first when a table is too wide (lower goes first). A column
# named in a command's `keep` never goes; unlisted columns go last.
GIVE_WAY = {
    "paid_orders": 20,
    "item_count": 30,
    "customer_id": 40,
    "name": 50,
    "orders": 60,
    "is_active": 65,
    "created_at": 45,  # where it is not a key column: a customer's sign-up date
    "updated_at": 70,
    "last_order_at": 72,
    "customers": 75,
    "is_archived": 90,
}
UNLISTED_GIVE_WAY = 80
TIME_OF_DAY_GIVE_WAY = 10
# Below 80 columns even key columns may have to go: the least important first (the end
# of a command's `keep`), never its first KEEP_ALWAYS (list: email and date).
KEPT_GIVE_WAY = 100
KEEP_ALWAYS = 2
# Free text that may fold inside its cell when even the key columns are too wide.
FOLDABLE = frozenset({"reason", "name", "actor", "sku", "email"})
GAP = 2  # spaces between columns
MIN_FOLDED_WIDTH = 12
# Wide enough that a piped table is never wrapped or cut.
PIPE_WIDTH = 100_000

# C0 and C1 controls, DEL, bidi embeddings/overrides/isolates and marks, line and
# paragraph separators, and lone surrogates (undecodable bytes): shown escaped.
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class OutputFormat(enum.StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def _stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def stdout_console() -> Console:
    """A console for the data on stdout; colour and width follow the terminal and NO_COLOR.

    Only a real terminal sets the width: a pipe gets tables whole, even with
    FORCE_COLOR (which may still ask for colour, e.g. for `less -R`)."""
    from rich.console import Console

    if _stdout_is_terminal():
        return Console(highlight=False)
    return Console(highlight=False, width=PIPE_WIDTH)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


# --- values ----------------------------------------------------------------------------------


def visible(text: str) -> str:
    """`text` with every control or direction-changing character shown as an escape."""
    return _INVISIBLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def json_default(value: Any) -> Any:
    """What json.dumps cannot write itself (it calls this only for such values)."""
    if isinstance(value, datetime.datetime):
        return iso_utc(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)  # Decimal, UUID, ...: as the database gave it, never a crash


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
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return value


def money(cents: int) -> str:
    """Integer cents as units with thousands separators (exact: no float)."""
    units, rest = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{units:,}.{rest:02d}"


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(datetime.UTC)
    except (OverflowError, ValueError):
        return value


def table_value(field: str, value: Any, time_of_day: bool = True) -> str:
    """A value as a table shows it (before control characters are made visible)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        moment = _utc(value)
        return moment.strftime("%Y-%m-%d %H:%M:%SZ" if time_of_day else "%Y-%m-%d")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if field.endswith(MONEY_SUFFIX) and isinstance(value, int):
        return money(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def header(field: str) -> str:
    return HEADERS.get(field, field.removesuffix(MONEY_SUFFIX).replace("_", " "))


# --- the layout rule -------------------------------------------------------------------------


@dataclass
class Column:
    """One column as the rule sees it: its cells in both forms, and how it may give way."""

    name: str
    header: str
    full: list[str]
    dated: list[str] | None  # the cells without the time of day (timestamp columns)
    kept: bool
    last_resort: int | None = None  # for a kept column: its rank if it must give way
    shown: bool = True
    time_of_day: bool = True
    cells: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.cells = self.full

    def width(self) -> int:
        from rich.cells import cell_len

        return max([cell_len(self.header), *(cell_len(c) for c in self.cells)])


def _table_width(columns: Sequence[Column]) -> int:
    shown = [c for c in columns if c.shown]
    return sum(c.width() for c in shown) + GAP * max(len(shown) - 1, 0)


def fit_columns(columns: Sequence[Column], width: int) -> bool:
    """Apply the give-way steps (module docstring) until the table fits `width`.

    Changes `columns` in place; returns whether the table now fits."""
    steps: list[tuple[int, int, Column, str]] = []
    for index, column in enumerate(columns):
        if column.dated is not None:
            steps.append((TIME_OF_DAY_GIVE_WAY, -index, column, "time"))
        if not column.kept:
            rank = GIVE_WAY.get(column.name, UNLISTED_GIVE_WAY)
            steps.append((rank, -index, column, "drop"))
        elif column.last_resort is not None:
            steps.append((column.last_resort, -index, column, "drop"))
    steps.sort(key=lambda step: (step[0], step[1]))
    if _table_width(columns) <= width:
        return True
    for _, _, column, action in steps:
        if action == "time" and column.dated is not None:
            column.cells, column.time_of_day = column.dated, False
        else:
            column.shown = False
        if _table_width(columns) <= width:
            return True
    return False


def build_table(
    rows: Iterable[Sequence[Any]],
    fields: Sequence[str],
    title: str | None = None,
    width: int | None = None,
    keep: Sequence[str] | None = None,
    omit: Collection[str] = (),
) -> Table:
    """Rows as a Rich table laid out by `fit_columns` for a console `width` wide.

    `keep`: the key fields, most important first (None: every field, whole, as in
    `show`). They give way only after every other column (their time of day too), and
    then from the end of `keep`, never the first two. `omit`: fields not shown in the
    table at all."""
    from rich.table import Table

    rows = [tuple(row) for row in rows]
    columns = []
    for index, name in enumerate(fields):
        if name in omit:
            continue
        values = [row[index] for row in rows]
        full = [visible(table_value(name, v)) for v in values]
        dated = None
        if keep is not None and any(isinstance(v, datetime.datetime) for v in values):
            dated = [visible(table_value(name, v, time_of_day=False)) for v in values]
        kept = keep is None or name in keep
        last_resort = None
        if keep is not None and name in keep[KEEP_ALWAYS:]:
            last_resort = KEPT_GIVE_WAY + len(keep) - list(keep).index(name)
        columns.append(Column(name, header(name), full, dated, kept, last_resort))
    width = PIPE_WIDTH if width is None else width
    fits = fit_columns(columns, width)
    shown = [c for c in columns if c.shown]
    folding = set() if fits else _folding(shown, width)
    table = Table(
        title=title,
        title_justify="left",
        box=None,
        padding=(0, GAP // 2),
        pad_edge=False,
        show_edge=False,
        header_style="bold",
    )
    for column in shown:
        foldable = column.name in folding
        table.add_column(
            column.header,
            justify="right" if column.name in NUMERIC_FIELDS else "left",
            no_wrap=not foldable,
            overflow="fold",
            min_width=None if foldable else column.width(),
        )
    for i in range(len(rows)):
        table.add_row(*(_text(column.cells[i]) for column in shown))
    return table


def _folding(shown: Sequence[Column], width: int) -> set[str]:
    """The free-text columns that fold when the table cannot fit: the widest first, only
    as many as needed for the others to stay on one line."""
    folding: set[str] = set()
    rest = sum(c.width() for c in shown) + GAP * max(len(shown) - 1, 0)
    for column in sorted(shown, key=Column.width, reverse=True):
        if rest <= width:
            break
        if column.name in FOLDABLE:
            folding.add(column.name)
            rest -= column.width() - MIN_FOLDED_WIDTH
    return folding


def _text(value: str) -> Text:
    from rich.text import Text

    return Text(value)  # never markup; wrapping follows the column


# --- writing ---------------------------------------------------------------------------------


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


def render_records(
    records: Iterable[Sequence[Any]],
    fields: Sequence[str],
    fmt: OutputFormat,
    title: str | None = None,
    empty_message: str = "No rows.",
    keep: Sequence[str] | None = None,
    omit: Collection[str] = (),
) -> None:
    """Rows (sequences in `fields` order, e.g. named tuples) as a table, JSON or CSV.

    `keep` and `omit` shape the table only (see `build_table`); json and csv always
    carry every field.

    When writing fails (a full disk, a reader gone), a stream of records is closed here,
    while its database connection is still open: a MariaDB unbuffered cursor left to
    the garbage collector would try to drain its rows from a closed connection."""
    try:
        if fmt is OutputFormat.json:
            write_json_array(records, fields, sys.stdout)
        elif fmt is OutputFormat.csv:
            write_csv(records, fields, sys.stdout)
        else:
            console = stdout_console()
            table = build_table(records, fields, title, console.width, keep=keep, omit=omit)
            if table.row_count:
                console.print(table)
            else:
                stderr_console().print(empty_message, markup=False)
        sys.stdout.flush()
    except BaseException:
        close = getattr(records, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
        raise


def render_order_detail(order: dict[str, Any], fields: Sequence[str], fmt: OutputFormat) -> None:
    if fmt is OutputFormat.json:
        text = json.dumps(order, indent=2, ensure_ascii=False, default=json_default)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    if fmt is OutputFormat.csv:
        write_csv([[order[name] for name in fields]], fields, sys.stdout)
        sys.stdout.flush()
        return
    from rich.table import Table

    console = stdout_console()
    customer = order.get("customer") or {}
    grid = Table.grid(padding=(0, GAP))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    who = f"{customer.get('id')}  {customer.get('name')}"
    for label, name, value in (
        ("order", "id", order.get("id")),
        ("status", "status", order.get("status")),
        ("total", "total_cents", order.get("total_cents")),
        ("archived", "is_archived", order.get("is_archived")),
        ("created", "created_at", order.get("created_at")),
        ("updated", "updated_at", order.get("updated_at")),
        ("customer", "customer", who),
        ("email", "email", customer.get("email", order.get("email"))),
    ):
        grid.add_row(label, _text(visible(table_value(name, value))))
    console.print(grid)
    items = ("sku", "quantity", "unit_price_cents", "line_total_cents")
    rows = _columns(order.get("items") or [], items)
    console.print(build_table(rows, items, title="Items", width=console.width))
    if order.get("events"):
        console.print(_history(order["events"]))
    sys.stdout.flush()


def _history(events: Iterable[dict[str, Any]]) -> Table:
    """The status history as a record list: the time, then `from → to  by actor` and the
    reason below it, folding inside its column (a reason is free text of any length)."""
    from rich.table import Table
    from rich.text import Text

    history = Table.grid(padding=(0, GAP))
    history.title, history.title_justify = "History", "left"
    history.add_column(no_wrap=True)
    history.add_column(overflow="fold")
    for event in events:
        shown = {
            name: visible(table_value(name, event.get(name)))
            for name in ("created_at", "from_status", "to_status", "actor", "reason")
        }
        what = Text(f"{shown['from_status']} → {shown['to_status']}  by {shown['actor']}")
        if event.get("reason"):
            what.append("\n" + shown["reason"])
        history.add_row(_text(shown["created_at"]), what)
    return history


def _columns(records: Iterable[dict[str, Any]], fields: Sequence[str]) -> list[list[Any]]:
    return [[record.get(name) for name in fields] for record in records]


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
    carry the rows only. The columns are laid out by the one rule (`build_table`)."""
    if fmt is not OutputFormat.table or not records:
        render_records(records, fields, fmt, empty_message="No paid or shipped orders.")
        return
    from rich.cells import cell_len

    console = stdout_console()
    widths = [
        max(cell_len(header(name)), *(cell_len(table_value(name, row[i])) for row in records))
        for i, name in enumerate(fields)
    ]
    used = sum(widths) + GAP * len(fields)  # the columns and the gap before the bar
    width = console.width - used if _stdout_is_terminal() else PIPED_BAR_WIDTH
    width = max(width, MIN_BAR_WIDTH)
    revenue_index = list(fields).index("revenue_cents")
    largest = max(_as_int(row[revenue_index]) for row in records)
    rows = [(*row, revenue_bar(_as_int(row[revenue_index]), largest, width)) for row in records]
    console.print(build_table(rows, (*fields, ""), width=console.width))
    sys.stdout.flush()


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
