"""The fault suite at a larger scale, on demand, with a table of what it did per backend.

    python tests/fault_report.py --scale 4 --backends sqlite,postgresql,mysql [--no-restart]

Runs tests/test_faults.py (ORDERCLI_FAULT_SCALE=--scale: more kill points, rounds, longer
concurrent runs) and then tests/test_bad_input.py and tests/test_errors.py through pytest,
and prints a markdown table: faults injected by kind, bad inputs tried, invariant checks
and violations, test outcomes and time, per backend. Every number is counted during the
run (`faults.record`, `faults.checked` append JSON lines to ORDERCLI_FAULT_REPORT), so the
table cannot drift from what the tests do. Exits 1 if a test failed or an invariant
violation was counted (a violation is recorded before its assertion fails).

The same module is the pytest plugin the runs load (`-p fault_report`): it tells the
tests which backend the running test is on, counts test outcomes, and deselects the
backends not asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Generator, Iterable
from pathlib import Path

import pytest
from faults import REPORT_BACKEND_ENV, REPORT_ENV, record

ROOT = Path(__file__).resolve().parent.parent
NO_BACKEND = "none"  # tests that reach no test database (password leaks, missing drivers)
KNOWN_BACKENDS = ("sqlite", "postgresql", "mysql", "pgbouncer")
# Tests that take no db_url are attributed by the backend fixture they take, directly or
# named in a parameter (test_server_session_killed_during_seed), else by their name.
FIXTURES = {
    "pgbouncer_url": "pgbouncer",
    "postgres_url": "postgresql",
    "mysql_url": "mysql",
    "sqlite_url": "sqlite",
}
NAMES = {"pgbouncer": "pgbouncer", "postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}

FAULTS = {
    "seed kills": "seed SIGKILLed at a polled kill point",
    "cancel kills": "cancel SIGKILLed inside its transaction",
    "ship kills": "ship (of 20,000 ids) SIGKILLed inside its transaction",
    "server restarts": "server restarted under a seed",
    "server sessions ended": "session ended by the server under a seed",
    "lock timeouts": "server lock_timeout under a write",
    "connection faults": "connection refused / wrong password, role, database",
    "disk faults": "read-only or uncreatable SQLite file, full disk (SQLite, PostgreSQL)",
}
CONCURRENCY = {
    "concurrent runs": "concurrent runs (seeds, cancels, readers at once)",
    "concurrent commands": "commands in those concurrent runs",
}
CHECKS = {
    "bad inputs": "bad inputs tried",
    "invariant checks": "invariant checks run",
    "invariant violations": "**invariant violations found (must be 0)**",
    "tests passed": "tests passed",
    "tests failed": "tests failed",
    "tests skipped": "tests skipped",
    "test seconds": "test time, s (sum of test durations)",
}


# --- the pytest plugin ----------------------------------------------------------------------


def backend_of(item: pytest.Item) -> str:
    """The backend a test runs on: db_url's parameter (whatever conftest provides), else
    a backend fixture it takes, else a backend in its name, else NO_BACKEND."""
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec else {}
    if "db_url" in params:
        return str(params["db_url"])
    taken = [*getattr(item, "fixturenames", ()), *map(str, params.values())]
    for fixture, backend in FIXTURES.items():
        if fixture in taken:
            return backend
    name = getattr(item, "originalname", item.name)
    return next((backend for word, backend in NAMES.items() if word in name), NO_BACKEND)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--report-backends",
        default="",
        help="comma-separated backends to run (tests on no database always run)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = {b for b in str(config.getoption("report_backends")).split(",") if b}
    if not wanted:
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (keep if backend_of(item) in wanted | {NO_BACKEND} else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    os.environ[REPORT_BACKEND_ENV] = backend_of(item)  # read by faults.record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """One outcome per test (its call's, or its setup's if that failed or skipped). Here,
    not in pytest_runtest_logreport: under xdist that runs again in the controller."""
    report = yield
    record("test seconds", round(report.duration, 3))
    if report.when == "call" or not report.passed:
        record(f"tests {report.outcome}")
    return report


# --- running and reporting ------------------------------------------------------------------


def run_pytest(args: list[str], env: dict[str, str]) -> tuple[int, float]:
    """pytest in a child process (ORDERCLI_FAULT_SCALE is read at import); rc, seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fault_report", *args], cwd=ROOT, env=env
    )
    return done.returncode, time.monotonic() - started


