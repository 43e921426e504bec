"""Benchmark ordercli against the raw database drivers, on SQLite, PostgreSQL and MySQL.

    python benchmarks/bench.py [--quick | --smoke] [--backends sqlite,postgresql,mysql]
        [--sizes 10000,100000,1000000] [--reps 5] [--sections 1,2,3,4,5,6,7] [--keep]
        [--pg-url postgresql://root@127.0.0.1/postgres]
        [--mysql-url mysql://root@127.0.0.1:3306/] [--workdir /tmp/ordercli-bench]

Progress goes to stderr; one Markdown report goes to stdout at the end. Every timing is
the median of `--reps` repetitions after one warm-up run, and the runs that a table
compares (ordercli and its raw-driver baseline) are interleaved, so drift on a noisy
machine hits both sides alike: only ratios from the same run mean anything.

Sections: 1 seed throughput, 2 seed of the large sizes (wall time, peak RSS), 3 summary,
4 list, 5 summary against a naive N+1 implementation, 6 CSV export, 7 start-up time.
It uses only ordercli's public entry points (db.connect, seeding.seed, the queries'
Select builders) so that it keeps working while ordercli's internals change. See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import peewee
from common import (
    ALL_SECTIONS,
    PG_ITERSIZE,
    QUICK_SECTIONS,
    QUICK_SIZES,
    RAW_EXPORT,
    REPO,
    SEED_SECTION_MAX,
    SMALL_SIZES_MAX,
    SMOKE_SIZE,
    STARTUP_REPS_MIN,
    Dataset,
    Loader,
    Measured,
    PostgresTarget,
    SeedRows,
    SqliteTarget,
    Stats,
    Table,
    Target,
    Trial,
    _started,
    add_rows,
    build_dataset,
    csv_list,
    dataset_db,
    generate_seed_rows,
    header,
    log,
    matching_customers,
    median_times,
    ms,
    must_be_one,
    num,
    open_dataset,
    open_targets,
    ordercli_command,
    ordercli_executable,
    rare_needle,
    ratio,
    retried,
    run_child,
    run_section,
    seed_command,
    short,
    timed,
    value,
    yes,
)
from playhouse.test_utils import count_queries

from ordercli.db import Connection, connect
from ordercli.models import Customer, Order, OrderItem, Status
from ordercli.queries import list_orders, list_query, summarize_customers, summary_query
from ordercli.seeding import seed

# --------------------------------------------------------------------------- 1. seed


def bench_seed(targets: Sequence[Target], sizes: Sequence[int], reps: int, workdir: Path) -> Table:
    table = Table(
        "1. seed: rows/s (customers + orders + items), a fresh database for every run",
        [
            "backend",
            "orders",
            "rows",
            "ordercli",
            "rows/s",
            "raw baseline",
            "rows/s",
            "ordercli/raw",
        ],
    )
    table.notes.append(
        f"Medians of {reps} runs after a warm-up. Run *r* seeds with `seed_value=r`, and the raw "
        "baselines insert the very rows seed draws for it (generated before the clock starts, "
        "explicit ids) into an ordercli-migrated database, in one transaction. `seed()` is "
        "timed in-process on an open connection; the command is the whole `ordercli --db URL "
        "seed --count N --seed r --format json` process (interpreter start, imports, connect, "
        "schema check, seed). The ratio is of rows/s: 1.00 = as fast as the raw driver."
    )
    for target in targets:
        for size in sizes:
            log(f"1. seed: {target.name}, {size:,} orders, {reps + 1} runs of each variant")
            try:
                label = f"{target.name} {size:,}"
                add_rows(table, target, label, seed_rows, target, size, reps, workdir)
            finally:
                target.drop_scratch()
    return table


def seed_rows(target: Target, size: int, reps: int, workdir: Path) -> list[list[str]]:
    stats = median_times(seed_trials(target, size, workdir), reps)
    rows = num(stats["`seed()` in-process"].rows)
    return [
        [
            target.name,
            num(size),
            rows,
            ours,
            num(stats[ours].rows_per_second),
            raw,
            num(stats[raw].rows_per_second),
            ratio(stats[ours].rows_per_second / stats[raw].rows_per_second),
        ]
        for ours in ("`seed()` in-process", "`ordercli seed` command")
        for raw in target.raw_loaders()
    ]


def seed_trials(target: Target, size: int, workdir: Path) -> dict[str, Trial]:
    generated: dict[int, SeedRows] = {}

    def rows_for(rep: int) -> SeedRows:
        if rep not in generated:  # keep one repetition's rows, shared by the baselines
            generated.clear()
            generated[rep] = generate_seed_rows(size, rep)
        return generated[rep]

    def in_process(rep: int) -> Measured:
        with connect(target.fresh()) as conn:
            started = time.perf_counter()
            result = seed(conn, size, seed_value=rep)
            seconds = time.perf_counter() - started
        return Measured(seconds, result.customers + result.orders + result.items)

    def command(rep: int) -> Measured:
        run, rows = seed_command(target.fresh(), size, rep, workdir / "seed.json")
        return replace(run, rows=rows)

    def raw(load: Loader) -> Trial:
        def trial(rep: int) -> Measured:
            rows = rows_for(rep)
            return Measured(load(target.fresh(), rows), rows.count)

        return trial

    trials: dict[str, Trial] = {
        "`seed()` in-process": in_process,
        "`ordercli seed` command": command,
    }
    trials.update({label: raw(load) for label, load in target.raw_loaders().items()})
    return trials


# --------------------------------------------------------------------------- 2. large seeds


def large_seed_table(runs: Sequence[tuple[Target, int, Measured | str]]) -> Table:
    table = Table(
        "2. seed of the large datasets: the whole command, one run each",
        ["backend", "orders", "rows", "wall s", "rows/s", "peak RSS MB"],
    )
    table.notes.append(
        "`ordercli --db URL seed --count N --seed 1 --format json` into an empty database, "
        "run once from a small wrapper process, so that RUSAGE_CHILDREN's maxrss is this "
        "child's alone. These databases are the large datasets of the sections below."
    )
    for target, size, run in runs:
        if isinstance(run, str):
            table.notes.append(f"**{target.name} {size:,} failed**: {run}")
            continue
        table.rows.append(
            [
                target.name,
                num(size),
                num(run.rows),
                f"{run.seconds:.1f}",
                num(run.rows / run.seconds),
                f"{run.rss_mb:.0f}",
            ]
        )
    return table


# --------------------------------------------------------------------------- 3. summary


def bench_summary(datasets: Sequence[Dataset], reps: int) -> Table:
    table = Table(
        "3. summary: top 50 customers by money spent",
        [
            "backend",
            "orders",
            "ordercli ms",
            "raw ms",
            "ordercli/raw",
            "statements",
            "same SQL",
            "same rows",
        ],
    )
    table.notes.append(
        "`summarize_customers(limit=50)` in-process against the identical SQL and parameters "
        "(from `summary_query(limit=50)`) through the raw driver (execute + fetchall). "
        "Statements counted with `playhouse.test_utils.count_queries()` (the contract says 1); "
        "same SQL: the statement ordercli ran is the one the raw driver runs."
    )
    for ds in datasets:
        log(f"3. summary: {ds.label}")
        add_rows(table, ds.target, ds.label, summary_rows, ds, reps)
    return table


def summary_rows(ds: Dataset, reps: int) -> list[list[str]]:
    with connect(ds.url) as conn:
        result = compare_read(
            conn,
            ds,
            lambda: summarize_customers(conn, limit=50),
            summary_query(conn, limit=50),
            reps,
        )
    ours = [(value(row, "customer_id"), value(row, "spent_cents")) for row in result.ours_rows]
    same = ours == [(row[0], int(row[5])) for row in result.raw_rows]
    return [
        [
            ds.target.name,
            num(ds.orders),
            ms(result.ours.ms),
            ms(result.raw.ms),
            ratio(result.ours.seconds / result.raw.seconds),
            must_be_one(result.statements),
            yes(result.same_sql),
            yes(same),
        ]
    ]


@dataclass(frozen=True)
class ReadComparison:
    ours: Stats
    raw: Stats
    statements: int  # what ordercli ran, counted by count_queries()
    same_sql: bool  # ordercli ran exactly the SQL and parameters the raw driver runs
    ours_rows: list[Any]
    raw_rows: list[Any]


def compare_read(
    handle: Connection, ds: Dataset, ours: Callable[[], list[Any]], query: peewee.Query, reps: int
) -> ReadComparison:
    """ordercli's `ours()` against `query`'s SQL, as compiled on `handle` (the dataset
    opened by ordercli), run through the raw driver (fetchall)."""
    sql, params = handle.sql(query)
    conn = ds.target.raw(ds.url)

    def raw() -> list[Any]:
        return ds.target.fetchall(conn, sql, params)

    try:
        with count_queries() as counter:
            ours_rows = ours()
        executed = [record.msg for record in counter.get_queries()]
        same_sql = [(text, list(values)) for text, values in executed] == [(sql, params)]
        stats = median_times(
            {"ordercli": lambda _rep: timed(ours), "raw": lambda _rep: timed(raw)}, reps
        )
        return ReadComparison(
            stats["ordercli"], stats["raw"], counter.count, same_sql, ours_rows, raw()
        )
    finally:
        conn.close()


# --------------------------------------------------------------------------- 4. list


def bench_list(datasets: Sequence[Dataset], reps: int) -> Table:
    table = Table(
        "4. list: status paid, email substring, newest 50",
        [
            "backend",
            "orders",
            "needle",
            "customers matching",
            "rows",
            "ordercli ms",
            "raw ms",
            "ordercli/raw",
            "statements",
            "same SQL",
            "same ids",
        ],
    )
    table.notes.append(
        "`list(list_orders(statuses=[Status.PAID], email=needle, limit=50))` against the "
        "identical SQL of `list_query(...)` through the raw driver (execute + fetchall). The "
        "common needle `user1` matches about one customer in nine (the 50 rows are among the "
        "newest few hundred orders); the rare one, the local part of one customer's email "
        "with its run tag, matches a single customer and a handful of orders."
    )
    for ds in datasets:
        log(f"4. list: {ds.label}")
        add_rows(table, ds.target, ds.label, list_rows, ds, reps)
    return table


def list_rows(ds: Dataset, reps: int) -> list[list[str]]:
    with connect(ds.url) as conn:
        return [
            list_row(conn, ds, kind, needle, reps)
            for kind, needle in (("common", "user1"), ("rare", rare_needle()))
        ]


def list_row(conn: Connection, ds: Dataset, kind: str, needle: str, reps: int) -> list[str]:
    result = compare_read(
        conn,
        ds,
        lambda: list(list_orders(conn, statuses=[Status.PAID], email=needle, limit=50)),
        list_query(conn, statuses=[Status.PAID], email=needle, limit=50),
        reps,
    )
    same = [value(row, "id") for row in result.ours_rows] == [row[0] for row in result.raw_rows]
    return [
        ds.target.name,
        num(ds.orders),
        f"{kind} `{needle}`",
        num(matching_customers(needle)),
        num(len(result.ours_rows)),
        ms(result.ours.ms),
        ms(result.raw.ms),
        ratio(result.ours.seconds / result.raw.seconds),
        must_be_one(result.statements),
        yes(result.same_sql),
        yes(same),
    ]


# --------------------------------------------------------------------------- 5. N+1


def naive_summary(limit: int = 50) -> list[tuple[int, int]]:
    """Summary the way the original Django view computed it: a query per customer for
    their orders and a query per order for its items, summed and sorted in Python."""
    spent_statuses = [Status.PAID.value, Status.SHIPPED.value]
    spent: list[tuple[int, int]] = []
    for customer in Customer.select().where(Customer.is_active == True):  # noqa: E712
        total = 0
        orders = Order.select().where(
            (Order.customer == customer.id)
            & Order.status.in_(spent_statuses)
            & (Order.is_archived == False)  # noqa: E712
        )
        for order in orders:
            for item in OrderItem.select().where(OrderItem.order == order.id):
                total += item.quantity * item.unit_price_cents
        spent.append((customer.id, total))
    spent.sort(key=lambda pair: (-pair[1], pair[0]))
    return spent[:limit]


def bench_n_plus_one(datasets: Sequence[Dataset], reps: int) -> Table:
    table = Table(
        "5. summary before/after: naive N+1 through Peewee models vs ordercli's one SELECT "
        "(smallest dataset)",
        [
            "backend",
            "orders",
            "customers",
            "N+1 ms",
            "N+1 statements",
            "ordercli ms",
            "ordercli statements",
            "speed-up",
            "same top 50",
        ],
    )
    table.notes.append(
        "The naive version (`naive_summary` in bench.py) loads the active customers, then "
        "each one's paid/shipped orders, then each order's items, sums quantity × unit price "
        "in Python, sorts and keeps 50. The counting run of each side is its warm-up. "
        "Same top 50 compares (customer_id, spent_cents)."
    )
    for ds in datasets:
        log(f"5. N+1 summary: {ds.label}")
        add_rows(table, ds.target, ds.label, n_plus_one_rows, ds, reps)
    return table


def n_plus_one_rows(ds: Dataset, reps: int) -> list[list[str]]:
    with connect(ds.url) as conn:
        with count_queries() as naive_count:
            naive = naive_summary(50)
        with count_queries() as ours_count:
            ours = summarize_customers(conn, limit=50)
        same = naive == [(value(r, "customer_id"), value(r, "spent_cents")) for r in ours]
        stats = median_times(
            {
                "naive": lambda _rep: timed(lambda: naive_summary(50)),
                "ordercli": lambda _rep: timed(lambda: summarize_customers(conn, limit=50)),
            },
            reps,
            warmup=False,  # the counting runs above were the warm-ups
        )
    a, b = stats["naive"], stats["ordercli"]
    return [
        [
            ds.target.name,
            num(ds.orders),
            num(ds.customers),
            ms(a.ms),
            num(naive_count.count),
            ms(b.ms),
            must_be_one(ours_count.count),
            f"{a.seconds / b.seconds:,.0f}×",
            yes(same),
        ]
    ]


# --------------------------------------------------------------------------- 6. export

EXPORT_COLUMNS = (
    "id",
    "customer_id",
    "email",
    "status",
    "total_cents",
    "item_count",
    "is_archived",
    "created_at",
)


def bench_export(datasets: Sequence[Dataset], reps: int, workdir: Path) -> Table:
    table = Table(
        "6. export: every order as CSV to /dev/null (largest dataset)",
        [
            "backend",
            "orders",
            "ordercli s",
            "rows/s",
            "peak RSS MB",
            "raw s",
            "rows/s",
            "peak RSS MB",
            "ordercli/raw (time)",
            "ordercli/raw (RSS)",
        ],
    )
    table.notes.append(
        "ordercli: `ordercli --db URL list --limit 0 --format csv > /dev/null`. Raw: a child "
        "Python that runs the identical SQL (`list_query(limit=0)`) through the driver and "
        "writes the rows with `csv.writer` to /dev/null; SQLite iterates the cursor, "
        f"PostgreSQL uses a server-side cursor in a transaction (itersize {PG_ITERSIZE:,}), "
        "MySQL an unbuffered PyMySQL `SSCursor`. "
        "Both are whole processes, timed and measured (maxrss) from a wrapper process."
    )
    for ds in datasets:
        log(f"6. export: {ds.label}")
        add_rows(table, ds.target, ds.label, export_rows, ds, reps, workdir)
    return table


def export_rows(ds: Dataset, reps: int, workdir: Path) -> list[list[str]]:
    with connect(ds.url) as conn:
        sql, params = conn.sql(list_query(conn, limit=0))
    spec = workdir / f"export-{ds.target.name}.json"
    spec.write_text(
        json.dumps(
            {
                "sql": sql,
                "params": params,
                "columns": EXPORT_COLUMNS,
                "pragmas": [],
                "itersize": PG_ITERSIZE,
                **ds.target.export_spec(ds.url),
            }
        )
    )
    ours = ordercli_command(ds.url, "list", "--limit", "0", "--format", "csv")
    raw = [sys.executable, "-c", RAW_EXPORT, ds.target.name, ds.target.export_target(ds.url)]
    try:
        stats = median_times(
            {
                "ordercli": lambda _rep: replace(run_child(ours), rows=ds.orders),
                "raw": lambda _rep: replace(run_child([*raw, str(spec)]), rows=ds.orders),
            },
            reps,
        )
    finally:
        spec.unlink()
    a, b = stats["ordercli"], stats["raw"]
    return [
        [
            ds.target.name,
            num(ds.orders),
            f"{a.seconds:.2f}",
            num(a.rows_per_second),
            f"{a.rss_mb:.0f}",
            f"{b.seconds:.2f}",
            num(b.rows_per_second),
            f"{b.rss_mb:.0f}",
            ratio(a.seconds / b.seconds),
            ratio(a.rss_mb / b.rss_mb),
        ]
    ]


# --------------------------------------------------------------------------- 7. start-up


def bench_startup(ds: Dataset, reps: int) -> Table:
    reps = max(reps, STARTUP_REPS_MIN)
    table = Table(
        "7. start-up: whole-process wall time (SQLite)",
        ["command", "ms", "× `python -c pass`"],
    )
    table.notes.append(
        f"Medians of {reps} runs after a warm-up, interleaved, stdout to /dev/null; the "
        f"`list` runs against the {ds.size:,}-order SQLite dataset."
    )
    commands = {
        "`python -c pass`": [sys.executable, "-c", "pass"],
        "`ordercli --help`": [ordercli_executable(), "--help"],
        "`ordercli --db sqlite:///… list`": ordercli_command(ds.url, "list"),
    }
    log(f"7. start-up: {len(commands)} commands × {reps + 1} runs")

    def trial(command: list[str]) -> Trial:
        return lambda _rep: run_child(command)

    stats = median_times({label: trial(command) for label, command in commands.items()}, reps)
    baseline = stats["`python -c pass`"].seconds
    for label, result in stats.items():
        table.rows.append([label, ms(result.ms), ratio(result.seconds / baseline)])
    return table


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark ordercli against the raw SQLite, PostgreSQL and MySQL drivers.",
        epilog="Progress goes to stderr, the Markdown report to stdout.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="sizes 10k and 100k only; seed timed at 10k only; sections 1,3,4,6,7 "
        "unless --sections says otherwise (under 2 minutes)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="SQLite only, 1,000 orders, every section but 2 (seconds): CI runs it so the "
        "benchmark cannot rot; exits 1 if any section fails",
    )
    parser.add_argument(
        "--sections",
        type=csv_list(int),
        help="which sections to run, e.g. 3,4 (default: all; with --quick: 1,3,4,6,7)",
    )
    parser.add_argument("--backends", default="sqlite,postgresql", type=csv_list(str))
    parser.add_argument("--sizes", default="10000,100000,1000000", type=csv_list(int))
    parser.add_argument("--reps", default=5, type=int, help="measured runs per timing (≥ 5)")
    parser.add_argument("--pg-url", default="postgresql://root@127.0.0.1/postgres")
    parser.add_argument(
        "--mysql-url",
        default="mysql://root@127.0.0.1:3306/",
        help="a MySQL/MariaDB server where the user may CREATE DATABASE (the path is ignored)",
    )
    parser.add_argument("--workdir", default="/tmp/ordercli-bench", type=Path)
    parser.add_argument(
        "--keep", action="store_true", help="keep the dataset databases (bench_<size>)"
    )
    parser.add_argument(
        "--scale",
        type=csv_list(int),
        metavar="SIZES",
        help="instead: the scaling curve (benchmarks/scale.py) at these sizes, e.g. "
        "1000000,3000000,10000000; writes docs/scale.json and docs/scale.png",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.backends, args.sizes = ["sqlite"], [SMOKE_SIZE]
        args.sections = args.sections or [n for n in ALL_SECTIONS if n != 2]
    if args.reps < 5:
        parser.error("--reps must be at least 5")
    unknown = set(args.backends) - {"sqlite", "postgresql", "mysql"}
    if unknown:
        parser.error(
            f"unknown backend(s): {', '.join(sorted(unknown))}; use sqlite,postgresql,mysql"
        )
    if any(size < 8 for size in args.sizes):
        parser.error("every size must be at least 8 orders")
    args.sizes = sorted(set(args.sizes))
    if args.quick:
        args.sizes = [size for size in args.sizes if size <= SMALL_SIZES_MAX] or list(QUICK_SIZES)
    if args.sections is None:
        args.sections = QUICK_SECTIONS if args.quick else ALL_SECTIONS
    if not set(args.sections) <= set(ALL_SECTIONS):
        parser.error(f"sections are numbered {ALL_SECTIONS[0]} to {ALL_SECTIONS[-1]}")
    args.sections = frozenset(args.sections)
    return args


def run(args: argparse.Namespace, targets: Sequence[Target], tables: list[Table]) -> None:
    """Run the chosen sections, appending each one's table to `tables` as it completes."""
    workdir: Path = args.workdir
    sizes: list[int] = args.sizes
    reps: int = args.reps
    sections: frozenset[int] = args.sections

    seed_sizes = [size for size in sizes if size <= SEED_SECTION_MAX]
    if args.quick:
        seed_sizes = seed_sizes[:1]
    if 1 in sections and seed_sizes:
        tables.append(
            run_section("1. seed", lambda: bench_seed(targets, seed_sizes, reps, workdir))
        )

    datasets: list[Dataset] = []
    large: list[tuple[Target, int, Measured | str]] = []  # section 2: a run or an error
    if sections - {1, 2}:  # the read sections need a dataset of every size
        to_build = sizes
    elif 2 in sections:  # section 2 alone: only the large seeds
        to_build = [size for size in sizes if size > SMALL_SIZES_MAX]
    else:
        to_build = []
    for target in targets:
        for size in to_build:
            is_large = size > SMALL_SIZES_MAX
            timing = "one timed run, section 2" if is_large else "not timed"
            log(f"dataset: {target.name}, ordercli seed --count {size:,} --seed 1 ({timing})")
            label = f"dataset {target.name} {size:,}"
            try:
                built = retried(target, label, build_dataset, target, size, workdir)
                dataset = retried(target, label, open_dataset, target, size)
            except Exception as exc:  # no dataset: the read sections do without it
                log(f"{label} failed again: {short(exc)}")
                if is_large:
                    large.append((target, size, short(exc)))
                continue
            if is_large:
                large.append((target, size, built))
            datasets.append(dataset)
    if 2 in sections and large:
        tables.append(large_seed_table(large))
    if not datasets:
        return

    # Per backend: a backend whose large seed failed still gets its largest dataset.
    by_target = [[ds for ds in datasets if ds.target is t] for t in targets]
    smallest = [min(group, key=lambda ds: ds.size) for group in by_target if group]
    largest = [max(group, key=lambda ds: ds.size) for group in by_target if group]
    sqlite_smallest = [ds for ds in smallest if isinstance(ds.target, SqliteTarget)]
    if 3 in sections:
        tables.append(run_section("3. summary", lambda: bench_summary(datasets, reps)))
    if 4 in sections:
        tables.append(run_section("4. list", lambda: bench_list(datasets, reps)))
    if 5 in sections:
        tables.append(run_section("5. N+1", lambda: bench_n_plus_one(smallest, reps)))
    if 6 in sections:
        tables.append(run_section("6. export", lambda: bench_export(largest, reps, workdir)))
    if 7 in sections and sqlite_smallest:
        tables.append(run_section("7. start-up", lambda: bench_startup(sqlite_smallest[0], reps)))
    elif 7 in sections:
        skipped = Table("7. start-up: whole-process wall time (SQLite)", [])
        skipped.notes.append("Not run: it needs the SQLite backend (`--backends sqlite,…`).")
        tables.append(skipped)


