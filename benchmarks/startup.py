"""Start-up time of every ordercli command, as a ratio to the venv's `python -c pass`.

    python benchmarks/startup.py [--runs 10] [--workdir /tmp/ordercli-startup]
        [--pg-url postgresql://root@127.0.0.1:5432/ordercli_startup]

Whole-process wall time of the installed console script (looked up next to this
interpreter), each run alternated with a run of `python -c pass` from the same
interpreter, so a slow patch of a shared machine lands on both: only the ratios of one
run mean anything. The dataset is 10,000 orders (`ordercli seed --count 10000 --seed 1`),
as a new user would have it. With `--pg-url` (a database the user may fill; it is seeded
if it holds fewer than 10,000 orders) the same commands run on PostgreSQL too.
A Markdown table goes to stdout, progress to stderr. Issue 11's targets are printed
beside each ratio.
"""

from __future__ import annotations

import argparse
import json
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
    ("cancel ID --dry-run", ["cancel", "{id}", "--dry-run"], None, None),
    ("archive ID --undo", ["archive", "{id}", "--undo"], None, None),
    ("migrate", ["migrate"], None, None),
]


def _run(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return seconds


def _ensure_seeded(url: str) -> int:
    """The newest order's id, after seeding the database up to 10,000 orders."""
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
    newest = subprocess.run(
        [SCRIPT, "--db", url, "list", "--limit", "1", "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(newest.stdout)[0]["id"])


def measure(url: str, runs: int, pg: bool) -> list[tuple[str, float, float, float, float | None]]:
    order_id = _ensure_seeded(url)
    rows = []
    for label, args, sqlite_target, pg_target in COMMANDS:
        target = pg_target if pg else sqlite_target
        argv = [SCRIPT, "--db", url, *(a.format(id=order_id) for a in args)]
        _run(argv)  # warm the page cache
        base: list[float] = []
        command: list[float] = []
        for _ in range(runs):
            base.append(_run([PYTHON, "-c", "pass"]))
            command.append(_run(argv))
        b, c = statistics.median(base), statistics.median(command)
        rows.append((label, b, c, c / b, target))
        print(f"{label}: {c * 1000:.0f} ms, {c / b:.1f}x", file=sys.stderr)
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
        targets.append(("PostgreSQL", args.pg_url, True))
    print(f"Start-up, medians of {args.runs} alternated runs (`{SCRIPT}` vs `{PYTHON} -c pass`)")
    print()
    print("| engine | command | `python -c pass` ms | command ms | ratio | target |")
    print("|---|---|---:|---:|---:|---:|")
    for engine, url, pg in targets:
        for label, base, command, ratio, target in measure(url, args.runs, pg):
            goal = f"≤ {target:g}×" if target else ""
            mark = "" if target is None or ratio <= target else " (over)"
            print(
                f"| {engine} | `{label}` | {base * 1000:.1f} | {command * 1000:.1f} "
                f"| {ratio:.1f}×{mark} | {goal} |"
            )


if __name__ == "__main__":
    main()