def tally(lines: Iterable[str]) -> tuple[dict[str, Counter[str]], Counter[tuple[str, str]]]:
    """Counts by backend and kind, and the violations by (backend, what)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    violations: Counter[tuple[str, str]] = Counter()
    for line in lines:
        event = json.loads(line)
        counts[event["backend"]][event["kind"]] += event["count"]
        if event["kind"] == "invariant violations":
            violations[event["backend"], event.get("what", "?")] += event["count"]
    return counts, violations


def table(counts: dict[str, Counter[str]]) -> str:
    """Markdown: a row per kind of event, a column per backend seen, and a total."""
    backends = [b for b in KNOWN_BACKENDS if b in counts]
    backends += sorted(b for b in counts if b not in (*KNOWN_BACKENDS, NO_BACKEND))
    backends += [NO_BACKEND] if NO_BACKEND in counts else []
    total: Counter[str] = sum(counts.values(), Counter())
    columns = [counts[b] for b in backends] + [total]
    for column in columns:  # a computed row: every fault kind together
        column["faults injected"] = sum(column[kind] for kind in FAULTS)
    seen = {kind for column in columns for kind in column}
    total_label = "**faults injected** (the kinds below)"
    labels = {"faults injected": total_label, **FAULTS, **CONCURRENCY, **CHECKS}
    labels.update({kind: kind for kind in sorted(seen - labels.keys())})  # new kinds show too

    def cell(value: float, kind: str) -> str:
        return f"{value:,.1f}" if kind == "test seconds" else f"{int(value):,}"

    names = [b if b != NO_BACKEND else "no database" for b in backends]
    lines = ["| | " + " | ".join([*names, "total"]) + " |", "|---" * (len(names) + 2) + "|"]
    for kind, label in labels.items():
        lines.append(f"| {label} | " + " | ".join(cell(c[kind], kind) for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=4, help="ORDERCLI_FAULT_SCALE (default 4)")
    parser.add_argument("--backends", default="", help="e.g. sqlite,postgresql (default: all)")
    parser.add_argument(
        "--no-restart",
        action="store_true",
        help="skip the test that restarts the PostgreSQL server (a shared server)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="xdist workers for the bad-input tests (0: none)"
    )
    parser.add_argument("--events", type=Path, help="keep the JSON lines in this file")
    options = parser.parse_args(argv)

    events = options.events or Path(tempfile.mkstemp(prefix="fault-report-", suffix=".jsonl")[1])
    events.write_text("")
    env = {
        **os.environ,
        REPORT_ENV: str(events),
        "ORDERCLI_FAULT_SCALE": str(options.scale),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])
        ),
    }
    common = ["-q", "--report-backends", options.backends]
    faults = [
        "tests/test_faults.py",
        *common,
        *(["-k", "not restart"] if options.no_restart else []),
    ]
    bad_input = ["tests/test_bad_input.py", "tests/test_errors.py", *common]
    bad_input += ["-n", str(options.workers)] if options.workers else []
    fault_rc, fault_s = run_pytest(faults, env)
    bad_rc, bad_s = run_pytest(bad_input, env)

    counts, violations = tally(events.read_text().splitlines())
    if not options.events:
        events.unlink()
    command = shlex.join(["python", "tests/fault_report.py", *(argv or sys.argv[1:])])
    print(f"\n## Fault report (ORDERCLI_FAULT_SCALE={options.scale})\n\n`{command}`\n")
    print(table(counts))
    print(
        f"\nWall time: faults {fault_s:,.0f} s, bad input and errors {bad_s:,.0f} s, "
        f"total {fault_s + bad_s:,.0f} s. pytest exit codes: {fault_rc}, {bad_rc}."
    )
    for (backend, what), n in sorted(violations.items()):
        print(f"VIOLATION on {backend}: {what} (x{n})")
    unmatched = [b for b in options.backends.split(",") if b and b not in counts]
    if unmatched:  # a misspelt name would otherwise just drop that backend's tests
        print(f"No test ran on: {', '.join(unmatched)}")
    failed = fault_rc != 0 or bad_rc != 0 or bool(violations) or bool(unmatched)
    print("Result: FAILED" if failed else "Result: passed, 0 invariant violations")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
