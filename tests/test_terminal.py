"""Tables on a real terminal (a pseudo-terminal of 60, 80, 120 and 200 columns), stored
values that must not be read as markup or reach the terminal as control characters,
case-insensitive closed sets, help text and shell completion."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

import pytest
import typer.main
from helpers import ANSI, add_customer, add_order, describe, on_terminal, opened, run_script

from ordercli.cli import app
from ordercli.models import OrderEvent

T0 = datetime.datetime(2026, 3, 1, 9, 15, 30)
WIDTHS = (60, 80, 120, 200)
# Realistic lengths: the longest is 38 characters.
CUSTOMERS = [
    ("jane.doe@example.com", "Jane Doe"),
    ("maximilian.mustermann-1234@example.com", "Maximilian Mustermann-Lüdenscheid"),
    ("li@x.cn", "Li"),
    ("user614.9c1ab2f0@example.com", "Ines Usman"),
]


def _arrange(url: str) -> dict[str, Any]:
    with opened(url):
        ids = {email: add_customer(email, name) for email, name in CUSTOMERS}
        orders = []
        for n, (email, _) in enumerate(CUSTOMERS * 2):
            status = ("paid", "shipped", "draft", "cancelled")[n % 4]
            price = (199, 999, 2499, 9999)[n % 4] * (n + 1)
            when = T0 + datetime.timedelta(days=n, hours=n)
            orders.append(add_order(ids[email], status, [("SKU-7", 1, price)], created_at=when))
        OrderEvent.insert(
            order=orders[0],
            from_status="paid",
            to_status="cancelled",
            reason="customer wrote in: the parcel never arrived, refund to the original card",
            actor="support-desk",
            created_at=T0,
        ).execute()
    return {"url": url, "orders": orders}


@pytest.fixture
def shop(db_url: str) -> dict[str, Any]:
    return _arrange(db_url)


def _json(args: list[str]) -> Any:
    done = run_script([*args, "--format", "json"])
    assert done.returncode == 0, describe(done)
    return json.loads(done.stdout)


def _money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def _assert_fits(text: str, columns: int, what: str) -> list[str]:
    lines = text.splitlines()
    assert lines, what
    too_long = [line for line in lines if len(line) > columns]
    assert not too_long, f"{what}: lines longer than {columns}:\n{text}"
    assert "…" not in text, f"{what}: a value was cut:\n{text}"
    return lines


def _line_with(lines: list[str], *values: str) -> str | None:
    return next((line for line in lines if all(v in line for v in values)), None)


def test_list_and_summary_fit_every_terminal_width(shop):
    url = shop["url"]
    orders = _json(["--db", url, "list"])
    customers = _json(["--db", url, "summary"])
    assert len(orders) == 8 and len(customers) == 4
    for columns in WIDTHS:
        code, text, stderr = on_terminal(["--db", url, "list"], columns)
        assert code == 0, stderr
        lines = _assert_fits(text, columns, f"list at {columns}")
        for order in orders:
            date = order["created_at"][:10]
            wanted = [order["email"], date]
            if columns >= 80:  # the contract's key values, whole, on one line
                wanted += [order["status"], _money(order["total_cents"])]
            line = _line_with(lines, *wanted)
            assert line, f"list at {columns}: {wanted} not on one line:\n{text}"
            assert re.match(rf"\s*{order['id']}\b", line) or columns < 80, line
            if columns >= 200:  # wider terminals show more: the time of day, the items
                assert order["created_at"][11:19] in line, line
        assert len(lines) == len(orders) + 1, f"one line per order at {columns}:\n{text}"
        assert "archived" not in lines[0], "archived only with --include-archived"

        code, text, stderr = on_terminal(["--db", url, "summary"], columns)
        assert code == 0, stderr
        lines = _assert_fits(text, columns, f"summary at {columns}")
        for customer in customers:
            line = _line_with(lines, customer["email"], _money(customer["spent_cents"]))
            assert line, f"summary at {columns}: {customer['email']} not whole:\n{text}"
            if columns >= 120 and customer["last_order_at"]:
                assert customer["last_order_at"][:10] in line, line
        assert len(lines) == len(customers) + 1, f"one line per customer at {columns}:\n{text}"


def test_include_archived_shows_the_archived_column(shop):
    """A key column then, after the others (a 38-character email leaves no room on 80)."""
    code, text, stderr = on_terminal(["--db", shop["url"], "list", "--include-archived"], 120)
    assert code == 0, stderr
    lines = _assert_fits(text, 120, "list --include-archived at 120")
    assert "archived" in lines[0], text


def test_show_fits_every_terminal_width_with_every_value_whole(shop):
    order_id = shop["orders"][0]
    order = _json(["--db", shop["url"], "show", str(order_id)])
    stamp = order["created_at"][:19].replace("T", " ")
    for columns in WIDTHS:
        code, text, stderr = on_terminal(["--db", shop["url"], "show", str(order_id)], columns)
        assert code == 0, stderr
        lines = _assert_fits(text, columns, f"show at {columns}")
        for value in (order["customer"]["email"], stamp, _money(order["total_cents"])):
            assert _line_with(lines, value), f"show at {columns}: {value!r} not whole:\n{text}"
        event = order["events"][0]
        event_stamp = event["created_at"][:19].replace("T", " ")
        assert _line_with(lines, event_stamp, event["actor"]), text
        words = " ".join(text.split())
        assert event["reason"] in words or columns < 120, f"the reason is all there:\n{text}"


# --- stored values are data ------------------------------------------------------------------

HOSTILE_NAME = "[/x] [bold red]Mallory\x1b[2J\x07"
HOSTILE_EMAIL = "[red]evil@x.io"
HOSTILE_REASON = (
    "ok\r\x1b[31mFAKE\x1b[0m \u202eevil\u202c \u2066iso\u2069 \x9b1m bell\x07 tab\there"
)
FORBIDDEN = ("\x1b", "\x07", "\r", "\u202e", "\u202c", "\u2066", "\u2069", "\x9b", "\t")


def _arrange_hostile(url: str) -> int:
    with opened(url):
        customer = add_customer(HOSTILE_EMAIL, HOSTILE_NAME)
        order = add_order(customer, "paid", [("[b]SKU\x1b]0;title\x07", 1, 499)], created_at=T0)
        OrderEvent.insert(
            order=order,
            from_status="draft",
            to_status="paid",
            reason=HOSTILE_REASON,
            actor="[i]\u202eactor",
            created_at=T0,
        ).execute()
    return order


def test_stored_values_are_never_markup_nor_control_characters(cli, db_url):
    order = _arrange_hostile(db_url)
    runs = {
        "list": cli(db_url, "list"),
        "summary": cli(db_url, "summary"),
        "show": cli(db_url, "show", str(order)),
    }
    for name, result in runs.items():
        assert result.exit_code == 0, (name, describe(result))
        assert "Traceback" not in result.stdout + result.stderr
        assert HOSTILE_EMAIL in result.stdout, f"{name} shows the email as stored:\n{result}"
        for char in FORBIDDEN:
            assert char not in result.stdout, f"{name}: {char!r} reached the output"
    assert "[/x] [bold red]Mallory\\x1b[2J\\x07" in runs["summary"].stdout
    show = runs["show"].stdout
    for escaped in ("ok\\r\\x1b[31mFAKE\\x1b[0m", "\\u202eevil\\u202c", "\\u2066iso\\u2069"):
        assert escaped in show, f"{escaped!r} shown as a visible escape:\n{show}"
    assert "\\x9b1m bell\\x07 tab\\there" in show
    assert "[i]\\u202eactor" in show and "[b]SKU\\x1b]0;title\\x07" in show


def test_json_and_csv_carry_stored_values_unchanged(cli, db_url):
    order = _arrange_hostile(db_url)
    shown = json.loads(cli(db_url, "show", str(order), "--format", "json").stdout)
    assert shown["customer"]["name"] == HOSTILE_NAME
    assert shown["events"][0]["reason"] == HOSTILE_REASON
    listed = json.loads(cli(db_url, "list", "--format", "json").stdout)
    assert [row["email"] for row in listed] == [HOSTILE_EMAIL]
    summary = cli(db_url, "summary", "--format", "csv").stdout
    assert HOSTILE_NAME in summary


def test_tables_with_colour_forced_through_a_pipe_are_never_cut(cli, db_url):
    """`FORCE_COLOR=1 ordercli list | less -R`: colour may come, the width does not."""
    long_email = "a" * 90 + "@example.com"
    with opened(db_url):
        add_order(add_customer(long_email, "Long"), "paid", created_at=T0)
    for command in ("list", "summary"):
        result = cli(db_url, command, env={"FORCE_COLOR": "1", "COLUMNS": "80", "TERM": "xterm"})
        assert result.exit_code == 0, describe(result)
        plain = ANSI.sub("", result.stdout)
        assert any(long_email in line for line in plain.splitlines()), plain
        assert "…" not in plain


# --- closed sets, usage errors, help, completion ---------------------------------------------


def test_closed_sets_match_case_insensitively(cli, shop):
    url = shop["url"]
    lower = cli(url, "list", "--status", "paid", "--status", "shipped", "--format", "json")
    upper = cli(url, "list", "-s", "PAID", "-s", "Shipped", "--format", "JSON")
    assert upper.exit_code == 0, describe(upper)
    assert json.loads(upper.stdout) == json.loads(lower.stdout) != []
    assert cli(url, "summary", "-f", "Csv").stdout.startswith("customer_id,")


def test_usage_errors_read_as_plain_words_naming_the_valid_values(cli):
    for args, name in (
        (["list", "--status", "payed"], "'--status'"),
        (["list", "--format", "xml"], "'--format'"),
    ):
        result = cli(None, *args)
        assert result.exit_code == 2, describe(result)
        message = " ".join(result.stderr.split())
        assert "Usage: ordercli list" in message and name in message, message
        assert re.search(r"is not one of '\w+', '\w+', '\w+'", message), message
        for internal in ("Value error", "Input should", "pydantic", "Traceback", "<bool>"):
            assert internal not in message, message


def _all_help_commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    return [[], *([name] for name in group.commands)]  # type: ignore[attr-defined]


def test_no_help_shows_a_bool_placeholder(cli):
    for command in _all_help_commands():
        result = cli(None, *command, "--help")
        assert result.exit_code == 0, describe(result)
        assert "<bool>" not in result.stdout and "BOOLEAN" not in result.stdout, result.stdout
        assert "_utf8_text" not in result.stdout and "<int" not in result.stdout, result.stdout


def _complete(words: str, env: dict[str, str] | None = None) -> list[str]:
    parts = words.split(" ")
    done = run_script(
        [],
        env={
            "_ORDERCLI_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(parts) - 1),
            **(env or {}),
        },
    )
    assert done.returncode == 0, describe(done)
    return done.stdout.split()


@pytest.mark.subprocess
def test_shell_completion_of_a_status_a_format_and_a_command():
    assert _complete("ordercli list --status p") == ["paid"]
    assert _complete("ordercli list --status ") == ["draft", "paid", "shipped", "cancelled"]
    assert _complete("ordercli list -f j") == ["json"]
    assert _complete("ordercli li") == ["list"]
    assert {"seed", "summary", "show"} <= set(_complete("ordercli s"))
