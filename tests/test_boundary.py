"""The CLI boundary: what start-up imports, unexpected failures, and output that cannot
be written (a full disk, a closed stdout, a reader that stops early).

Import boundaries are checked by module name, never by time (benchmarks/startup.py
has the times): a SQLite command never imports a server driver, `--help` never imports
Peewee, json and csv output never import Rich, and nothing imports pydantic."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import add_customer, add_order, describe, opened

SCRIPT = Path(sys.executable).with_name("ordercli")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ordercli"]
# Runs ordercli's console entry point in a fresh interpreter and reports, at exit, the
# top-level modules it imported.
PROBE = """\
import atexit, sys
atexit.register(lambda: sys.stderr.write(
    "MODULES " + " ".join(sorted({m.split(".")[0] for m, v in sys.modules.items() if v})) + "\\n"
))
sys.argv = ["ordercli", *sys.argv[1:]]
from ordercli.cli import main
main()
"""
SERVER_DRIVERS = {"psycopg", "psycopg2", "pymysql", "MySQLdb"}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERCLI_")}
    env.update({"ORDERCLI_ACTOR": "pytest", **(extra or {})})
    return env


def _succeeded(argv: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, capture_output=True, text=True, env=_env(), timeout=120, check=False
    )
    assert done.returncode == 0, describe(done)
    return done


def _imported(*args: str) -> set[str]:
    done = _succeeded([sys.executable, "-c", PROBE, *args])
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return set(line.split()[1:])


@pytest.fixture
def seeded(db_url: str) -> str:
    _succeeded([*COMMAND, "--db", db_url, "seed", "--count", "20", "--seed", "3"])
    return db_url


@pytest.mark.subprocess
def test_help_imports_neither_peewee_nor_rich_nor_pydantic():
    for args in (["--help"], ["list", "--help"], ["--version"]):
        modules = _imported(*args)
        assert not modules & {"peewee", "rich", "pydantic", *SERVER_DRIVERS}, (args, modules)


@pytest.mark.subprocess
def test_commands_import_only_the_driver_of_their_engine(seeded, request):
    backend = request.node.callspec.params["db_url"]
    driver = {"sqlite": set(), "mysql": {"pymysql"}}.get(backend, {"psycopg"})
    for args in (
        ["list", "--limit", "1", "-f", "json"],
        ["summary", "--limit", "5", "-f", "csv"],
        ["show", "1", "-f", "json"],
        ["cancel", "1", "--dry-run", "-f", "json"],
    ):
        modules = _imported("--db", seeded, *args)
        assert "peewee" in modules, modules
        assert modules & SERVER_DRIVERS == driver, (args, modules & SERVER_DRIVERS)
        assert "rich" not in modules, f"{args}: json/csv output never loads Rich"
        assert "pydantic" not in modules, args
    table = _imported("--db", seeded, "list", "--limit", "1")
    assert "rich" in table and table & SERVER_DRIVERS == driver and "pydantic" not in table


# --- the last-resort handler -----------------------------------------------------------------


def test_an_unexpected_exception_is_one_error_line(cli, db_url, monkeypatch):
    import ordercli.queries

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom [red]not markup[/red]\nsecond line")

    monkeypatch.setattr(ordercli.queries, "summarize_customers", broken)
    result = cli(db_url, "summary")
    assert result.exit_code == 1, describe(result)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    assert lines[0].startswith("Error: unexpected failure in summary: RuntimeError: boom")
    assert "[red]not markup[/red] second line" in lines[0]
    assert "ORDERCLI_DEBUG=1" in lines[0]
    with pytest.raises(RuntimeError, match="boom"):
        cli(db_url, "summary", env={"ORDERCLI_DEBUG": "1"})


def test_rendering_copes_with_values_of_unexpected_types():
    """Rows other writers left may hold NULLs, text in a money column, epoch integers,
    bytes: the table shows them as they are, json and csv write them, nothing raises."""
    import io
    from decimal import Decimal

    from ordercli.render import build_table, write_csv, write_json_array

    fields = ("id", "email", "status", "total_cents", "item_count", "is_archived", "created_at")
    rows = [
        (1, None, None, "abc", None, None, 1767225600),
        (2, b"bytes\xff@x.io", "paid ", 12.5, Decimal("3"), 1, "2026-03-01T12:00:00+02:00"),
        (3, "a@b.io", "paid", 10**20, 0, False, datetime.datetime(1, 1, 1)),
    ]
    table = build_table(rows, fields, width=80, keep=("email", "created_at"))
    assert table.row_count == 3
    out = io.StringIO()
    write_json_array(rows, fields, out)
    assert len(json.loads(out.getvalue())) == 3
    out = io.StringIO()
    write_csv(rows, fields, out)
    assert out.getvalue().count("\n") == 4


# --- output that cannot be written -----------------------------------------------------------

FORMATS = ("table", "json", "csv")


def _script(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], text=True, env=_env(), timeout=120, check=False, **kwargs
    )


@pytest.mark.subprocess
def test_a_full_disk_or_closed_stdout_is_one_error_line(seeded):
    for fmt in FORMATS:
        for where in ("full", "closed"):
            args = ["--db", seeded, "list", "--limit", "0", "-f", fmt]
            if where == "full":
                with open("/dev/full", "w") as full:
                    done = _script(args, stdout=full, stderr=subprocess.PIPE)
            else:
                done = _script(
                    args, stdout=None, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1)
                )
            lines = done.stderr.splitlines()
            assert done.returncode == 1, (fmt, where, done.stderr)
            assert len(lines) == 1 and lines[0].startswith("Error: cannot write"), lines
            assert "Traceback" not in done.stderr and "committed" not in done.stderr


@pytest.mark.subprocess
def test_a_change_committed_before_the_output_failed_says_so(db_url):
    with opened(db_url):
        customer = add_customer("a@example.com")
        ids = [add_order(customer, "paid") for _ in range(3)]
    with open("/dev/full", "w") as full:
        done = _script(
            ["--db", db_url, "cancel", *map(str, ids), "-f", "json"],
            stdout=full,
            stderr=subprocess.PIPE,
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "Error: cannot write the output: No space left on device; the change was committed"
    ]
    listed = _script(
        ["--db", db_url, "list", "-f", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert {row["status"] for row in json.loads(listed.stdout)} == {"cancelled"}


@pytest.mark.subprocess
def test_a_reader_that_stops_early_ends_the_command_quietly(db_url):
    """`| head -1`: exit 0 and nothing on stderr in every format (on MariaDB, no
    SSCursor.close tracebacks either). 2,000 orders overflow the pipe's buffer."""
    _script(
        ["--db", db_url, "seed", "--count", "2000", "--seed", "5"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for fmt in FORMATS:
        proc = subprocess.Popen(
            [*COMMAND, "--db", db_url, "list", "--limit", "0", "-f", fmt],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader leaves
        stderr = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
        assert first, fmt
        assert (code, stderr) == (0, ""), (fmt, code, stderr)


def test_every_url_scheme_has_a_backend():
    """urls.py knows the schemes without importing backends.py (and so Peewee)."""
    from ordercli import backends, urls

    assert list(urls.EXAMPLES) == list(backends.SCHEMES)
