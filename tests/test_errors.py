"""Bad input: usage errors exit 2, operational errors exit 1 with one `Error:` line.

Every case also proves that nothing was written: a small dataset is arranged first
and compared row by row afterwards. Database URLs that cannot be used must never
leak their password, whatever the command, the failure or `--echo-sql`.
"""

from __future__ import annotations

import datetime
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from faults import checked, record
from helpers import Run, add_customer, add_order, describe, opened

from ordercli.models import Customer, Order, OrderEvent, OrderItem

STATUSES = ("draft", "paid", "shipped", "cancelled")
FORMATS = ("table", "json", "csv")
SENTINEL = "S3ntinel"
PG_BASE = os.environ.get("ORDERCLI_TEST_POSTGRES_URL") or "postgresql://root@127.0.0.1:5432/test"
BOX = re.compile(r"[│╭╮╰╯─┃━]")


# --- arranging and checking ------------------------------------------------------------------


def _snapshot() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "customer": list(Customer.select().order_by(Customer.id).tuples()),
        "orders": list(Order.select().order_by(Order.id).tuples()),
        "order_item": list(OrderItem.select().order_by(OrderItem.id).tuples()),
        "order_event": list(OrderEvent.select().order_by(OrderEvent.id).tuples()),
    }


def _arrange(url: str) -> tuple[dict[str, int], dict[str, list[tuple[Any, ...]]]]:
    """Two customers, an order in every status, one event; returns ids and the snapshot."""
    with opened(url):
        alice = add_customer("alice@example.com", "Alice")
        bob = add_customer("bob@example.com", "Bob")
        ids = {
            "paid": add_order(alice, "paid", [("SKU-1", 2, 499), ("SKU-2", 1, 1499)]),
            "draft": add_order(alice, "draft"),
            "shipped": add_order(bob, "shipped"),
            "cancelled": add_order(bob, "cancelled"),
        }
        OrderEvent.insert(
            order=ids["cancelled"],
            from_status="paid",
            to_status="cancelled",
            reason="arranged",
            actor="pytest",
            created_at=datetime.datetime(2026, 1, 2, 3, 4, 5),
        ).execute()
        ids["missing"] = max(ids.values()) + 1000
        snapshot = _snapshot()
    assert all(snapshot.values()), "the arranged dataset has rows in every table"
    return ids, snapshot


def _assert_unchanged(url: str, before: dict[str, list[tuple[Any, ...]]]) -> None:
    with opened(url):
        after = _snapshot()
    for table in before:
        unchanged = after[table] == before[table]
        assert checked("nothing written", unchanged), f"{table} was written by a failing command"


def _flat(text: str) -> str:
    """Rich's error panel without its box and line wrapping."""
    return " ".join(BOX.sub(" ", text).split())


def _assert_one_error_line(result: Run) -> str:
    assert result.exit_code == 1, describe(result)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, describe(result)
    assert result.stdout == "", describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), describe(result)
    return lines[0]


def _assert_usage_error(result: Run, mentions: tuple[str, ...]) -> None:
    assert result.exit_code == 2, describe(result)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, describe(result)
    assert "\x1b[" not in output, "no colour codes when not on a terminal"
    assert result.stdout == "", describe(result)
    message = _flat(result.stderr)
    assert "Usage: ordercli" in message, describe(result)
    for fragment in mentions:
        assert fragment.lower() in message.lower(), f"{fragment!r} not in {message!r}"


# --- usage errors (exit 2) and domain errors (exit 1) ----------------------------------------


def _row(command: str, exit_code: int, *mentions: str, id: str) -> Any:
    """`command` is split on spaces; {paid}, {draft}, {shipped}, {cancelled} and
    {missing} become the arranged ids; `mentions` must all be in the message."""
    return pytest.param(command.split(), exit_code, mentions, id=id)


