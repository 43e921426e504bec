"""The command line: parse options, make one call into the core, render the result.

Domain errors (`OrderCliError`) become one `Error:` line on stderr and exit code 1
here and nowhere else; bad options are Typer usage errors with exit code 2.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from ordercli import __version__
from ordercli.domain import DEFAULT_URL, Period, Status
from ordercli.drivers import hide_unused_drivers
from ordercli.errors import OrderCliError
from ordercli.render import (
    OutputFormat,
    render_order_detail,
    render_records,
    render_revenue,
    stderr_console,
)
from ordercli.timeutil import parse_utc
from ordercli.urls import password_spellings, redact

if TYPE_CHECKING:
    from ordercli.db import Connection  # not at run time: Peewee only when a command runs

MAX_ID = 2**63 - 1
MAX_SEED_COUNT = 10**9
DEBUG_ENV = "ORDERCLI_DEBUG"
# The values a person reads a row for: never dropped from a table (CONTRACT.md, Output).
# Most important first: on terminals narrower than 80 columns the last ones give way.
LIST_KEY_FIELDS = ("email", "created_at", "id", "status", "total_cents")
SUMMARY_KEY_FIELDS = ("email", "spent_cents")
_INTEGER = re.compile(r"-?[0-9]+", re.ASCII)


class OrderCliGroup(TyperGroup):
    """The CLI boundary: what no command handles itself ends here as one `Error:` line.

    - stdout that cannot be written (disk full, closed): one `Error:` line, exit 1,
      saying whether the command's change was already committed;
    - a reader that stops early (`| head`): quiet, exit 0 in every format, as when the
      output happened to fit in the pipe before the reader left;
    - any other unexpected exception: one `Error:` line naming it (the traceback with
      ORDERCLI_DEBUG=1).
    Click's own exits (usage errors, `typer.Exit`, Ctrl-C) pass through untouched."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            print(ctx.get_help())  # the help on stdout, as a usage error (exit 2)
            ctx.exit(2)
        return list(super().parse_args(ctx, args))

    def invoke(self, ctx: Any) -> Any:
        try:
            if sys.stdout is None:  # started with stdout closed (`>&-`)
                raise OSError(errno.EBADF, "standard output is closed")
            result = super().invoke(ctx)
            sys.stdout.flush()
            return result
        except (typer.Exit, typer.Abort, KeyboardInterrupt, EOFError):
            raise
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
        except OSError as exc:
            if exc.errno not in _OUTPUT_ERRNOS:  # not about stdout: nothing expected it
                _last_resort(ctx, exc)
            _silence_stdout()
            committed = _state(ctx).committed
            _error(
                f"cannot write the output: {exc.strerror or exc}"
                + ("; the change was committed" if committed else "")
            )
            raise typer.Exit(1) from None
        except Exception as exc:
            if hasattr(exc, "exit_code"):  # Click's usage errors and exits
                raise
            _last_resort(ctx, exc)


# Database errors never get here as OSError (db.py translates them), so these are stdout's.
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EBADF, errno.EIO, errno.EFBIG, errno.EDQUOT})


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so Python's final flush of what is left stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass  # not a real file (tests) or already gone
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until the process ends)
    except OSError:
        pass


def _last_resort(ctx: Any, exc: BaseException) -> None:
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        raise exc
    command = ctx.invoked_subcommand or ctx.info_name or "ordercli"
    detail = " ".join(str(exc).split()) or "(no message)"
    committed = "; its change was committed" if _state(ctx).committed else ""
    _error(
        f"unexpected failure in {command}: {type(exc).__name__}: {detail}{committed} "
        f"(run with {DEBUG_ENV}=1 for the traceback)",
        _state(ctx).secrets,
    )
    raise typer.Exit(1) from None


