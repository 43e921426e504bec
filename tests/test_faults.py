"""Fault injection: ordercli processes killed, blocked, cut off or starved mid-work.

The contract's invariants must hold "after any command or any interruption of one". Each
test here starts the installed console script, drives it to a chosen point by watching
the database through a side connection (row counts, `pg_stat_activity`, SQLite's WAL
lock byte, the process's own syscall) and then kills it, restarts the server under it or
makes its writes fail, and checks what is left. No kill point is chosen by sleeping.

ORDERCLI_FAULT_SCALE=N (default 1) multiplies the kill points, rounds and loop lengths
for a longer report run. PgBouncer tests read ORDERCLI_TEST_PGBOUNCER_URL (a transaction
pooling PgBouncer in front of the ORDERCLI_TEST_POSTGRES_URL server, with
`?prepare_threshold=none`); without it they skip, except under CI=true.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from faults import (
    GAVE_UP,
    SCALE,
    Child,
    Probe,
    assert_one_error_line,
    can_watch_syscalls,
    children,
    drop_privileges_fn,
    local_cluster,
    password_refusing_server,
    pg_pid_gone,
    pg_sessions,
    probe,
    sqlite_busy_waiting,
    sqlite_writer_pid,
    wait_until,
)
from helpers import invariant_violations, opened, scalar

from ordercli.seeding import orders_per_transaction

pytestmark = pytest.mark.subprocess

POSTGRES_ENV = "ORDERCLI_TEST_POSTGRES_URL"
PGBOUNCER_ENV = "ORDERCLI_TEST_PGBOUNCER_URL"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NO_VIOLATIONS = {"orders_without_items": 0, "wrong_totals": 0, "orphan_items": 0}
SECRET = "S3cret-fault-pw"


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: may not be skipped)", pytrace=False)
    pytest.skip(message)


def _app_name() -> str:
    return f"ordercli-fault-{uuid.uuid4().hex[:10]}"


def _assert_consistent(url: str, events: int | None = 0) -> None:
    """The invariants hold; with `events`, the order_event table has that many rows."""
    with opened(url):
        assert invariant_violations() == NO_VIOLATIONS
        if events is not None:
            assert scalar("SELECT COUNT(*) FROM order_event") == events


def _assert_usable(cli: Any, url: str) -> None:
    """A new small seed and a list still work."""
    seeded = cli(url, "seed", "--count", "100", "--format", "json")
    assert seeded.exit_code == 0, seeded.stderr
    assert json.loads(seeded.stdout)["orders"] == 100
    listed = cli(url, "list", "--limit", "5", "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 5


def _assert_usable_by_subprocess(url: str) -> None:
    with children() as started:
        started.append(Child.ordercli(url, "seed", "--count", "100", "--format", "json"))
        seeded = started[-1].wait()
        assert seeded.returncode == 0, seeded.describe()
        started.append(Child.ordercli(url, "list", "--format", "json"))
        listed = started[-1].wait()
        assert listed.returncode == 0, listed.describe()
        assert len(json.loads(listed.stdout)) == 50


def _batch_size(url: str) -> int:
    with opened(url):
        return orders_per_transaction()


# --- 1. seed killed mid-write ------------------------------------------------------------

SEED_COUNT = 300_000
# Reaching the middle or the end of a 300,000-order seed takes 10-20 s per kill; the
# default run kills a 40,000-order seed there instead (same batches, same code path:
# 10 batches on SQLite, 5 on PostgreSQL, then a partial one); scale >= 2 uses 300,000.
DEEP_SEED_COUNT = SEED_COUNT if SCALE > 1 else 40_000


def _seed_kill_points(batch: int, rng: random.Random) -> list[tuple[str, int, int]]:
    """(label, --count, orders of this run committed before the kill), cheapest first:
    the database is reused, so the deep kills (which add most rows) come last.
    10 kill points per backend at scale 1."""
    points: list[tuple[str, int, int]] = []
    for _ in range(SCALE):
        points += [("first batch", SEED_COUNT, 1)] * 3
        points += [("second batch", SEED_COUNT, batch + 1)]
        points += [("third batch", SEED_COUNT, 2 * batch + 1)]
        points += [("early", SEED_COUNT, rng.randint(1, 6 * batch)) for _ in range(3)]
    points += [("middle", DEEP_SEED_COUNT, DEEP_SEED_COUNT // 2)] * SCALE
    points += [("near the end", DEEP_SEED_COUNT, DEEP_SEED_COUNT - 2 * batch)] * SCALE
    return points


def test_seed_killed_mid_write_leaves_only_whole_batches(db_url, cli):
    """SIGKILL at 10 points of a seed: after the first batch's commit, early, in the
    middle, near the end. Only whole batches (each its own transaction) may remain, each
    order with its items and the right total, and no event; seed and list work after."""
    batch = _batch_size(db_url)  # 4,096 on SQLite, 8,192 on PostgreSQL
    rng = random.Random(20260101)
    report = []
    with probe(db_url) as side:
        for label, count, threshold in _seed_kill_points(batch, rng):
            base = side.scalar("SELECT COALESCE(MAX(id), 0) FROM orders")
            ours = f"SELECT COUNT(*) FROM orders WHERE id > {base}"
            with children() as started:
                # --customers: the default (count/8 = 37,500 customers, inserted before
                # any order) would double the time to reach the first batch.
                seed = Child.ordercli(db_url, "seed", "--count", str(count), "--customers", "2000")
                started.append(seed)
                wait_until(
                    lambda q=ours, t=threshold: side.scalar(q) >= t,
                    f"{threshold:,} committed orders ({label})",
                    watch=seed,
                    poll_s=0.005,
                )
                assert seed.kill(), f"the seed finished before the kill ({label})"
            assert seed.result().returncode == -signal.SIGKILL
            committed = side.scalar(ours)
            report.append(f"{label} of {count:,}: {committed:,}")
            assert committed >= threshold
            assert committed % batch == 0 and committed < count, (
                f"{label}: {committed} orders committed is not a whole number of "
                f"{batch}-order batches"
            )
            _assert_consistent(db_url, events=0)
            _assert_usable(cli, db_url)
    _assert_usable_by_subprocess(db_url)
    print(f"seed kill points ({db_url.split(':')[0]}): " + "; ".join(report))


# --- 2. cancel killed inside its transaction ---------------------------------------------

CANCEL_IDS = 500
LARGE_CANCEL_IDS = 20_000


def _paid_orders(cli: Any, url: str, count: int) -> list[int]:
    seeded = cli(url, "seed", "--count", str(count), "--customers", "50")
    assert seeded.exit_code == 0, seeded.stderr
    with probe(url) as side:
        side.execute("UPDATE orders SET status = 'paid'")
        return [row[0] for row in side.rows("SELECT id FROM orders ORDER BY id")]


def _cancel_outcome(side: Probe, ids: list[int]) -> str:
    """'none' or 'all'; fails on anything in between."""
    low, high = min(ids), max(ids)
    in_range = f"BETWEEN {low} AND {high}"
    cancelled = side.scalar(
        f"SELECT COUNT(*) FROM orders WHERE status = 'cancelled' AND id {in_range}"
    )
    paid = side.scalar(f"SELECT COUNT(*) FROM orders WHERE status = 'paid' AND id {in_range}")
    events = side.scalar("SELECT COUNT(*) FROM order_event")
    per_order = side.scalar(
        "SELECT COUNT(*) FROM (SELECT order_id FROM order_event GROUP BY order_id "
        "HAVING COUNT(*) <> 1) AS x"
    )
    state = (cancelled, paid, events, per_order)
    if state == (0, len(ids), 0, 0):
        return "none"
    assert state == (len(ids), 0, len(ids), 0), (
        f"cancel of {len(ids)} orders half-applied: cancelled={cancelled} paid={paid} "
        f"events={events} orders with other than one event={per_order}"
    )
    return "all"


def _reset_to_paid(side: Probe) -> None:
    side.execute("DELETE FROM order_event")
    side.execute("UPDATE orders SET status = 'paid'")


def test_cancel_blocked_inside_its_transaction_and_killed_changes_nothing(db_url, cli):
    """PostgreSQL: another session holds `LOCK TABLE order_event IN EXCLUSIVE MODE`, so
    the cancel stops at its INSERT of the events, after its UPDATE of the 500 orders, with
    its transaction open (seen in pg_stat_activity); it is killed there.
    SQLite: another connection holds BEGIN IMMEDIATE, so the cancel waits in its own
    BEGIN IMMEDIATE (seen as the busy handler's sleep); SQLite has a single writer, so
    this kill lands before any write. Either way nothing may change; a plain cancel
    afterwards cancels all 500 with 500 events."""
    ids = _paid_orders(cli, db_url, CANCEL_IDS)
    assert len(ids) == CANCEL_IDS
    argv = ["cancel", *map(str, ids), "--reason", "fault", "--format", "json"]
    with probe(db_url) as side:
        for _ in range(2 * SCALE):
            if side.kind == "postgresql":
                _kill_cancel_blocked_on_postgres(db_url, side, argv)
            else:
                _kill_cancel_blocked_on_sqlite(db_url, side, argv)
            assert _cancel_outcome(side, ids) == "none"
            _assert_consistent(db_url, events=0)
    done = cli(db_url, *argv)
    assert done.exit_code == 0, done.stderr
    assert all(row["changed"] for row in json.loads(done.stdout))
    with probe(db_url) as side:
        assert _cancel_outcome(side, ids) == "all"
    _assert_consistent(db_url, events=CANCEL_IDS)


def _kill_cancel_blocked_on_postgres(url: str, side: Probe, argv: list[str]) -> None:
    app = _app_name()
    with probe(url) as locker, children() as started:
        with locker.conn.transaction():
            locker.execute("LOCK TABLE order_event IN EXCLUSIVE MODE")
            cancel = Child.ordercli(url, *argv, env={"PGAPPNAME": app})
            started.append(cancel)
            blocked = wait_until(
                lambda: [s for s in pg_sessions(side, app) if s[2] == "Lock"],
                "the cancel to wait for the order_event lock",
                watch=cancel,
            )
            pid, _, _, in_transaction, query = blocked[0]
            assert in_transaction, "the cancel's transaction is open"
            assert "order_event" in query and query.lstrip().upper().startswith("INSERT"), query
            # Its UPDATE has run: the 500 orders are row-locked by the open transaction.
            assert side.scalar(
                f"SELECT COUNT(*) FROM pg_locks WHERE pid = {pid} AND locktype = 'transactionid'"
            )
            assert cancel.kill()
        # The lock is released: the orphaned backend gets it, finds its client gone and
        # rolls back. Wait for it to end before looking.
        wait_until(lambda: pg_pid_gone(side, pid), "the killed cancel's session to end")


def _kill_cancel_blocked_on_sqlite(url: str, side: Probe, argv: list[str]) -> None:
    if not can_watch_syscalls():
        pytest.skip("needs Linux /proc/PID/syscall to see SQLite's busy wait")
    with children() as started:
        side.execute("BEGIN IMMEDIATE")
        try:
            cancel = Child.ordercli(url, *argv)
            started.append(cancel)
            wait_until(
                lambda: sqlite_busy_waiting(cancel.pid, side.path),
                "the cancel to wait in its BEGIN IMMEDIATE",
                watch=cancel,
            )
            assert cancel.kill()
        finally:
            side.execute("ROLLBACK")


def _in_write_transaction(side: Probe, child: Child, app: str) -> Any:
    """Something truthy while `child` is inside its write transaction."""
    if side.kind == "sqlite":
        return sqlite_writer_pid(side.path) == child.pid
    return [s[0] for s in pg_sessions(side, app) if s[3]]


def test_large_cancel_killed_at_random_moments_is_all_or_nothing(db_url, cli):
    """A cancel of 20,000 ids, killed at random moments inside its write transaction
    (SQLite: while it holds the WAL write lock; PostgreSQL: while its session shows an
    open transaction), spread over the whole window up to and past the commit as timed
    on an uninterrupted run. Each time: all 20,000 cancelled with 20,000 events, or none."""
    ids = _paid_orders(cli, db_url, LARGE_CANCEL_IDS)
    argv = ["cancel", *map(str, ids), "--format", "json"]
    rng = random.Random(7)
    outcomes: Counter[str] = Counter()
    with probe(db_url) as side:
        # Time the transaction window on an uninterrupted run.
        app = _app_name()
        with children() as started:
            started.append(Child.ordercli(db_url, *argv, env={"PGAPPNAME": app}))
            run = started[0]
            wait_until(lambda: _in_write_transaction(side, run, app), "the transaction", watch=run)
            opened_at = time.monotonic()
            wait_until(lambda: not _in_write_transaction(side, run, app), "the commit")
            window = time.monotonic() - opened_at
            finished = run.wait()
        assert finished.returncode == 0, finished.describe()
        assert _cancel_outcome(side, ids) == "all"
        _reset_to_paid(side)

        for _ in range(3 * SCALE):
            app = _app_name()
            with children() as started:
                cancel = Child.ordercli(db_url, *argv, env={"PGAPPNAME": app})
                started.append(cancel)
                inside = wait_until(
                    lambda c=cancel, a=app: _in_write_transaction(side, c, a),
                    "the cancel's write transaction",
                    watch=cancel,
                )
                kill_at = time.monotonic() + rng.uniform(0, window * 1.1)
                while time.monotonic() < kill_at and cancel.running():
                    time.sleep(0.001)
                cancel.kill()
            if side.kind == "postgresql":
                pid = inside[0]
                wait_until(lambda p=pid: pg_pid_gone(side, p), "the killed session to end")
            outcome = _cancel_outcome(side, ids)
            outcomes[outcome] += 1
            _assert_consistent(db_url, events=None)
            if outcome == "all":
                _reset_to_paid(side)
    print(f"random cancel kills, window {window:.3f} s: {dict(outcomes)}")


# --- 3. concurrent writers and readers -----------------------------------------------------

READER = """
import contextlib, io, json, sys
from ordercli.cli import app

url, rounds = sys.argv[1], int(sys.argv[2])
commands = (
    ["list", "--limit", "200", "--format", "json"],
    ["list", "--status", "cancelled", "--limit", "0", "--format", "json"],
    ["summary", "--limit", "20", "--format", "json"],
)
failures = 0
for _ in range(rounds):
    for args in commands:
        out = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out):
            try:
                app(["--db", url, *args], prog_name="ordercli")
            except SystemExit as exc:
                code = exc.code or 0
        if code:
            failures += 1
            print(f"reader: exit {code} from {args}", file=sys.stderr)
            continue
        rows = json.loads(out.getvalue())
        if args[0] == "list":
            torn = [r["id"] for r in rows if r["item_count"] < 1]
            if torn:
                failures += 1
                print(f"reader: orders without items {torn[:5]}", file=sys.stderr)
