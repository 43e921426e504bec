"""The scaling curve: ordercli's everyday operations at 1M, 3M and 10M orders.

    python benchmarks/scale.py [--sizes 1000000,3000000,10000000] [--backends sqlite,postgresql]
        [--reps 5] [--json docs/scale.json] [--chart docs/scale.png] [--keep]
        [--pg-url postgresql://root@127.0.0.1/postgres] [--workdir /tmp/ordercli-scale]
    python benchmarks/scale.py --redraw docs/scale.json[,more.json] --chart docs/scale.png
    python benchmarks/bench.py --scale 1000000,3000000,10000000   # the same, from bench.py

For each backend and size it builds a fresh database with `ordercli seed` in a child
process (its wall time, rows/s and peak RSS are the seed figures), then times each
operation in-process through ordercli's own functions: the median of `--reps` runs after
one warm-up, which is also when the statements are counted. Process start-up (about a
quarter of a second, bench.py section 7) is the same at every size and left out, so the
curves show how the work grows. Cancels change data: every repetition cancels orders no
earlier repetition touched. Progress goes to stderr, a Markdown report to stdout; the
figures also go to `--json`, from which `--redraw` draws the chart again without the
hours of seeding.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from common import (
    BenchError,
    PostgresTarget,
    SqliteTarget,
    Target,
    csv_list,
    header,
    log,
    open_targets,
    rare_needle,
    seed_command,
)
from playhouse.test_utils import count_queries

from ordercli.db import Connection, connect, database
from ordercli.models import CANCELLABLE, Order, Status
from ordercli.orders import cancel_orders
from ordercli.queries import list_orders, show_order, summarize_customers
from ordercli.timeutil import utcnow

CANCEL_BATCH = 1000
DEFAULT_SIZES = (1_000_000, 3_000_000, 10_000_000)


@dataclass(frozen=True)
class Timing:
    backend: str
    orders: int
    operation: str
    ms: float  # median of the measured repetitions
    statements: int  # counted during the warm-up run
    rows: int  # rows the operation returned or changed


@dataclass(frozen=True)
class SeedFigures:
    backend: str
    orders: int
    seconds: float
    rows: int  # customers + orders + items written
    rows_per_second: float
    peak_rss_mb: float
    db_mb: float  # size on disk after the seed (and its ANALYZE)
    load: float = 0.0  # 1-minute load average once this size was measured (noise marker)


def operations(conn: Connection, reps: int) -> dict[str, Callable[[int], int]]:
    """The timed operations: each takes the repetition number and returns its row count.

    Called with the dataset open. The ids they touch are chosen here, before any timing:
    `show` reads a different order each time, the cancels take orders nobody cancelled."""
    now = utcnow()
    top = Order.select(Order.id).order_by(Order.id.desc()).scalar()
    needle = rare_needle()
    cancellable = [s.value for s in CANCELLABLE]
    runs = reps + 1
    stride = max(1, top // (4 * runs))  # show: a different order each repetition
    query = (
        Order.select(Order.id)
        .where(Order.id > top // 3, Order.status.in_(cancellable))
        .order_by(Order.id)
        .limit(runs * (CANCEL_BATCH + 1))
    )
    candidates: list[int] = [row[0] for row in query.tuples()]  # type: ignore[index]
    if len(candidates) < runs * (CANCEL_BATCH + 1):
        raise BenchError("not enough cancellable orders for the cancel timings")
    singles, batches = candidates[:runs], candidates[runs:]

    def rows(result: Sequence[Any]) -> int:
        return len(result)

    return {
        "summary (all time)": lambda rep: rows(summarize_customers(conn, limit=50)),
        "summary (last 30 days)": lambda rep: rows(
            summarize_customers(conn, limit=50, since=now - datetime.timedelta(days=30))
        ),
        "list newest 50": lambda rep: rows(list(list_orders(conn, limit=50))),
        "list paid, common needle `user1`": lambda rep: rows(
            list(list_orders(conn, statuses=[Status.PAID], email="user1", limit=50))
        ),
        "list paid, rare needle": lambda rep: rows(
            list(list_orders(conn, statuses=[Status.PAID], email=needle, limit=50))
        ),
        "list deep window (a month, 200 days back)": lambda rep: rows(
            list(
                list_orders(
                    conn,
                    since=now - datetime.timedelta(days=200),
                    until=now - datetime.timedelta(days=170),
                    limit=50,
                )
            )
        ),
        "show one order": lambda rep: len(show_order(conn, top // 2 + rep * stride)["items"]),
        "cancel 1 order": lambda rep: sum(r.changed for r in cancel_orders(conn, [singles[rep]])),
        "cancel 1,000 orders": lambda rep: sum(
            r.changed
            for r in cancel_orders(conn, batches[rep * CANCEL_BATCH : (rep + 1) * CANCEL_BATCH])
        ),
    }


def time_operations(target: Target, url: str, orders: int, reps: int) -> list[Timing]:
    timings = []
    with connect(url) as conn:
        for name, operation in operations(conn, reps).items():
            with count_queries() as counter:
                rows = operation(0)  # warm-up
            samples = []
            for rep in range(1, reps + 1):
                started = time.perf_counter()
                operation(rep)
                samples.append(time.perf_counter() - started)
            ms = statistics.median(samples) * 1000
            log(f"  {name}: {ms:,.1f} ms, {counter.count} statements, {rows} rows")
            timings.append(Timing(target.name, orders, name, ms, counter.count, rows))
    return timings


def size_on_disk_mb(target: Target, url: str) -> float:
    if isinstance(target, SqliteTarget):
        path = Path(target.export_target(url))
        conn = target.raw(url)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        return (
            sum(
                Path(f"{path}{s}").stat().st_size
                for s in ("", "-wal")
                if Path(f"{path}{s}").exists()
            )
            / 2**20
        )
    size_sql = {
        "postgresql": "SELECT pg_database_size(current_database())",
        "mysql": "SELECT COALESCE(SUM(data_length + index_length), 0) "
        "FROM information_schema.tables WHERE table_schema = DATABASE()",
    }[target.name]
    with connect(url):
        return float(database.obj.execute_sql(size_sql).fetchone()[0]) / 2**20


def measure(
    target: Target, size: int, reps: int, workdir: Path, keep: bool
) -> tuple[SeedFigures, list[Timing]]:
    db = f"scale_{size}"
    url = target.migrated(db)
    try:
        log(f"{target.name} {size:,}: seeding")
        run, rows = seed_command(url, size, seed_value=size, out=workdir / "seed.json")
        seed = SeedFigures(
            target.name,
            size,
            run.seconds,
            rows,
            rows / run.seconds,
            run.rss_mb,
            size_on_disk_mb(target, url),
        )
        log(f"  seed {run.seconds:,.0f} s, {rows / run.seconds:,.0f} rows/s, {seed.db_mb:,.0f} MB")
        timings = time_operations(target, url, size, reps)
        return replace(seed, load=os.getloadavg()[0]), timings
    finally:
        if not keep:
            target.drop(db)


# --------------------------------------------------------------------------- report


def slope(points: Sequence[tuple[int, float]]) -> float:
    """Least-squares slope of log(time) over log(orders): 1 grows linearly, 0 stays flat."""
    xs = [math.log10(n) for n, _ in points]
    ys = [math.log10(max(ms, 1e-3)) for _, ms in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def curves(timings: Sequence[Timing]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for t in timings:
        lines.setdefault((t.operation, t.backend), []).append((t.orders, t.ms))
    return {key: sorted(points) for key, points in lines.items()}


def markdown(results: dict[str, Any]) -> str:
    seeds = [SeedFigures(**s) for s in results["seeds"]]
    timings = [Timing(**t) for t in results["timings"]]
    sizes = sorted({s.orders for s in seeds})
    out = [results["header"], "", f"Command: `{results['command']}`", ""]
    out += ["## Seed (`ordercli seed --count N`, whole command in a child process)", ""]
    out += [
        "| backend | orders | seconds | rows written | rows/s | peak RSS MB | size on disk MB"
        " | load average after |"
    ]
    out += ["|---|---|---|---|---|---|---|---|"]
    out += [
        f"| {s.backend} | {s.orders:,} | {s.seconds:,.0f} | {s.rows:,} | {s.rows_per_second:,.0f}"
        f" | {s.peak_rss_mb:,.0f} | {s.db_mb:,.0f} | {f'{s.load:.1f}' if s.load else '–'} |"
        for s in seeds
    ]
    out += ["", "## Operations (ms, median in-process; start-up excluded)", ""]
    columns = " | ".join(f"{n:,}" for n in sizes)
    out += [f"| operation | backend | {columns} | slope | statements | rows |"]
    out += ["|---|---|" + "---|" * len(sizes) + "---|---|---|"]
    statements = {(t.operation, t.backend): t.statements for t in timings}
    rows = {(t.operation, t.backend): t.rows for t in timings if t.orders == sizes[-1]}
    for (operation, backend), points in curves(timings).items():
        by_size = dict(points)
        cells = " | ".join(f"{by_size[n]:,.1f}" if n in by_size else "–" for n in sizes)
        fitted = f"{slope(points):.2f}" if len(points) > 1 else "–"
        out.append(
            f"| {operation} | {backend} | {cells} | {fitted} | {statements[operation, backend]}"
            f" | {rows.get((operation, backend), '–')} |"
        )
    out += [
        "",
        "slope: least-squares slope of log10(ms) over log10(orders); 1.0 = linear in the "
        "data size, 0 = flat. statements: counted by Peewee during the warm-up run. rows: "
        "returned (or cancelled) at the largest size.",
    ]
    return "\n".join(out)


def draw(results: dict[str, Any], chart: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timings = [Timing(**t) for t in results["timings"]]
    lines = curves(timings)
    names = list(dict.fromkeys(t.operation for t in timings))
    colours = plt.get_cmap("tab10")
    styles = {"postgresql": "-", "sqlite": "--", "mysql": ":"}
    markers = {"postgresql": "o", "sqlite": "s", "mysql": "^"}
    fig, ax = plt.subplots(figsize=(11, 7), dpi=110)
    for (operation, backend), points in lines.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(
            xs,
            ys,
            styles.get(backend, "-."),
            marker=markers.get(backend, "x"),
            color=colours(names.index(operation) % 10),
            label=f"{operation} — {backend}"
            + (f" (slope {slope(points):.2f})" if len(points) > 1 else ""),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("orders in the database")
    ax.set_ylabel("time per operation, ms (median, in-process)")
    ax.set_title("ordercli at scale: solid = PostgreSQL, dashed = SQLite")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    chart.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(chart)
    log(f"chart written to {chart}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=list(DEFAULT_SIZES), type=csv_list(int))
    parser.add_argument("--backends", default="sqlite,postgresql", type=csv_list(str))
    parser.add_argument("--reps", default=5, type=int)
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1/postgres")
    parser.add_argument("--mysql-url", default="mysql://root@127.0.0.1:3306/")
    parser.add_argument("--workdir", default="/tmp/ordercli-scale", type=Path)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--chart", type=Path, help="draw the log-log chart (PNG) here")
    parser.add_argument(
        "--redraw",
        type=csv_list(Path),
        help="report and draw from these JSON files only (e.g. one run per backend)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    return parser.parse_args(argv)


def collect(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    args.workdir.mkdir(parents=True, exist_ok=True)
    targets, notes = open_targets(args.backends, args.pg_url, args.workdir, args.mysql_url)
    if not targets:
        raise BenchError("no backend to measure")
    results: dict[str, Any] = {
        "header": header(targets).replace("benchmark", "at scale", 1),  # names the commit
        "command": " ".join(["python benchmarks/scale.py", *argv]),
        "notes": notes,
        "seeds": [],
        "timings": [],
    }
    try:
        for target in targets:
            for size in sorted(args.sizes):
                seed, timings = measure(target, size, args.reps, args.workdir, args.keep)
                results["seeds"].append(asdict(seed))
                results["timings"].extend(asdict(t) for t in timings)
                if args.json:  # after every size: a crash late on keeps what was measured
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        for target in targets:
            if isinstance(target, PostgresTarget) and not args.keep:
                target.drop(target.template)
            target.close()
    return results


def merged(paths: Sequence[Path]) -> dict[str, Any]:
    """The figures of several runs (say, one per backend, each on a quiet machine) as one."""
    runs = [json.loads(path.read_text()) for path in paths]
    return {
        "header": "\n\n".join(run["header"] for run in runs),
        "command": " and ".join(f"`{run['command']}`" for run in runs).strip("`"),
        "notes": [note for run in runs for note in run["notes"]],
        "seeds": [seed for run in runs for seed in run["seeds"]],
        "timings": [timing for run in runs for timing in run["timings"]],
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        results = merged(args.redraw) if args.redraw else collect(args, argv)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    if args.chart:
        draw(results, args.chart)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
