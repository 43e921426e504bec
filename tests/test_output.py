"""The output contract: JSON/CSV fields and purity, UTC timestamps, piped tables, help."""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from helpers import Run, add_customer, add_order, describe, opened, run_script, scalar

from ordercli import __version__
from ordercli.cli import app
from ordercli.models import Order, OrderEvent

# Field lists exactly as CONTRACT.md writes them.
LIST_FIELDS = [
    "id",
    "customer_id",
    "email",
    "status",
    "total_cents",
    "item_count",
    "is_archived",
    "created_at",
]
SUMMARY_FIELDS = [
    "customer_id",
    "email",
    "name",
    "orders",
    "paid_orders",
    "spent_cents",
    "last_order_at",
]
CANCEL_FIELDS = ["id", "previous_status", "status", "changed"]
ARCHIVE_FIELDS = ["id", "is_archived", "changed"]
ITEM_FIELDS = ["sku", "quantity", "unit_price_cents", "line_total_cents"]

UTC = datetime.UTC
T0 = datetime.datetime(2026, 1, 10, 12, 30, 45, 123456)
LONG_EMAIL = "x" * 150 + ".very-long-local-part." + "y" * 16 + "@example.com"
ANSI = "\x1b["
BOX = re.compile(r"[│╭╮╰╯─┃━]")


@dataclass
class Shop:
    """Arranged rows and what list/summary must say about them."""

    url: str
    ids: dict[str, int]
    customers: dict[str, int]
    orders: dict[int, dict[str, Any]]  # every order as list's JSON should show it

    def listed(self, *, include_archived: bool = False) -> list[dict[str, Any]]:
        rows = [o for o in self.orders.values() if include_archived or not o["is_archived"]]
        return sorted(rows, key=lambda o: o["id"], reverse=True)


def _arrange(url: str) -> Shop:
    """Four customers (one inactive, one without orders), orders in every status."""
    with opened(url):
        alice = add_customer("alice@example.com", "Alice")
        bob = add_customer("Bob.Builder@Example.com", "Bob")
        carol = add_customer(LONG_EMAIL, "Carol With A Very Long Email")
        dave = add_customer("dave@example.com", "Dave", is_active=False)
        day = datetime.timedelta(days=1)
        spec = {
            # name: (customer, status, items, created_at, archived)
            "paid": (alice, "paid", [("SKU-1", 2, 499), ("SKU-2", 1, 1499)], T0, False),
            "draft": (alice, "draft", [("SKU-3", 1, 199)], T0 + day, False),
            "shipped": (bob, "shipped", [("SKU-4", 3, 999)], T0 + 2 * day, False),
            "archived": (bob, "paid", [("SKU-5", 1, 2499)], T0 - 9 * day, True),
            "cancelled": (alice, "cancelled", [("SKU-6", 1, 999)], T0 + 3 * day, False),
            "inactive": (dave, "paid", [("SKU-7", 5, 199)], T0 + 4 * day, False),
        }  # fmt: skip
        emails = {
            alice: "alice@example.com",
            bob: "Bob.Builder@Example.com",
            dave: "dave@example.com",
        }
        ids: dict[str, int] = {}
        orders: dict[int, dict[str, Any]] = {}
        for name, (customer, status, items, created, archived) in spec.items():
            order_id = add_order(customer, status, items, created_at=created, is_archived=archived)
            ids[name] = order_id
            orders[order_id] = {
                "id": order_id,
                "customer_id": customer,
                "email": emails[customer],
                "status": status,
                "total_cents": sum(q * p for _, q, p in items),
                "item_count": len(items),
                "is_archived": archived,
                "created_at": created.replace(tzinfo=UTC),
            }
    customers = {"alice": alice, "bob": bob, "carol": carol, "dave": dave}
    return Shop(url, ids, customers, orders)


@pytest.fixture
def shop(db_url: str) -> Shop:
    return _arrange(db_url)


# --- checking helpers ------------------------------------------------------------------------


def _json(result: Run) -> Any:
    """The whole of stdout is exactly one JSON document."""
    assert result.exit_code == 0, describe(result)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - the failure message
        raise AssertionError(f"stdout is not one JSON document ({exc}):\n{result.stdout}") from None


def _csv(result: Run) -> list[list[str]]:
    assert result.exit_code == 0, describe(result)
    return list(csv.reader(io.StringIO(result.stdout)))