def _error(message: str, secrets: tuple[str, ...] = ()) -> None:
    """One `Error:` line on stderr, plain (never Rich markup), password removed."""
    message = redact(message, secrets)
    try:
        sys.stdout.flush()  # what was printed before the error comes first
    except (AttributeError, OSError, ValueError):
        _silence_stdout()  # unwritable too: keep Python's final flush quiet
    print(f"Error: {message}", file=sys.stderr, flush=True)


app = typer.Typer(
    cls=OrderCliGroup,
    name="ordercli",
    help="Administer a shop's orders: list, pay, ship, cancel, archive, find customers, "
    "summarise and seed.\n\n"
    "Example: ordercli --db postgresql://user@host/shop list --status paid --email alice",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # Plain Click help and usage errors: no Rich (and its Markdown parser) at start-up.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Settings:
    url: str
    echo_sql: bool
    committed: bool = False  # a change of this command is in the database
    secrets: tuple[str, ...] = field(default=(), repr=False)


def _state(ctx: Any) -> Settings:
    root = ctx.find_root()
    if isinstance(root.obj, Settings):
        return root.obj
    return Settings(url=DEFAULT_URL, echo_sql=False)


@contextlib.contextmanager
def database(
    ctx: typer.Context, migrate: bool = True, changes: bool = False
) -> Iterator[Connection]:
    """Open the command's database and hand its `Connection` to the block; expected
    failures end as one `Error:` line, exit 1.

    `changes`: the command writes, so once the block ends without an error its change
    is committed (said in any later error, e.g. output that cannot be written)."""
    from ordercli.db import connect  # Peewee (and the drivers) only when a command runs

    settings = _state(ctx)
    try:
        with connect(settings.url, echo_sql=settings.echo_sql, migrate=migrate) as conn:
            yield conn
    except OrderCliError as exc:
        _error(" ".join(str(exc).split()))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        # Ctrl-C: the open transaction was rolled back; exit as shells expect (128 + 2).
        print("Interrupted.", file=sys.stderr, flush=True)
        raise typer.Exit(130) from None
    settings.committed = settings.committed or changes


def _version(value: bool) -> None:
    if value:
        print(f"ordercli {__version__}")
        raise typer.Exit()


def _utf8_text(text: str) -> str:
    """Text that can be stored: arguments that were not valid UTF-8 are refused."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise typer.BadParameter("is not valid UTF-8 text") from None
    return text


def _date(text: str | datetime.datetime) -> datetime.datetime:
    if isinstance(text, datetime.datetime):
        return text
    try:
        return parse_utc(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _whole_number(low: int | None, high: int | None, what: str = "a whole number") -> Any:
    """A parser of plain decimal integers within [low, high].

    Python's int() also takes `1_0`, `+5`, ` 7` and other scripts' digits (`٣`, `２`):
    a typo must not become another order's id or another count."""

    def parse(text: str | int) -> int:
        if isinstance(text, int):  # a default or an already-parsed value
            return text
        if not _INTEGER.fullmatch(text):
            raise typer.BadParameter(f"{text!r} is not {what} (plain digits, e.g. 42)")
        value = int(text)
        if (low is not None and value < low) or (high is not None and value > high):
            raise typer.BadParameter(f"{text} is not {what} from {low} to {high}")
        return value

    return parse


_order_id = _whole_number(1, MAX_ID, "an order id")


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="Output format: table on a terminal, json or csv for scripts.",
    ),
]
SinceOption = Annotated[
    datetime.datetime | None,
    typer.Option(
        parser=_date,
        metavar="DATE",
        help="Only orders created at or after this ISO date/datetime (UTC unless offset given).",
    ),
]
UntilOption = Annotated[
    datetime.datetime | None,
    typer.Option(
        parser=_date,
        metavar="DATE",
        help="Only orders created before this ISO date/datetime (exclusive).",
    ),
]
OrderIds = Annotated[
    list[int], typer.Argument(parser=_order_id, metavar="ORDER_ID...", show_default=False)
]