sys.exit(1 if failures else 0)
"""


def test_concurrent_seeds_cancels_and_readers_all_succeed(db_url, cli):
    """2 seeds of 5,000, 4 cancels over overlapping sets of paid/draft orders and 2
    readers looping over list/summary, all started together: every process exits 0,
    none gives up on a lock, each cancelled order has exactly one event, counts add up."""
    seeded = cli(db_url, "seed", "--count", "800", "--format", "json")
    assert seeded.exit_code == 0, seeded.stderr
    with probe(db_url) as side:
        before = {
            table: side.scalar(f"SELECT COUNT(*) FROM {table}")
            for table in ("customer", "orders", "order_item")
        }
        original = dict(
            side.rows("SELECT id, status FROM orders WHERE status IN ('paid', 'draft') ORDER BY id")
        )
    ids = sorted(original)[:240]
    id_sets = [ids[0:120], ids[60:180], ids[120:240], ids[::7]]
    reader_rounds = str(20 * SCALE)
    with children() as started:
        for _ in range(2):
            started.append(Child.ordercli(db_url, "seed", "--count", "5000", "--format", "json"))
        for chosen in id_sets:
            started.append(Child.ordercli(db_url, "cancel", *map(str, chosen), "--format", "json"))
        for _ in range(2):
            started.append(Child([sys.executable, "-c", READER, db_url, reader_rounds]))
        results = [child.wait() for child in started]
    everything = "\n".join(r.describe() for r in results)
    assert [r.returncode for r in results] == [0] * len(results), everything
    for result in results:
        text = (result.stdout + result.stderr).lower()
        assert not [g for g in GAVE_UP if g in text], result.describe()
        assert "traceback" not in text, result.describe()
    seeds = [json.loads(r.stdout) for r in results[:2]]
    reports = [json.loads(r.stdout) for r in results[2:6]]
    changed = Counter(row["id"] for report in reports for row in report if row["changed"])
    assert changed == Counter(set(ids)), "each order is changed by exactly one cancel"
    with probe(db_url) as side:
        assert side.scalar("SELECT COUNT(*) FROM orders") == before["orders"] + 10_000
        assert side.scalar("SELECT COUNT(*) FROM customer") == before["customer"] + sum(
            s["customers"] for s in seeds
        )
        assert side.scalar("SELECT COUNT(*) FROM order_item") == before["order_item"] + sum(
            s["items"] for s in seeds
        )
        assert side.scalar("SELECT COUNT(DISTINCT email) FROM customer") == side.scalar(
            "SELECT COUNT(*) FROM customer"
        )
        cancelled = {
            row[0] for row in side.rows("SELECT id FROM orders WHERE status = 'cancelled'")
        }
        assert cancelled == set(ids)
        events = side.rows("SELECT order_id, from_status, to_status FROM order_event")
        assert Counter(e[0] for e in events) == Counter(set(ids)), "one event per cancel"
        assert sorted(events) == sorted((i, original[i], "cancelled") for i in set(ids))
    _assert_consistent(db_url, events=len(set(ids)))


# --- 4. the database goes away, refuses or fills up -----------------------------------------


@pytest.fixture
def restartable_postgres_url() -> Iterator[str]:
    """Like conftest's postgres_url, but the database is dropped through a connection
    opened afterwards: the fixture's own connection would not survive a restart."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        _missing(f"{POSTGRES_ENV} is not set")
        raise AssertionError
    import psycopg

    name = f"ordercli_fault_{uuid.uuid4().hex[:12]}"
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        cluster = local_cluster(base)
        if cluster is not None:
            cluster.ensure_running()
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seed_until_a_batch_commits(url: str, started: list[Child], env: Any = None) -> Child:
    seed = Child.ordercli(url, "seed", "--count", "2000000", env=env)
    started.append(seed)
    with probe(url) as side:
        wait_until(lambda: side.scalar("SELECT COUNT(*) FROM orders") > 0, "a batch", watch=seed)
    return seed


