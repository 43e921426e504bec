"""Start-up time of every ordercli command, as a ratio to the venv's `python -c pass`.

    python benchmarks/startup.py [--runs 10] [--workdir /tmp/ordercli-startup]
        [--pg-url postgresql://root@127.0.0.1:5432/ordercli_startup]

Whole-process wall time of the installed console script (looked up next to this
interpreter), each run alternated with a run of `python -c pass` from the same
interpreter, so a slow patch of a shared machine lands on both: only the ratios of one
run mean anything. The dataset is 10,000 orders (`ordercli seed --count 10000 --seed 1`),
as a new user would have it. With `--pg-url` (a database the user may fill; it is created
if missing and seeded if it holds fewer than 10,000 orders) the same commands run on
PostgreSQL too.
A Markdown table goes to stdout, progress to stderr. Issue 11's targets (on the wall-time
ratio) are printed beside each ratio; the CPU-time ratio (user + system of the child, from
wait4) is printed too, because on a loaded machine a waiting process's wall time says more
about the other jobs than about ordercli.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PYTHON = sys.executable
SCRIPT = str(Path(sys.executable).with_name("ordercli"))
ORDERS = 10_000

# (label, arguments after `--db URL`, target ratio on SQLite, target on PostgreSQL)
COMMANDS: list[tuple[str, list[str], float | None, float | None]] = [
    ("--help", ["--help"], 8, None),
    ("list --help", ["list", "--help"], 8, None),
    ("--version", ["--version"], None, None),
    ("list --limit 1", ["list", "--limit", "1"], 10, 14),
    ("list --limit 1 -f json", ["list", "--limit", "1", "-f", "json"], 10, 14),
    ("list --limit 1 -f csv", ["list", "--limit", "1", "-f", "csv"], 10, 14),
    ("show ID", ["show", "{id}"], 10, 14),
    ("show ID -f json", ["show", "{id}", "-f", "json"], 10, 14),
    ("summary --limit 5", ["summary", "--limit", "5"], 12, 14),
    ("summary --limit 5 -f json", ["summary", "--limit", "5", "-f", "json"], 12, 14),
    ("customers --limit 5", ["customers", "--limit", "5"], None, None),
    ("revenue --by month", ["revenue", "--by", "month"], None, None),
    ("pay ID --dry-run", ["pay", "{draft}", "--dry-run"], None, None),
    ("ship ID --dry-run", ["ship", "{paid}", "--dry-run"], None, None),
    ("cancel ID --dry-run", ["cancel", "{paid}", "--dry-run"], None, None),
    ("archive ID --undo", ["archive", "{id}", "--undo"], None, None),
    ("migrate", ["migrate"], None, None),
]


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one whole process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode})")
    return seconds, usage.ru_utime + usage.ru_stime


def _ensure_database(url: str) -> None:
    """CREATE DATABASE for the PostgreSQL URL's database if it does not exist yet."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = conninfo_to_dict(url).get("dbname")
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        print(f"creating database {name}", file=sys.stderr)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))


def _ensure_seeded(url: str) -> dict[str, int]:
    """The newest order's id (`id`) and the newest draft and paid ones' (for the dry-run
    moves, which a refused status would end with exit 1), after seeding up to 10,000."""
    listed = subprocess.run(
        [SCRIPT, "--db", url, "list", "--limit", "0", "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    count = len(json.loads(listed.stdout))
    if count < ORDERS:
        print(f"seeding {ORDERS - count} orders into {url.split('@')[-1]}", file=sys.stderr)
        subprocess.run(
            [SCRIPT, "--db", url, "seed", "--count", str(ORDERS - count), "--seed", "1"],
            stdout=subprocess.DEVNULL,
            check=True,
        )
    ids = {}
    for key, status in (("id", []), ("draft", ["--status", "draft"]), ("paid", ["-s", "paid"])):
        newest = subprocess.run(
            [SCRIPT, "--db", url, "list", *status, "--limit", "1", "-f", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        ids[key] = int(json.loads(newest.stdout)[0]["id"])
    return ids


Row = tuple[str, float, float, float, float, float | None]


def measure(url: str, runs: int, pg: bool) -> list[Row]:
    """Per command: medians of the baseline's and the command's wall time, the wall
    ratio, the CPU-time ratio (less sensitive to other jobs on a shared machine), target."""
    order_ids = _ensure_seeded(url)
    rows = []
    for label, args, sqlite_target, pg_target in COMMANDS:
        target = pg_target if pg else sqlite_target
        argv = [SCRIPT, "--db", url, *(a.format(**order_ids) for a in args)]
        _run(argv)  # warm the page cache
        base: list[tuple[float, float]] = []
        command: list[tuple[float, float]] = []
        for _ in range(runs):
            base.append(_run([PYTHON, "-c", "pass"]))
            command.append(_run(argv))
        b = statistics.median(w for w, _ in base)
        c = statistics.median(w for w, _ in command)
        cpu = statistics.median(u for _, u in command) / statistics.median(u for _, u in base)
        rows.append((label, b, c, c / b, cpu, target))
        print(f"{label}: {c * 1000:.0f} ms, {c / b:.1f}x wall, {cpu:.1f}x cpu", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ordercli-startup"))
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    targets = [("SQLite", f"sqlite:///{args.workdir / 'orders.db'}", False)]
    if args.pg_url:
        _ensure_database(args.pg_url)
        targets.append(("PostgreSQL", args.pg_url, True))
    print(f"Start-up, medians of {args.runs} alternated runs (`{SCRIPT}` vs `{PYTHON} -c pass`)")
    print()
    print(
        "| engine | command | `python -c pass` ms | command ms | wall ratio | CPU ratio | target |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for engine, url, pg in targets:
        for label, base, command, ratio, cpu, target in measure(url, args.runs, pg):
            goal = f"≤ {target:g}×" if target else ""
            mark = "" if target is None or ratio <= target else " (over)"
            print(
                f"| {engine} | `{label}` | {base * 1000:.1f} | {command * 1000:.1f} "
                f"| {ratio:.1f}×{mark} | {cpu:.1f}× | {goal} |"
            )


if __name__ == "__main__":
    main()