def _timestamp(value: str) -> datetime.datetime:
    """An ISO 8601 timestamp with an explicit UTC offset, as an aware datetime."""
    assert isinstance(value, str) and value.endswith(("+00:00", "Z")), value
    parsed = datetime.datetime.fromisoformat(value)
    assert parsed.utcoffset() == datetime.timedelta(0), value
    return parsed


def _with_parsed_times(record: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: (_timestamp(v) if k in fields and v is not None else v) for k, v in record.items()}


def _flat(text: str) -> str:
    return " ".join(BOX.sub(" ", text).split())


# --- list ------------------------------------------------------------------------------------


def test_list_json_is_exactly_the_arranged_orders(cli, shop):
    result = cli(shop.url, "list", "--format", "json")
    rows = _json(result)
    assert isinstance(rows, list)
    for row in rows:
        assert set(row) == set(LIST_FIELDS), row
    assert [_with_parsed_times(r, "created_at") for r in rows] == shop.listed()
    assert all(isinstance(r["is_archived"], bool) for r in rows)
    assert all(isinstance(r[f], int) for r in rows for f in ("id", "total_cents", "item_count"))


@pytest.mark.parametrize("limit", ["0", "2"])
def test_list_json_include_archived_and_limit(cli, shop, limit):
    result = cli(shop.url, "list", "--include-archived", "--limit", limit, "--format", "json")
    rows = [_with_parsed_times(r, "created_at") for r in _json(result)]
    expected = shop.listed(include_archived=True)
    assert rows == (expected if limit == "0" else expected[: int(limit)])
    if limit == "0":
        assert {r["id"]: r["is_archived"] for r in rows if r["is_archived"]} == {
            shop.ids["archived"]: True
        }


def test_list_csv_has_the_field_header_and_one_row_per_order(cli, shop):
    table = _csv(cli(shop.url, "list", "--format", "csv"))
    assert table[0] == LIST_FIELDS
    records = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    expected = shop.listed()
    assert len(records) == len(expected)
    for record, order in zip(records, expected, strict=True):
        for field in ("id", "customer_id", "total_cents", "item_count"):
            assert int(record[field]) == order[field], (field, record)
        assert record["email"] == order["email"] and record["status"] == order["status"]
        assert record["is_archived"].lower() in ("false", "0"), record
        assert _timestamp(record["created_at"]) == order["created_at"]


def test_empty_list_is_still_one_document_and_a_header(cli, shop):
    args = ("list", "--email", "nobody-matches-this")
    assert _json(cli(shop.url, *args, "--format", "json")) == []
    assert _csv(cli(shop.url, *args, "--format", "csv")) == [LIST_FIELDS]


def test_json_stays_pure_with_echo_sql(cli, shop):
    """SQL echo, progress and messages go to stderr; stdout is only the document."""
    runs = {
        "list": cli(shop.url, "list", "--format", "json", echo=True),
        "summary": cli(shop.url, "summary", "--format", "json", echo=True),
        "show": cli(shop.url, "show", str(shop.ids["paid"]), "--format", "json", echo=True),
        "dry-run": cli(
            shop.url, "cancel", str(shop.ids["paid"]), "--dry-run", "--format", "json", echo=True
        ),
        "archive": cli(shop.url, "archive", str(shop.ids["draft"]), "--format", "json", echo=True),
        "seed": cli(shop.url, "seed", "--count", "3", "--format", "json", echo=True),
    }
    for name, result in runs.items():
        document = _json(result)
        assert document, name
        assert result.sql, f"{name}: --echo-sql printed the statements on stderr"
        assert "SQL: " not in result.stdout, name
    assert "Dry run" in runs["dry-run"].stderr


# --- summary ---------------------------------------------------------------------------------


def test_summary_json_is_exactly_the_expected_customers(cli, shop):
    rows = _json(cli(shop.url, "summary", "--format", "json"))
    for row in rows:
        assert set(row) == set(SUMMARY_FIELDS), row
    day = datetime.timedelta(days=1)
    expected = [
        {  # shipped 3 x 999; the archived paid order does not count
            "customer_id": shop.customers["bob"],
            "email": "Bob.Builder@Example.com",
            "name": "Bob",
            "orders": 1,
            "paid_orders": 1,
            "spent_cents": 2997,
            "last_order_at": (T0 + 2 * day).replace(tzinfo=UTC),
        },
        {  # paid 2497; the draft and the cancelled order count as orders only
            "customer_id": shop.customers["alice"],
            "email": "alice@example.com",
            "name": "Alice",
            "orders": 3,
            "paid_orders": 1,
            "spent_cents": 2497,
            "last_order_at": (T0 + 3 * day).replace(tzinfo=UTC),
        },
        {
            "customer_id": shop.customers["carol"],
            "email": LONG_EMAIL,
            "name": "Carol With A Very Long Email",
            "orders": 0,
            "paid_orders": 0,
            "spent_cents": 0,
            "last_order_at": None,
        },
    ]
    assert [_with_parsed_times(r, "last_order_at") for r in rows] == expected