def test_postgres_restart_during_seed_is_one_error_line(restartable_postgres_url, cli):
    """`pg_ctlcluster restart` under a running seed, once a batch has committed."""
    url = restartable_postgres_url
    cluster = local_cluster(url)
    if cluster is None:
        _missing("the PostgreSQL server is not a local pg_ctlcluster cluster")
        raise AssertionError
    cli(url, "migrate")
    batch = _batch_size(url)
    try:
        with children() as started:
            seed = _seed_until_a_batch_commits(url, started)
            restarted = cluster.ctl("restart")
            assert restarted.returncode == 0, restarted.stderr
            cluster.wait_ready()
            result = seed.wait(timeout=60)
    finally:
        cluster.ensure_running()
    assert_one_error_line(result)
    with probe(url) as side:
        assert side.scalar("SELECT COUNT(*) FROM orders") % batch == 0
    _assert_consistent(url, events=0)
    _assert_usable_by_subprocess(url)


def test_postgres_session_terminated_during_seed_is_one_error_line(postgres_url, cli):
    """pg_terminate_backend on the seed's session (a failover or an admin kill)."""
    app = _app_name()
    batch = _batch_size(postgres_url)
    with children() as started, probe(postgres_url) as side:
        seed = _seed_until_a_batch_commits(postgres_url, started, env={"PGAPPNAME": app})
        pids = [s[0] for s in pg_sessions(side, app)]
        assert pids, "the seed's session is visible"
        side.execute(f"SELECT pg_terminate_backend({pids[0]})")
        result = seed.wait(timeout=60)
        assert side.scalar("SELECT COUNT(*) FROM orders") % batch == 0
    assert_one_error_line(result)
    _assert_consistent(postgres_url, events=0)
    _assert_usable(cli, postgres_url)