def _check_window(since: datetime.datetime | None, until: datetime.datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise typer.BadParameter("--since must be earlier than --until", param_hint="'--since'")


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="ORDERCLI_DATABASE_URL",
            metavar="URL",
            show_default=False,
            help=f"Database URL (sqlite:///path.db, postgresql://user:pw@host/db). "
            f"Default: {DEFAULT_URL}",
        ),
    ] = None,
    echo_sql: Annotated[
        bool,
        typer.Option(
            "--echo-sql",
            envvar="ORDERCLI_ECHO_SQL",
            help="Print every SQL statement to stderr, prefixed 'SQL: '.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Administer a shop's orders: list, pay, ship, cancel, archive, find customers, summarise
    and seed.

    Example: ordercli --db postgresql://user@host/shop list --status paid --email alice
    """
    url = DEFAULT_URL if db is None else db
    ctx.obj = Settings(url=url, echo_sql=echo_sql, secrets=password_spellings(url))
    ctx.call_on_close(hide_unused_drivers(url))


@app.command()
def seed(
    ctx: typer.Context,
    count: Annotated[
        int,
        typer.Option(
            parser=_whole_number(1, MAX_SEED_COUNT), metavar="N", help="Number of orders to add."
        ),
    ] = 1000,
    customers: Annotated[
        int | None,
        typer.Option(
            parser=_whole_number(1, MAX_SEED_COUNT),
            metavar="N",
            help="New customers to spread them over [default: ⌈count/8⌉].",
        ),
    ] = None,
    seed_value: Annotated[
        int | None,
        typer.Option(
            "--seed",
            parser=_whole_number(None, None),
            metavar="N",
            help="Random seed: the same seed on an empty database gives the same rows.",
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Add realistic customers, orders and items (batched inserts).

    Example: ordercli seed --count 10000 --seed 42
    """
    from ordercli.seeding import seed as seed_orders

    with database(ctx, changes=True) as conn, _seed_progress(count) as progress:
        result = seed_orders(conn, count, customers, seed_value, progress=progress)
    record = {
        "customers": result.customers,
        "orders": result.orders,
        "items": result.items,
        "seconds": round(result.seconds, 3),
        "rows_per_second": round(result.rows_per_second),
    }
    added = (
        f"Added {result.customers:,} customers, {result.orders:,} orders and "
        f"{result.items:,} items in {result.seconds:.2f} s "
        f"({result.rows_per_second:,.0f} rows/s)."
    )
    if fmt is OutputFormat.table:
        print(added)  # the human result; there is no table to draw for one row
        return
    print(added, file=sys.stderr)
    if fmt is OutputFormat.json:
        print(json.dumps(record))  # one object, not an array: seed reports one result
    else:
        render_records([list(record.values())], list(record), fmt)


@contextlib.contextmanager
def _seed_progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar on stderr when stderr is a terminal; otherwise no callback."""
    console = stderr_console()
    if not console.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("Seeding orders", total=total)
        yield lambda done: bar.update(task, completed=done)


@app.command("list")
def list_command(
    ctx: typer.Context,
    status: Annotated[
        list[Status] | None,
        typer.Option(
            "--status",
            "-s",
            case_sensitive=False,
            help="Only orders with this status; repeat for several.",
        ),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(
            parser=_utf8_text,
            metavar="TEXT",
            help="Case-insensitive substring of the customer's email (% and _ are literal).",
        ),
    ] = None,
    customer: Annotated[
        int | None,
        typer.Option(
            parser=_whole_number(1, MAX_ID, "a customer id"),
            metavar="ID",
            help="Only this customer's orders (id).",
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[
        int,
        typer.Option(
            parser=_whole_number(0, MAX_ID),
            metavar="N",
            help="At most this many orders; 0 for all.",
        ),
    ] = 50,
    include_archived: Annotated[
        bool, typer.Option("--include-archived", help="Also show archived orders.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List orders, newest first.

    Example: ordercli list --status paid --email alice@ --since 2026-01-01 --format json
    """
    from ordercli.queries import ORDER_FIELDS, list_orders

    _check_window(since, until)
    with database(ctx) as conn:
        rows = list_orders(
            conn,
            statuses=status or (),
            email=email,
            customer_id=customer,
            since=since,
            until=until,
            limit=limit,
            include_archived=include_archived,
        )
        render_records(
            rows,
            ORDER_FIELDS,
            fmt,
            empty_message="No matching orders.",
            keep=(*LIST_KEY_FIELDS, "is_archived") if include_archived else LIST_KEY_FIELDS,
            omit=() if include_archived else ("is_archived",),
        )


@app.command()
def summary(
    ctx: typer.Context,
    limit: Annotated[
        int,
        typer.Option(
            parser=_whole_number(0, MAX_ID),
            metavar="N",
            help="At most this many customers; 0 for all.",
        ),
    ] = 50,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Top active customers by money spent (paid and shipped, non-archived orders).

    Example: ordercli summary --limit 10 --since 2026-01-01
    """
    from ordercli.queries import SUMMARY_FIELDS, summarize_customers

    _check_window(since, until)
    with database(ctx) as conn:
        rows = summarize_customers(conn, limit=limit, since=since, until=until)
    render_records(
        rows, SUMMARY_FIELDS, fmt, empty_message="No active customers.", keep=SUMMARY_KEY_FIELDS
    )


ReasonOption = Annotated[
    str | None,
    typer.Option(parser=_utf8_text, metavar="TEXT", help="Why, recorded in the order's history."),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Check and report, change nothing.")]


def _change_status(
    ctx: typer.Context,
    target: Status,
    order_ids: list[int],
    reason: str | None,
    dry_run: bool,
    fmt: OutputFormat,
) -> None:
    """pay, ship and cancel: one call into the core's one status-change path."""
    from ordercli.orders import StatusChange, change_status, current_actor

    with database(ctx, changes=not dry_run) as conn:
        results = change_status(
            conn, order_ids, target, reason=reason, actor=current_actor(), dry_run=dry_run
        )
    render_records(results, StatusChange._fields, fmt)
    if dry_run:
        print("Dry run: nothing was changed.", file=sys.stderr)


@app.command()
def pay(
    ctx: typer.Context,
    order_ids: OrderIds,
    reason: ReasonOption = None,
    dry_run: DryRunOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Mark draft orders paid (all or nothing); shipped or cancelled orders are refused.

    Example: ordercli pay 42 43 --reason "bank transfer arrived"
    """
    _change_status(ctx, Status.PAID, order_ids, reason, dry_run, fmt)


@app.command()
def ship(
    ctx: typer.Context,
    order_ids: OrderIds,
    reason: ReasonOption = None,
    dry_run: DryRunOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Mark paid orders shipped (all or nothing); draft or cancelled orders are refused.

    Example: ordercli ship 42 43 --reason "DHL 00340434161094"
    """
    _change_status(ctx, Status.SHIPPED, order_ids, reason, dry_run, fmt)


@app.command()
def cancel(
    ctx: typer.Context,
    order_ids: OrderIds,
    reason: ReasonOption = None,
    dry_run: DryRunOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Cancel draft or paid orders (all or nothing); shipped orders are refused.

    Example: ordercli cancel 42 43 --reason "customer asked" --dry-run
    """
    _change_status(ctx, Status.CANCELLED, order_ids, reason, dry_run, fmt)


@app.command()
def customers(
    ctx: typer.Context,
    email: Annotated[
        str | None,
        typer.Option(
            parser=_utf8_text,
            metavar="TEXT",
            help="Case-insensitive substring of the email (% and _ are literal).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            parser=_utf8_text,
            metavar="TEXT",
            help="Case-insensitive substring of the name (% and _ are literal).",
        ),
    ] = None,
    include_inactive: Annotated[
        bool, typer.Option("--include-inactive", help="Also show inactive customers.")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            parser=_whole_number(0, MAX_ID),
            metavar="N",
            help="At most this many customers; 0 for all.",
        ),
    ] = 50,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Find customers, newest first, with their orders, money spent and last order.

    Example: ordercli customers --email alice@ --format json
    """
    from ordercli.queries import CUSTOMER_FIELDS, list_customers

    with database(ctx) as conn:
        rows = list_customers(
            conn, email=email, name=name, include_inactive=include_inactive, limit=limit
        )
        render_records(
            rows,
            CUSTOMER_FIELDS,
            fmt,
            empty_message="No matching customers.",
            keep=(*SUMMARY_KEY_FIELDS, "is_active") if include_inactive else SUMMARY_KEY_FIELDS,
            omit=() if include_inactive else ("is_active",),
        )


@app.command()
def revenue(
    ctx: typer.Context,
    by: Annotated[
        Period,
        typer.Option(
            "--by",
            case_sensitive=False,
            help="Period: calendar day, ISO week (from Monday) or calendar month, in UTC.",
        ),
    ] = Period.month,
    since: SinceOption = None,
    until: UntilOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Money taken per period (paid and shipped, non-archived orders), oldest first.

    Example: ordercli revenue --by week --since 2026-01-01
    """
    from ordercli.queries import REVENUE_FIELDS
    from ordercli.queries import revenue as revenue_per_period

    _check_window(since, until)
    with database(ctx) as conn:
        rows = revenue_per_period(conn, by, since=since, until=until)
    render_revenue(rows, REVENUE_FIELDS, fmt)


@app.command()
def show(
    ctx: typer.Context,
    order_id: Annotated[int, typer.Argument(parser=_order_id, metavar="ORDER_ID")],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show one order with its customer, items and status history.

    Example: ordercli show 42 --format json
    """
    from ordercli.queries import ORDER_FIELDS, show_order

    with database(ctx) as conn:
        order = show_order(conn, order_id)
    render_order_detail(order, ORDER_FIELDS, fmt)


@app.command()
def archive(
    ctx: typer.Context,
    order_ids: OrderIds,
    undo: Annotated[
        bool, typer.Option("--undo", help="Un-archive: show the orders again.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and report, change nothing.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Hide orders from list and summary (all or nothing); --undo shows them again.

    Example: ordercli archive 42 43
    """
    from ordercli.orders import ArchiveResult, archive_orders

    with database(ctx, changes=not dry_run) as conn:
        results = archive_orders(conn, order_ids, undo=undo, dry_run=dry_run)
    render_records(results, ArchiveResult._fields, fmt)
    if dry_run:
        print("Dry run: nothing was changed.", file=sys.stderr)


@app.command()
def migrate(
    ctx: typer.Context,
    show_sql: Annotated[
        bool,
        typer.Option("--sql", help="Print the pending statements; change nothing."),
    ] = False,
) -> None:
    """Apply pending schema migrations and print the schema version.

    On a database server this is the only command that upgrades an existing schema.
    Interrupted, it is finished by the next run.

    Example: ordercli --db postgresql://user@host/shop migrate --sql
    """
    from ordercli import migrations

    if show_sql:
        with database(ctx, migrate=False) as conn:
            lines = migrations.pending_sql(conn.database, conn.backend)
        print("\n".join(lines) if lines else "-- nothing to do: the schema is up to date")
        return
    with database(ctx, migrate=False) as conn:
        version, applied = migrations.migrate(conn.database, conn.backend)
    _state(ctx).committed = bool(applied)
    for name in applied:
        print(f"Applied {name}", file=sys.stderr)
    print(f"Schema version {version}" + ("" if applied else " (up to date)"))


def main() -> None:
    app(prog_name="ordercli")