def test_summary_csv_has_the_field_header(cli, shop):
    table = _csv(cli(shop.url, "summary", "--format", "csv"))
    assert table[0] == SUMMARY_FIELDS
    assert [int(row[0]) for row in table[1:]] == [
        shop.customers["bob"],
        shop.customers["alice"],
        shop.customers["carol"],
    ]
    assert all(len(row) == len(SUMMARY_FIELDS) for row in table)
    assert _timestamp(table[1][SUMMARY_FIELDS.index("last_order_at")])


# --- cancel, archive -------------------------------------------------------------------------


def test_cancel_json_and_csv_report_exactly_what_happened(cli, shop):
    paid, done = shop.ids["paid"], shop.ids["cancelled"]
    rows = _json(cli(shop.url, "cancel", str(paid), str(done), "--format", "json"))
    assert rows == [
        {"id": paid, "previous_status": "paid", "status": "cancelled", "changed": True},
        {"id": done, "previous_status": "cancelled", "status": "cancelled", "changed": False},
    ]
    draft = shop.ids["draft"]
    table = _csv(cli(shop.url, "cancel", str(draft), "--dry-run", "--format", "csv"))
    assert table[0] == CANCEL_FIELDS
    assert [row[:3] for row in table[1:]] == [[str(draft), "draft", "cancelled"]]
    assert table[1][3].lower() in ("true", "1")


def test_archive_json_and_csv_report_exactly_what_happened(cli, shop):
    paid, archived = shop.ids["paid"], shop.ids["archived"]
    rows = _json(cli(shop.url, "archive", str(paid), str(archived), "--format", "json"))
    assert rows == [
        {"id": paid, "is_archived": True, "changed": True},
        {"id": archived, "is_archived": True, "changed": False},
    ]
    rows = _json(cli(shop.url, "archive", str(paid), "--undo", "--format", "json"))
    assert rows == [{"id": paid, "is_archived": False, "changed": True}]
    table = _csv(cli(shop.url, "archive", str(archived), "--undo", "--format", "csv"))
    assert table[0] == ARCHIVE_FIELDS
    assert len(table) == 2 and table[1][0] == str(archived)


# --- show ------------------------------------------------------------------------------------


def test_show_json_has_list_fields_customer_items_and_events(cli, shop):
    paid = shop.ids["paid"]
    assert cli(shop.url, "cancel", str(paid), "--reason", "asked").exit_code == 0
    order = _json(cli(shop.url, "show", str(paid), "--format", "json"))
    assert isinstance(order, dict)
    assert set(LIST_FIELDS) | {"customer", "items", "events"} <= set(order)
    listed = {**shop.orders[paid], "status": "cancelled"}
    assert _with_parsed_times({f: order[f] for f in LIST_FIELDS}, "created_at") == listed
    customer = order["customer"]
    assert isinstance(customer, dict)
    assert (customer["id"], customer["email"], customer["name"]) == (
        shop.customers["alice"],
        "alice@example.com",
        "Alice",
    )
    assert order["items"] == [
        {"sku": "SKU-1", "quantity": 2, "unit_price_cents": 499, "line_total_cents": 998},
        {"sku": "SKU-2", "quantity": 1, "unit_price_cents": 1499, "line_total_cents": 1499},
    ]
    assert len(order["events"]) == 1
    event = order["events"][0]
    assert (event["from_status"], event["to_status"]) == ("paid", "cancelled")
    assert (event["reason"], event["actor"]) == ("asked", "pytest")
    with opened(shop.url):
        stored = OrderEvent.get().created_at
    assert _timestamp(event["created_at"]) == stored.replace(tzinfo=UTC)
    for value in _timestamps_in(order):
        _timestamp(value)