@pytest.mark.parametrize("command", ["seed", "cancel"])
def test_postgres_lock_timeout_is_one_error_line_and_changes_nothing(postgres_url, cli, command):
    """A server-side lock_timeout (as a DBA may set per role or database) fires while
    another session holds `LOCK TABLE orders IN SHARE MODE`: the write gives up."""
    ids = _paid_orders(cli, postgres_url, 300)
    with probe(postgres_url) as side, probe(postgres_url) as locker:
        side.execute(f"ALTER DATABASE \"{side.dbname}\" SET lock_timeout = '300ms'")
        counts = side.rows(
            "SELECT (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM order_item), "
            "(SELECT COUNT(*) FROM order_event), "
            "(SELECT COUNT(*) FROM orders WHERE status = 'paid')"
        )
        with locker.conn.transaction(), children() as started:
            locker.execute("LOCK TABLE orders IN SHARE MODE")
            if command == "seed":
                args = ["seed", "--count", "1000"]
            else:
                args = ["cancel", *map(str, ids[:50])]
            started.append(Child.ordercli(postgres_url, *args))
            result = started[0].wait(timeout=60)
        side.execute(f'ALTER DATABASE "{side.dbname}" RESET lock_timeout')
        after = side.rows(
            "SELECT (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM order_item), "
            "(SELECT COUNT(*) FROM order_event), "
            "(SELECT COUNT(*) FROM orders WHERE status = 'paid')"
        )
    line = assert_one_error_line(result)
    assert "lock" in line.lower(), line
    assert after == counts, "nothing was written"
    _assert_consistent(postgres_url, events=0)
    _assert_usable(cli, postgres_url)