def clean_up(targets: Sequence[Target], sizes: Sequence[int], keep: bool, workdir: Path) -> None:
    for target in targets:
        target.drop_scratch()
        names = [PostgresTarget.template] if isinstance(target, PostgresTarget) else []
        if not keep:
            names += [dataset_db(size) for size in sizes]
        for name in names:
            try:
                target.drop(name)
            except Exception as exc:  # report it, clean up the rest
                log(f"could not drop {name}: {short(exc)}")
        target.close()
    for leftover in ("seed.json", "seed-output.json"):
        (workdir / leftover).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scale:
        import scale  # beside this file; both share common.py

        return scale.main(
            [
                *("--sizes", ",".join(map(str, args.scale))),
                *("--backends", ",".join(args.backends), "--reps", str(args.reps)),
                *("--pg-url", args.pg_url, "--mysql-url", args.mysql_url),
                *("--json", str(REPO / "docs" / "scale.json")),
                *("--chart", str(REPO / "docs" / "scale.png")),
                *(["--keep"] if args.keep else []),
            ]
        )
    args.workdir.mkdir(parents=True, exist_ok=True)
    targets, notes = open_targets(args.backends, args.pg_url, args.workdir, args.mysql_url)
    if not targets:
        plain = " ".join(note.replace("**", "") for note in notes)
        print(f"Error: no usable backend. {plain}", file=sys.stderr)
        return 1
    log(f"backends {', '.join(t.name for t in targets)}; sizes {args.sizes}; reps {args.reps}")
    head = header(targets)
    tables: list[Table] = []
    stopped = False
    try:
        run(args, targets, tables)
    except Exception as exc:  # still report what was measured before it
        stopped = True
        log(f"the benchmark stopped: {short(exc)}")
        traceback.print_exc()
        notes.append(f"**The benchmark stopped early**: {short(exc)}")
    finally:
        clean_up(targets, args.sizes, args.keep, args.workdir)
    elapsed = time.perf_counter() - _started
    load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    skipped = ", ".join(str(n) for n in ALL_SECTIONS if n not in args.sections)
    notes.append(
        f"Sizes {', '.join(f'{size:,}' for size in args.sizes)} orders"
        + (f"; sections {skipped} not run" if skipped else "")
        + (" (`--quick`: seed timed at the smallest size only)" if args.quick else "")
        + "."
    )
    notes.append(
        f"Whole benchmark: {elapsed:.0f} s (load average at the end: {load}). Times are "
        f"medians of {args.reps} runs after a warm-up; the runs compared in a row are "
        "interleaved. The machine is shared and noisy: compare ratios within this report, "
        "not absolute numbers across reports."
    )
    print(head + "\n\n" + "\n\n".join(notes) + "\n\n" + "\n\n".join(t.markdown() for t in tables))
    failed = [t.title for t in tables if t.failed] + (["the run"] if stopped else [])
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