def _timestamps_in(document: Any) -> list[str]:
    """Every value of a `*_at` key, anywhere in the document."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key.endswith("_at") and value is not None:
                found.append(value)
            else:
                found += _timestamps_in(value)
    elif isinstance(document, list):
        for value in document:
            found += _timestamps_in(value)
    return found


def test_every_json_timestamp_has_an_explicit_utc_offset(cli, shop):
    documents = [
        _json(cli(shop.url, "list", "--include-archived", "--format", "json")),
        _json(cli(shop.url, "summary", "--format", "json")),
        _json(cli(shop.url, "show", str(shop.ids["shipped"]), "--format", "json")),
    ]
    stamps = [stamp for document in documents for stamp in _timestamps_in(document)]
    assert len(stamps) >= 10
    for stamp in stamps:
        _timestamp(stamp)


# --- seed ------------------------------------------------------------------------------------


def test_seed_json_is_one_object_matching_the_rows_added(cli, db_url):
    result = cli(db_url, "seed", "--count", "12", "--customers", "3", "--format", "json")
    report = _json(result)
    assert {"customers", "orders", "items", "seconds"} <= set(report)
    assert (report["customers"], report["orders"]) == (3, 12)
    assert isinstance(report["items"], int) and isinstance(report["seconds"], float)
    with opened(db_url):
        assert scalar("SELECT COUNT(*) FROM order_item") == report["items"]
        assert Order.select().count() == 12
    assert result.stderr.strip(), "the human summary goes to stderr"


# --- tables when stdout is not a terminal ----------------------------------------------------


def _table_outputs(cli: Any, shop: Shop, env: dict[str, str] | None) -> dict[str, Run]:
    with opened(shop.url):
        order = add_order(shop.customers["carol"], "paid", created_at=T0)
    return {
        "list": cli(shop.url, "list", env=env),
        "summary": cli(shop.url, "summary", env=env),
        "show": cli(shop.url, "show", str(order), env=env),
        "cancel": cli(shop.url, "cancel", str(order), "--dry-run", env=env),
    }


@pytest.mark.parametrize(
    "env",
    [None, {"NO_COLOR": "1"}, {"COLUMNS": "40"}, {"TERM": "xterm-256color", "COLUMNS": "60"}],
    ids=["piped", "no-color", "narrow-columns", "colour-term"],
)
def test_piped_tables_are_plain_and_never_cut(cli, shop, env):
    """CliRunner's stdout is not a terminal: no ANSI codes, long emails on one line."""
    for name, result in _table_outputs(cli, shop, env).items():
        assert result.exit_code == 0, describe(result)
        assert ANSI not in result.stdout and ANSI not in result.stderr, (name, result.stdout)
        if name == "cancel":
            assert result.stdout.strip(), "a table is printed"
            continue
        lines = [line for line in result.stdout.splitlines() if LONG_EMAIL in line]
        assert lines, f"{name}: the {len(LONG_EMAIL)}-character email is cut or wrapped:\n" + (
            result.stdout
        )
        assert "…" not in result.stdout, f"{name}: nothing is ellipsised"


def test_piped_list_table_shows_every_order(cli, shop):
    result = cli(shop.url, "list")
    assert result.exit_code == 0, describe(result)
    for order in shop.listed():
        assert re.search(rf"\b{order['id']}\b.*{re.escape(order['email'])}", result.stdout), order


# --- help and version ------------------------------------------------------------------------

GLOBAL_OPTIONS = ["--db", "--echo-sql", "--version", "--help"]
COMMAND_OPTIONS = {
    "seed": ["--count", "--customers", "--seed", "--format"],
    "list": [
        "--status",
        "--email",
        "--customer",
        "--since",
        "--until",
        "--limit",
        "--include-archived",
        "--format",
    ],
    "summary": ["--limit", "--since", "--until", "--format"],
    "cancel": ["--reason", "--dry-run", "--format"],
    "pay": ["--reason", "--dry-run", "--format"],
    "ship": ["--reason", "--dry-run", "--format"],
    "customers": ["--email", "--name", "--include-inactive", "--limit", "--format"],
    "revenue": ["--by", "--since", "--until", "--format"],
    "show": ["--format"],
    "archive": ["--undo", "--format"],
    "migrate": [],
}


def _declared_options(command: str | None) -> set[str]:
    """Every long option the program itself declares (contract or not)."""
    group = typer.main.get_command(app)
    target = group if command is None else group.commands[command]  # type: ignore[attr-defined]
    names = {opt for param in target.params for opt in param.opts if opt.startswith("--")}
    names |= {o for param in target.params for o in param.secondary_opts if o.startswith("--")}
    return names | {"--help"}