def _pg_base() -> str:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        _missing(f"{POSTGRES_ENV} is not set")
        raise AssertionError
    return base


def _pg_variant(base: str, user: str | None = None, port: int | None = None,
                dbname: str | None = None, password: str | None = SECRET) -> str:  # fmt: skip
    parts = urlsplit(base)
    auth = user or parts.username or "root"
    if password is not None:
        auth += f":{password}"
    host = parts.hostname or "127.0.0.1"
    netloc = f"{auth}@{host}:{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{dbname or parts.path[1:]}"))


@pytest.mark.parametrize(
    ("case", "mentions"),
    [
        pytest.param("refused", "refused", id="connection-refused"),
        pytest.param("wrong-password", "password authentication failed", id="wrong-password"),
        pytest.param("unknown-role", "does not exist", id="unknown-role"),
        pytest.param("unknown-database", "does not exist", id="unknown-database"),
    ],
)
def test_unreachable_postgres_is_one_error_line(postgres_url, cli, case, mentions):
    """Connection refused, wrong password, unknown role, unknown database: exit 1, one
    Error line naming the cause, never the password; the real database is untouched.

    The local server trusts every connection (pg_hba `trust`), so it accepts any
    password: the wrong-password case talks to a stand-in server that asks for a
    password and refuses it exactly as PostgreSQL does (SQLSTATE 28P01)."""
    base = _pg_base()
    seeded = cli(postgres_url, "seed", "--count", "200")
    assert seeded.exit_code == 0
    with password_refusing_server() as fake_port:
        url = {
            "refused": _pg_variant(base, port=1),
            "wrong-password": _pg_variant(base, port=fake_port),
            "unknown-role": _pg_variant(base, user=f"no_role_{uuid.uuid4().hex[:8]}"),
            "unknown-database": _pg_variant(base, dbname=f"no_db_{uuid.uuid4().hex[:8]}"),
        }[case]
        with children() as started:
            for args in (["seed", "--count", "10"], ["list", "--format", "json"]):
                started.append(Child.ordercli(url, *args))
                result = started[-1].wait(timeout=60)
                line = assert_one_error_line(result)
                assert mentions in line, line
                assert SECRET not in result.stdout + result.stderr
    with probe(postgres_url) as side:
        assert side.scalar("SELECT COUNT(*) FROM orders") == 200
    _assert_consistent(postgres_url, events=0)
    _assert_usable(cli, postgres_url)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory other users can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="ordercli-fault-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in (path, *path.iterdir()):
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(path, ignore_errors=True)