BAD_INPUT = [
    _row("list --status bogus", 2, "--status", "bogus", *STATUSES, id="list-unknown-status"),
    _row("list --format xml", 2, "--format", "xml", *FORMATS, id="list-format-xml"),
    _row("cancel {paid} --format xml", 2, "--format", *FORMATS, id="cancel-format-xml"),
    _row("seed --count 0", 2, "--count", id="seed-count-0"),
    _row("seed --count -5", 2, "--count", id="seed-count-negative"),
    _row("seed --count abc", 2, "--count", id="seed-count-abc"),
    _row("seed --count {trillion}", 2, "--count", id="seed-count-10e12"),
    _row("seed --count 5 --customers 0", 2, "--customers", id="seed-customers-0"),
    _row("list --limit -1", 2, "--limit", id="list-limit-negative"),
    _row("cancel abc", 2, "order_id", id="cancel-non-numeric-id"),
    _row("show abc", 2, "order_id", id="show-non-numeric-id"),
    _row("archive abc", 2, "order_id", id="archive-non-numeric-id"),
    _row("cancel 0", 2, "order_id", id="cancel-id-0"),
    _row("show 0", 2, "order_id", id="show-id-0"),
    _row("cancel {paid} -1", 2, "-1", id="cancel-negative-id"),
    _row("cancel", 2, "order_id", id="cancel-no-ids"),
    _row("cancel {big}", 2, "order_id", id="cancel-id-2**63"),
    _row("show {big}", 2, "order_id", id="show-id-2**63"),
    _row("cancel {paid} {huge}", 2, "order_id", id="cancel-id-10**30"),
    _row("archive {paid} {huge}", 2, "order_id", id="archive-id-10**30"),
    _row("list --since yesterday", 2, "--since", "yesterday", id="list-since-yesterday"),
    _row("list --since 2026-02-30", 2, "--since", "2026-02-30", id="list-since-impossible-date"),
    _row(
        "list --since 2026-03-01 --until 2026-02-01",
        2,
        "--since",
        "--until",
        id="list-since-after-until",
    ),
    _row(
        "summary --since 2026-03-01 --until 2026-02-01",
        2,
        "--since",
        "--until",
        id="summary-since-after-until",
    ),
    _row("show {missing}", 1, "{missing}", id="show-unknown-order"),
    _row("cancel {missing}", 1, "{missing}", id="cancel-unknown-order"),
    _row("archive {missing}", 1, "{missing}", id="archive-unknown-order"),
    _row("cancel {paid} {shipped} --format json", 1, "{shipped}", "shipped", id="cancel-shipped"),
    _row("cancel {paid} {draft} {missing}", 1, "{missing}", id="cancel-one-unknown-among-valid"),
    _row(
        "archive {paid} {draft} {missing} --format json",
        1,
        "{missing}",
        id="archive-one-unknown-among-valid",
    ),
]