def _has_option(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command", [None, *COMMAND_OPTIONS], ids=lambda c: c or "ordercli")
def test_help_shows_every_option_and_an_example(cli, command):
    result = cli(None, *([command] if command else []), "--help")
    assert result.exit_code == 0, describe(result)
    text = _flat(result.stdout)
    assert "Usage: ordercli" in text
    wanted = set(GLOBAL_OPTIONS if command is None else COMMAND_OPTIONS[command])
    for option in sorted(wanted | _declared_options(command)):
        assert _has_option(text, option), f"{option} missing from the help of {command}"
    example = re.search(r"Example:?\s+(ordercli\b.{0,120})", text)
    assert example, f"no 'Example: ordercli ...' line in:\n{result.stdout}"
    if command is not None:
        assert _has_option(example.group(1), command), example.group(1)


def test_version_prints_the_package_version(cli):
    result = cli(None, "--version")
    assert result.exit_code == 0, describe(result)
    assert result.stdout.strip() == f"ordercli {__version__}"
    assert importlib.metadata.version("ordercli") == __version__


# --- the installed console script ------------------------------------------------------------


@pytest.mark.subprocess
def test_console_script_and_module_print_the_version():
    script = run_script(["--version"])
    assert script.returncode == 0, describe(script)
    assert script.stdout.strip() == f"ordercli {__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "ordercli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (module.returncode, module.stdout) == (0, script.stdout), describe(module)


@pytest.mark.subprocess
def test_seeded_database_lists_as_pure_json_through_the_script(db_url):
    seeded = run_script(
        ["--db", db_url, "seed", "--count", "20", "--seed", "7", "--format", "json"]
    )
    assert seeded.returncode == 0, describe(seeded)
    assert json.loads(seeded.stdout)["orders"] == 20
    listed = run_script(["--db", db_url, "list", "--limit", "0", "--format", "json"])
    assert listed.returncode == 0, describe(listed)
    rows = json.loads(listed.stdout)
    assert len(rows) == 20
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert all(set(r) == set(LIST_FIELDS) for r in rows)
    as_csv = run_script(["--db", db_url, "list", "--limit", "0", "--format", "csv"])
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert table[0] == LIST_FIELDS and len(table) == 21
    assert [int(row[0]) for row in table[1:]] == [r["id"] for r in rows]


@pytest.mark.subprocess
def test_script_prints_utc_whatever_the_time_zones(shop):
    env = {"TZ": "America/New_York", "PGTZ": "Asia/Kathmandu"}
    result = run_script(["--db", shop.url, "list", "--format", "json"], env=env)
    assert result.returncode == 0, describe(result)
    rows = [_with_parsed_times(r, "created_at") for r in json.loads(result.stdout)]
    assert rows == shop.listed()


@pytest.mark.subprocess
def test_script_table_through_a_pipe_is_plain_and_whole(shop):
    result = run_script(["--db", shop.url, "summary"], env={"COLUMNS": "50"})
    assert result.returncode == 0, describe(result)
    assert ANSI not in result.stdout
    assert any(LONG_EMAIL in line for line in result.stdout.splitlines()), result.stdout


def _colour_codes(raw: bytes) -> list[bytes]:
    """SGR sequences that set a foreground or background colour (bold is not colour)."""
    found = []
    for match in re.finditer(rb"\x1b\[([0-9;]*)m", raw):
        params = [int(p) for p in match.group(1).split(b";") if p]
        if any(30 <= p <= 38 or 40 <= p <= 48 or 90 <= p <= 97 or 100 <= p <= 107 for p in params):
            found.append(match.group(0))
    return found


@pytest.mark.subprocess
def test_no_color_on_a_real_terminal_means_no_colour(shop):
    """On a terminal Rich may style the table; with NO_COLOR set it must not colour it."""
    import os
    import pty

    script = Path(sys.executable).with_name("ordercli")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "ordercli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERCLI_")}
    env.update({"NO_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "300", "LINES": "50"})
    for args in (["list"], ["summary"], ["show", str(shop.ids["paid"])]):
        leader, follower = pty.openpty()
        try:
            done = subprocess.run(
                [*command, "--db", shop.url, *args],
                stdout=follower,
                stderr=subprocess.PIPE,
                env=env,
                timeout=60,
                check=False,
            )
        finally:
            os.close(follower)
        raw = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            raw += chunk
        os.close(leader)
        assert done.returncode == 0, done.stderr
        assert b"alice@example.com" in raw or b"Alice" in raw, raw
        assert _colour_codes(raw) == [], (args, raw)