def test_read_only_sqlite_database_is_one_error_line(shared_tmp, cli):
    """The database file 0444 in a 0555 directory. Root ignores permissions, so when the
    tests run as root the commands run as `nobody`."""
    db = shared_tmp / "orders.db"
    url = f"sqlite:///{db}"
    assert cli(url, "seed", "--count", "300").exit_code == 0
    demote = drop_privileges_fn()
    if os.geteuid() == 0 and demote is None:
        pytest.skip("running as root and there is no `nobody` user to run as")
    db.chmod(0o444)
    shared_tmp.chmod(0o555)
    try:
        with children() as started:
            for args in (["seed", "--count", "10"], ["cancel", "1"], ["list", "--limit", "3"]):
                started.append(Child.ordercli(url, *args, preexec_fn=demote, cwd=shared_tmp))
                result = started[-1].wait(timeout=60)
                if args[0] == "list" and result.returncode == 0:
                    continue  # reading a read-only database may work; writing may not
                line = assert_one_error_line(result)
                assert "read" in line.lower(), line
    finally:
        shared_tmp.chmod(0o755)
        db.chmod(0o644)
    with probe(url) as side:
        assert side.scalar("SELECT COUNT(*) FROM orders") == 300
        assert side.scalar("SELECT COUNT(*) FROM orders WHERE status = 'cancelled'") == 0
    _assert_consistent(url, events=0)
    _assert_usable(cli, url)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/proc/ordercli-fault.db", id="proc"),
        pytest.param("/no/such/dir/orders.db", id="missing-directory"),
    ],
)
def test_sqlite_path_that_cannot_be_created_is_one_error_line(path):
    """A database even root cannot create (a file in /proc), or in a missing directory."""
    with children() as started:
        started.append(Child.ordercli(f"sqlite:///{path}", "seed", "--count", "10"))
        line = assert_one_error_line(started[0].wait(timeout=60))
    assert "open" in line, line
    assert not Path(path).exists()


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))