@pytest.mark.parametrize(("args", "exit_code", "mentions"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(db_url, cli, args, exit_code, mentions):
    record("bad inputs")
    ids, before = _arrange(db_url)
    values = {**ids, "big": str(2**63), "huge": str(10**30), "trillion": str(10**12)}
    argv = [arg.format(**values) for arg in args]
    result = cli(db_url, *argv)
    wanted = tuple(fragment.format(**ids) for fragment in mentions)
    if exit_code == 1:
        line = _assert_one_error_line(result)
        for fragment in wanted:
            assert fragment in line, f"{fragment!r} not in {line!r}"
    else:
        _assert_usage_error(result, wanted)
    _assert_unchanged(db_url, before)


def test_refused_cancel_rolls_back_with_and_without_echo(db_url, cli):
    """With --echo-sql the refusal is still one Error: line after the SQL lines."""
    ids, before = _arrange(db_url)
    for echo in (False, True):
        record("bad inputs")
        result = cli(db_url, "cancel", str(ids["draft"]), str(ids["shipped"]), echo=echo)
        assert result.exit_code == 1, describe(result)
        assert "Traceback" not in result.stdout + result.stderr
        other = [line for line in result.stderr.splitlines() if not line.startswith("SQL: ")]
        assert len(other) == 1 and other[0].startswith("Error:"), describe(result)
        assert bool(result.sql) == echo, describe(result)
    _assert_unchanged(db_url, before)


def test_no_arguments_shows_help_with_exit_2(db_url, cli, tmp_path, monkeypatch):
    """Typer's no_args_is_help: the help on stdout, but exit code 2 (as for a usage error)."""
    _, before = _arrange(db_url)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    record("bad inputs")
    result = cli(None, env={"ORDERCLI_DATABASE_URL": db_url})
    assert result.exit_code == 2, describe(result)
    assert "Traceback" not in result.stdout + result.stderr
    help_text = _flat(result.stdout)
    assert "Usage: ordercli" in help_text
    commands = ("seed", "list", "summary", "cancel", "show", "archive", "migrate")
    for command in (*commands, "pay", "ship", "customers", "revenue"):
        assert re.search(rf"(?<![\w-]){command}(?![\w-])", help_text), command
    _assert_unchanged(db_url, before)
    assert list(cwd.iterdir()) == [], "no default database is created"


# --- database errors (exit 1) ----------------------------------------------------------------


def _pg_url(
    user: str | None = None,
    password: str | None = None,
    port: int | None = None,
    dbname: str | None = None,
) -> str:
    """A URL to the test PostgreSQL server with parts replaced; `password` goes in as given."""
    parts = urlsplit(PG_BASE)
    user = user or parts.username or "root"
    auth = user if password is None else f"{user}:{password}"
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return parts._replace(
        netloc=f"{auth}@{host}:{port or parts.port or 5432}",
        path=f"/{dbname or parts.path.lstrip('/') or 'postgres'}",
    ).geturl()


def _pg_database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect(PG_BASE, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


UNKNOWN_DB = f"ordercli_no_such_db_{uuid.uuid4().hex[:8]}"

# (id, url from tmp_path, fragment of the Error: line, check that nothing was created)
BAD_DATABASES: list[tuple[str, Callable[[Path], str], str, Callable[[Path], bool]]] = [
    ("unknown-scheme", lambda p: "oracle://x/y", "oracle", lambda p: True),
    ("sqlite-without-path", lambda p: "sqlite://", "sqlite", lambda p: True),
    ("sqlite-root-without-path", lambda p: "sqlite:///", "sqlite", lambda p: True),
    ("postgres-refused", lambda p: _pg_url(port=1), "refused", lambda p: True),
    (
        "postgres-unknown-database",
        lambda p: _pg_url(dbname=UNKNOWN_DB),
        UNKNOWN_DB,
        lambda p: not _pg_database_exists(UNKNOWN_DB),
    ),
    (
        "sqlite-missing-directory",
        lambda p: f"sqlite:///{p / 'no' / 'such' / 'dir' / 'orders.db'}",
        "sqlite",
        lambda p: not (p / "no").exists(),
    ),
    (
        "sqlite-unknown-query-option",
        lambda p: f"sqlite:///{p / 'q.db'}?foo=bar",
        "",
        lambda p: not (p / "q.db").exists(),
    ),
    (
        "sqlite-bad-timeout-option",
        lambda p: f"sqlite:///{p / 'q.db'}?timeout=abc",
        "",
        lambda p: not (p / "q.db").exists(),
    ),
]


@pytest.mark.parametrize(
    ("bad_url", "fragment", "nothing_created"),
    [pytest.param(url, fragment, check, id=name) for name, url, fragment, check in BAD_DATABASES],
)
def test_unusable_database_is_one_error_line(
    db_url, cli, tmp_path, monkeypatch, bad_url, fragment, nothing_created
):
    """--db wins over ORDERCLI_DATABASE_URL: the env database must stay untouched."""
    ids, before = _arrange(db_url)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for command in (
        ("seed", "--count", "3", "--format", "json"),
        ("cancel", str(ids["paid"])),
        ("list", "--format", "json"),
        ("migrate",),
    ):
        record("bad inputs")
        result = cli(bad_url(tmp_path), *command, env={"ORDERCLI_DATABASE_URL": db_url})
        line = _assert_one_error_line(result)
        assert fragment.lower() in line.lower(), line
    assert nothing_created(tmp_path)
    assert list(cwd.iterdir()) == [], "no default database is created instead"
    _assert_unchanged(db_url, before)


# --- the password never shows ----------------------------------------------------------------


def _forbidden(password_in_url: str) -> set[str]:
    """Every spelling of the password a leak could use, and the sentinel itself."""
    decoded = unquote(password_in_url)
    forms = {password_in_url, decoded, quote(decoded, safe=""), quote(decoded)}
    if SENTINEL in decoded:
        forms.add(SENTINEL)
    return forms


# (id, password exactly as written in the URL, URL builder taking that password)
SECRET_URLS: list[tuple[str, str, Callable[[str], str]]] = [
    ("refused-plain", "S3ntinel-pw", lambda pw: _pg_url(password=pw, port=1)),
    ("refused-at-sign-raw", "S3ntinel@pw", lambda pw: _pg_url(password=pw, port=1)),
    ("refused-at-sign-encoded", "S3ntinel%40pw", lambda pw: _pg_url(password=pw, port=1)),
    ("refused-slash-encoded", "S3ntinel%2Fpw", lambda pw: _pg_url(password=pw, port=1)),
    ("refused-percent-encoded", "S3ntinel%25pw", lambda pw: _pg_url(password=pw, port=1)),
    ("refused-all-encoded", "S3nt%40in%2Fel%25pw", lambda pw: _pg_url(password=pw, port=1)),
    ("bad-user-plain", "S3ntinel-pw", lambda pw: _pg_url("no_such_role_x", pw)),
    ("bad-user-at-sign-raw", "S3ntinel@pw", lambda pw: _pg_url("no_such_role_x", pw)),
    ("bad-user-slash-percent", "S3ntinel%2F%25%40pw", lambda pw: _pg_url("no_such_role_x", pw)),
    ("bad-user-postgres-scheme", "S3ntinel-pw",
     lambda pw: _pg_url("no_such_role_x", pw).replace("postgresql://", "postgres://", 1)),
    ("unknown-database", "S3ntinel-pw", lambda pw: _pg_url(password=pw, dbname=UNKNOWN_DB)),
    ("port-out-of-range", "S3ntinel-pw", lambda pw: _pg_url(password=pw, port=99999)),
    ("password-in-query", "S3ntinel-pw",
     lambda pw: _pg_url("no_such_role_x") + f"?password={pw}"),
    ("unknown-scheme", "S3ntinel-pw", lambda pw: f"mysqlx://root:{pw}@127.0.0.1:1/shop"),
    ("sqlite-with-host", "S3ntinel-pw", lambda pw: f"sqlite://root:{pw}@localhost/orders.db"),
    ("unknown-host", "S3ntinel-pw",
     lambda pw: f"postgresql://root:{pw}@no-such-host.invalid:5432/shop"),
    ("unencoded-hash", "S3ntinel#pw", lambda pw: _pg_url(password=pw, port=1)),
    ("unencoded-question-mark", "S3ntinel?pw", lambda pw: _pg_url(password=pw, port=1)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("password", "make_url"),
    [pytest.param(pw, make, id=name) for name, pw, make in SECRET_URLS],
)
def test_password_never_appears_in_output(cli, tmp_path, monkeypatch, password, make_url):
    """Not per backend: these URLs never reach the test databases (the fallback
    ORDERCLI_DATABASE_URL points at a file that must not come into existence)."""
    fallback = tmp_path / "fallback.db"
    monkeypatch.chdir(tmp_path)
    url = make_url(password)
    forbidden = _forbidden(password)
    env = {"ORDERCLI_DATABASE_URL": f"sqlite:///{fallback}"}
    for echo in (False, True):
        for command in (("list", "--format", "json"), ("seed", "--count", "2"), ("cancel", "1")):
            record("bad inputs", 2)  # the URL as --db, then in ORDERCLI_DATABASE_URL
            result = cli(url, *command, echo=echo, env=env)
            output = result.stdout + result.stderr
            leaked = sorted(form for form in forbidden if form in output)
            assert checked("password never shown", not leaked), (
                f"password leaked as {leaked}:\n{describe(result)}"
            )
            _assert_one_error_line(result)
            env_echo = cli(
                None,
                *command,
                env={
                    **env,
                    "ORDERCLI_DATABASE_URL": url,
                    "ORDERCLI_ECHO_SQL": "1" if echo else "0",
                },
            )
            leaked = sorted(form for form in forbidden if form in env_echo.stdout + env_echo.stderr)
            assert checked("password never shown", not leaked), (
                f"password (from the env) leaked as {leaked}:\n{describe(env_echo)}"
            )
            _assert_one_error_line(env_echo)
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing was created"


def test_password_never_appears_when_the_connection_works(postgres_url, cli):
    """PostgreSQL only (SQLite URLs carry no password): a whole session with --echo-sql.

    The test server trusts local connections, so a sentinel password is accepted; a
    password already in ORDERCLI_TEST_POSTGRES_URL is itself the secret to look for."""
    parts = urlsplit(postgres_url)
    if parts.password:
        url, forbidden = postgres_url, _forbidden(parts.password)
    else:
        password = "S3ntinel%2F%25%40pw"
        url = _pg_url(password=password, dbname=parts.path.lstrip("/"))
        forbidden = _forbidden(password)
    runs = [
        cli(url, "migrate", echo=True),
        cli(url, "seed", "--count", "3", "--seed", "1", echo=True),
        cli(url, "list", "--format", "json", echo=True),
        cli(url, "summary", echo=True),
        cli(url, "show", "1", echo=True),
        cli(url, "archive", "1", "2", "3", "--format", "csv", echo=True),
    ]
    seen_sql = False
    for result in runs:
        output = result.stdout + result.stderr
        leaked = sorted(form for form in forbidden if form in output)
        assert checked("password never shown", not leaked), (
            f"password leaked as {leaked}:\n{describe(result)}"
        )
        seen_sql = seen_sql or bool(result.sql)
    assert seen_sql, "--echo-sql printed statements"
    assert [r.exit_code for r in runs] == [0] * len(runs), [describe(r) for r in runs]


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql://root@127.0.0.1/x", "psycopg", "postgres"),
        ("mysql://root@127.0.0.1/x", "pymysql", "mysql"),
    ],
)
def test_a_missing_driver_names_the_extra_to_install(cli, monkeypatch, url, module, extra):
    """`pip install .` without the extra: say what to install, not Peewee's driver guess."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == module else real_find_spec(name, *args),
    )
    record("bad inputs")
    result = cli(url, "list")
    assert result.exit_code == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"Error: {'PostgreSQL' if extra == 'postgres' else 'MySQL/MariaDB'} needs the "
        f"{module} driver: pip install 'ordercli[{extra}]'"
    ]