def test_sqlite_disk_full_during_seed_is_one_error_line(sqlite_url, cli):
    """The seed may write no file beyond 2 MB (RLIMIT_FSIZE, as a full disk): it fails
    after some batches; the committed batches stay whole and the database usable."""
    assert cli(sqlite_url, "seed", "--count", "500").exit_code == 0
    batch = _batch_size(sqlite_url)
    with children() as started:
        started.append(
            Child.ordercli(
                sqlite_url, "seed", "--count", "100000", "--customers", "100",
                preexec_fn=_limit_file_size,
            )
        )  # fmt: skip
        result = started[0].wait(timeout=120)
    line = assert_one_error_line(result)
    with probe(sqlite_url) as side:
        assert (side.scalar("SELECT COUNT(*) FROM orders") - 500) % batch == 0
        assert side.rows("PRAGMA integrity_check") == [("ok",)]
    _assert_consistent(sqlite_url, events=0)
    _assert_usable(cli, sqlite_url)
    # Last: the line must say what went wrong (the disk), not a follow-on error.
    assert "disk" in line.lower() or "full" in line.lower(), line


# --- 5. through PgBouncer (transaction pooling) ----------------------------------------------


@pytest.fixture
def pgbouncer_url(postgres_url: str) -> str:
    """A fresh database (created directly on PostgreSQL) reached through PgBouncer."""
    bouncer = os.environ.get(PGBOUNCER_ENV)
    if not bouncer:
        _missing(f"{PGBOUNCER_ENV} is not set")
        raise AssertionError
    name = urlsplit(postgres_url).path
    url = urlunsplit(urlsplit(bouncer)._replace(path=name))
    try:
        import psycopg

        parts = urlsplit(url)
        psycopg.connect(
            host=parts.hostname, port=parts.port, user=parts.username, dbname=name[1:],
            connect_timeout=5, prepare_threshold=None,
        ).close()  # fmt: skip
    except Exception as exc:
        _missing(f"PgBouncer at {PGBOUNCER_ENV} is unreachable: {exc}")
    return url


def test_every_command_works_through_pgbouncer(pgbouncer_url, postgres_url):
    """seed (several transactions), list --limit 0 as CSV (a server-side cursor, which
    must live inside one transaction), summary, cancel, archive, show, migrate."""
    url = pgbouncer_url

    def run(*args: str) -> Any:
        with children() as started:
            started.append(Child.ordercli(url, *args))
            result = started[0].wait()
        assert result.returncode == 0, result.describe()
        return result

    assert "Schema version" in run("migrate").stdout
    assert json.loads(run("seed", "--count", "20000", "--format", "json").stdout)["orders"] == 20000
    csv_lines = run("list", "--limit", "0", "--format", "csv").stdout.splitlines()
    assert len(csv_lines) == 20001 and csv_lines[0].startswith("id,")
    assert len(json.loads(run("summary", "--limit", "5", "--format", "json").stdout)) == 5
    with probe(postgres_url) as side:
        ids = [r[0] for r in side.rows(
            "SELECT id FROM orders WHERE status IN ('paid', 'draft') ORDER BY id LIMIT 3"
        )]  # fmt: skip
    cancelled = json.loads(run("cancel", *map(str, ids), "--format", "json").stdout)
    assert [r["changed"] for r in cancelled] == [True] * 3
    archived = json.loads(run("archive", str(ids[0]), "--format", "json").stdout)
    assert archived == [{"id": ids[0], "is_archived": True, "changed": True}]
    shown = json.loads(run("show", str(ids[0]), "--format", "json").stdout)
    assert shown["status"] == "cancelled" and len(shown["events"]) == 1
    assert "(up to date)" in run("migrate").stdout
    _assert_consistent(postgres_url, events=3)


def test_concurrent_writers_and_a_kill_through_pgbouncer(pgbouncer_url, postgres_url, cli):
    """Two seeds and two cancels at once share PgBouncer's server connections; then a
    seed killed mid-write behind PgBouncer leaves whole batches only."""
    url = pgbouncer_url
    seeded = cli(postgres_url, "seed", "--count", "400")
    assert seeded.exit_code == 0
    with probe(postgres_url) as side:
        ids = [r[0] for r in side.rows(
            "SELECT id FROM orders WHERE status IN ('paid', 'draft') ORDER BY id LIMIT 100"
        )]  # fmt: skip
    with children() as started:
        for _ in range(2):
            started.append(Child.ordercli(url, "seed", "--count", "20000", "--format", "json"))
        for chosen in (ids[:60], ids[40:]):
            started.append(Child.ordercli(url, "cancel", *map(str, chosen), "--format", "json"))
        results = [child.wait() for child in started]
    everything = "\n".join(r.describe() for r in results)
    assert [r.returncode for r in results] == [0] * 4, everything
    _assert_consistent(postgres_url, events=len(ids))

    batch = _batch_size(postgres_url)
    with probe(postgres_url) as side, children() as started:
        before = side.scalar("SELECT COUNT(*) FROM orders")
        seed = Child.ordercli(url, "seed", "--count", "300000")
        started.append(seed)
        wait_until(
            lambda: side.scalar("SELECT COUNT(*) FROM orders") > before, "a batch", watch=seed
        )
        assert seed.kill()
        wait_until(
            lambda: (
                not side.scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state <> 'idle' AND pid <> pg_backend_pid()"
                )
            ),
            "PgBouncer's server connection to finish the killed transaction",
        )
        assert (side.scalar("SELECT COUNT(*) FROM orders") - before) % batch == 0
    _assert_consistent(postgres_url, events=len(ids))
