"""Fault-injection helpers: start ordercli processes, watch the database from the side, kill.

Kill points are chosen by watching the database, never by sleeping and hoping: a side
connection (`Probe`) polls row counts, `pg_stat_activity`, InnoDB's transaction table or
SQLite's WAL lock byte until the process under test has reached the state wanted, and
only then is it killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from helpers import pg_connect

from ordercli.urls import DatabaseUrl

# Multiplies the number of kill points, rounds and durations (ORDERCLI_FAULT_SCALE=5 for a
# longer report run); 1 keeps the default run short.
SCALE = max(1, int(os.environ.get("ORDERCLI_FAULT_SCALE", "1") or "1"))
POLL_S = 0.002
WAIT_S = 120.0

# Error texts that mean the engine made a writer or reader give up instead of waiting.
GAVE_UP = (
    "database is locked",
    "database table is locked",
    "could not serialize",
    "serialization failure",
    "deadlock detected",
    "deadlock found",
    "lock timeout",
    "lock wait timeout",
)


# --- counting for tests/fault_report.py ------------------------------------------------------

# A file to append one JSON line per event to; set by tests/fault_report.py, whose pytest
# plugin also names the running test's backend in REPORT_BACKEND_ENV. Unset (the default
# run), recording does nothing.
REPORT_ENV = "ORDERCLI_FAULT_REPORT"
REPORT_BACKEND_ENV = "ORDERCLI_FAULT_REPORT_BACKEND"


def record(kind: str, count: float = 1, what: str | None = None) -> None:
    """Count `count` events of `kind` (a fault injected, a bad input tried, an invariant
    checked) for the report; the numbers come from the run, not from a table by hand."""
    path = os.environ.get(REPORT_ENV)
    if not path or count == 0:
        return
    backend = os.environ.get(REPORT_BACKEND_ENV, "unknown")
    event: dict[str, str | float] = {"backend": backend, "kind": kind, "count": count}
    if what is not None:
        event["what"] = what
    # One write() of one line with O_APPEND: lines from parallel workers never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(event) + "\n").encode())
    finally:
        os.close(fd)


def checked(what: str, ok: bool) -> bool:
    """Count one invariant check, and a violation if it failed, before the caller's
    assertion stops the test: a failing run still reports what it found. Returns `ok`."""
    record("invariant checks")
    if not ok:
        record("invariant violations", what=what)
    return ok


def ordercli_command() -> list[str]:
    script = Path(sys.executable).with_name("ordercli")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ordercli"]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ORDERCLI_") and k not in ("PGAPPNAME", "PGOPTIONS")
    }
    env.update({"ORDERCLI_ACTOR": "pytest", "NO_COLOR": "1", **(extra or {})})
    return env


@dataclass
class Finished:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float = 0.0

    def describe(self) -> str:
        shown = " ".join(self.args)
        shown = shown if len(shown) < 300 else shown[:300] + " ..."
        return (
            f"--- {shown} -> exit {self.returncode} after {self.seconds:.2f} s\n"
            f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"
        )


class Child:
    """A process started with Popen; its output goes to files, so a large report never
    fills a pipe and blocks the process while the test is busy watching the database."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self._out = tempfile.TemporaryFile("w+")
        self._err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            text=True,
            env=env if env is not None else child_env(),
            preexec_fn=preexec_fn,
            cwd=cwd,
        )
        self.pid = self.proc.pid
        self.started_at = time.monotonic()
        self.ended_at: float | None = None
        self._result: Finished | None = None

    @classmethod
    def ordercli(
        cls,
        url: str,
        *args: str,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        return cls(
            [*ordercli_command(), "--db", url, *args],
            env=child_env(env),
            preexec_fn=preexec_fn,
            cwd=cwd,
        )

    def running(self) -> bool:
        if self.proc.poll() is None:
            return True
        if self.ended_at is None:
            self.ended_at = time.monotonic()
        return False

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running when the signal was sent."""
        alive = self.running()
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT_S)
        self.running()  # note the end
        return alive

    def wait(self, timeout: float = WAIT_S) -> Finished:
        try:
            self.proc.wait(timeout=timeout)
            self.running()  # note the end
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"timed out after {timeout} s:\n{self.result().describe()}"
            ) from None
        return self.result()

    def result(self) -> Finished:
        if self._result is None:
            outputs = []
            for f in (self._out, self._err):
                f.flush()
                f.seek(0)
                outputs.append(f.read())
            finished = Finished(
                self.argv,
                self.proc.returncode,
                outputs[0],
                outputs[1],
                (self.ended_at or time.monotonic()) - self.started_at,
            )
            if self.running():
                return finished
            self._result = finished
        return self._result

    def close(self) -> None:
        if self.running():
            self.kill()
        self.result()
        self._out.close()
        self._err.close()


def wait_all(started: Sequence[Child], timeout: float = WAIT_S) -> list[Finished]:
    """Wait for every child, noting when each one ends."""
    deadline = time.monotonic() + timeout
    # Poll every child each time (not any(), which would stop at the first running one).
    while sum(child.running() for child in started) and time.monotonic() < deadline:
        time.sleep(0.01)
    return [child.wait(timeout=max(deadline - time.monotonic(), 0.1)) for child in started]


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Collects children; any still running at the end (a failed test) is killed."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.close()


def wait_until(
    condition: Callable[[], Any],
    what: str,
    timeout: float = WAIT_S,
    watch: Child | None = None,
    poll_s: float = POLL_S,
) -> Any:
    """Poll `condition` until it returns something truthy; fail if `watch` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if watch is not None and not watch.running():
            raise AssertionError(f"the process ended before {what}:\n{watch.result().describe()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll_s)


def assert_one_error_line(result: Finished) -> str:
    """Exit 1, exactly one stderr line starting `Error:`, no traceback anywhere."""
    text = result.stdout + result.stderr
    assert "Traceback" not in text and "╭" not in text, result.describe()
    assert result.returncode == 1, result.describe()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.describe()
    return lines[0]


# --- watching the database from the side -------------------------------------------------


class Probe:
    """A second connection to the database under test, in autocommit mode."""

    def __init__(self, url: str) -> None:
        parsed = DatabaseUrl.parse(url)
        self.kind = {"postgres": "postgresql"}.get(parsed.scheme, parsed.scheme)
        self.path = self.dbname = parsed.database
        self._shm_fd: int | None = None
        if self.kind == "sqlite":
            self.conn: Any = sqlite3.connect(parsed.database, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA busy_timeout = 30000")
        elif self.kind == "postgresql":
            self.conn = pg_connect(url, autocommit=True, connect_timeout=10)
        else:
            import pymysql

            self.conn = pymysql.connect(
                database=parsed.database, autocommit=True, connect_timeout=10,
                **parsed.connect_params,
            )  # fmt: skip

    def _cursor(self, sql: str) -> Any:
        if self.kind == "mysql":
            cursor = self.conn.cursor()
            cursor.execute(sql)
            return cursor
        return self.conn.execute(sql)

    def scalar(self, sql: str) -> Any:
        row = self._cursor(sql).fetchone()
        return row[0] if row else None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._cursor(sql).fetchall()]

    def execute(self, sql: str) -> None:
        self._cursor(sql)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """An explicit transaction, rolled back at the end (it only holds locks)."""
        begin = "BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN"
        self.execute(begin)
        try:
            yield
        finally:
            self.execute("ROLLBACK")

    def writer_pid(self) -> int | None:
        """SQLite: the pid of the process holding the WAL write lock, if another does.

        The -shm descriptor stays open until the probe closes: closing any descriptor of
        a file drops every POSIX lock this process holds on it, including the probe's
        own SQLite connection's, and the next process to open the database would then
        believe it is alone, reset the WAL index and run recovery."""
        if self._shm_fd is None:
            self.scalar("SELECT COUNT(*) FROM sqlite_master")  # the -shm file exists now
            self._shm_fd = os.open(f"{self.path}-shm", os.O_RDONLY)
        return sqlite_writer_pid(self._shm_fd)

    def session_id(self) -> int:
        if self.kind == "postgresql":
            return int(self.scalar("SELECT pg_backend_pid()"))
        return int(self.scalar("SELECT CONNECTION_ID()"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self._shm_fd is not None:
            os.close(self._shm_fd)  # after the connection: see writer_pid
            self._shm_fd = None


@contextlib.contextmanager
def probe(url: str) -> Iterator[Probe]:
    side = Probe(url)
    try:
        yield side
    finally:
        side.close()


# --- SQLite: who holds the WAL write lock ---------------------------------------------------

# In WAL mode SQLite takes POSIX byte locks on the -shm file; the writer lock is byte 120
# (UNIX_SHM_BASE; WAL_WRITE_LOCK is slot 0). F_GETLK names the process holding it without
# taking it, so watching it does not disturb the writer.
_WAL_WRITE_LOCK_BYTE = 120
_FLOCK = "hhqqi4x"  # struct flock on Linux (type, whence, start, len, pid)


def sqlite_writer_pid(shm_fd: int) -> int | None:
    """The pid of another process inside a write transaction on this WAL database,
    given a descriptor of its -shm file (see `Probe.writer_pid`)."""
    request = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _WAL_WRITE_LOCK_BYTE, 1, 0)
    lock_type, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(shm_fd, fcntl.F_GETLK, request))
    return None if lock_type == fcntl.F_UNLCK else pid


_SLEEP_SYSCALLS = {"35", "230"}  # nanosleep, clock_nanosleep (x86_64)


def sqlite_busy_waiting(pid: int, db_path: str) -> bool:
    """True while `pid` has the database open and sleeps in SQLite's busy handler
    (the only sleep ordercli does: waiting for another connection's write lock)."""
    try:
        syscall = Path(f"/proc/{pid}/syscall").read_text().split()[0]
        if syscall not in _SLEEP_SYSCALLS:
            return False
        fd_dir = Path(f"/proc/{pid}/fd")
        return any(os.readlink(fd_dir / fd) == db_path for fd in os.listdir(fd_dir))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def can_watch_syscalls() -> bool:
    return sys.platform == "linux" and Path(f"/proc/{os.getpid()}/syscall").exists()


# --- PostgreSQL: sessions, cluster restart ---------------------------------------------------


def pg_sessions(side: Probe, app_name: str) -> list[tuple[Any, ...]]:
    """(pid, state, wait_event_type, in_transaction, query) of sessions tagged `app_name`.

    `in_transaction` is true inside an explicit transaction, not for ordercli's schema
    version probe (a single autocommit statement on ordercli_migration)."""
    return side.rows(
        "SELECT pid, state, wait_event_type, "
        "xact_start IS NOT NULL AND query NOT LIKE '%ordercli_migration%', query "
        "FROM pg_stat_activity "
        f"WHERE application_name = '{app_name}' AND datname = current_database()"
    )


def pg_transaction_over(side: Probe, pid: int) -> bool:
    """The server session `pid` has no open transaction (or is gone).

    Directly on PostgreSQL a killed client's backend rolls back and exits. Through
    PgBouncer the server connection outlives its client: it is closed if the client died
    inside a transaction, and goes back to the pool (possibly serving this probe) if not."""
    return not side.scalar(
        f"SELECT COUNT(*) FROM pg_stat_activity WHERE pid = {pid} "
        "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"
    )


def mysql_sessions(side: Probe) -> list[tuple[Any, ...]]:
    """(thread id, in_transaction, waiting_for_lock, query) of the other connections to
    this database (the tests run one ordercli process at a time against it)."""
    return side.rows(
        "SELECT p.ID, t.trx_id IS NOT NULL, COALESCE(t.trx_state = 'LOCK WAIT', 0), "
        "COALESCE(t.trx_query, p.INFO, '') "
        "FROM information_schema.PROCESSLIST p "
        "LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID "
        "WHERE p.DB = DATABASE() AND p.ID <> CONNECTION_ID()"
    )


def mysql_thread_gone(side: Probe, thread_id: int) -> bool:
    return not side.scalar(
        f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {thread_id}"
    )


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    host: str
    port: int

    def ctl(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ready(self) -> bool:
        return (
            subprocess.run(
                ["pg_isready", "-q", "-h", self.host, "-p", str(self.port)],
                capture_output=True,
                timeout=30,
                check=False,
            ).returncode
            == 0
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        wait_until(self.ready, f"PostgreSQL {self.version}/{self.name} to accept connections",
                   timeout=timeout, poll_s=0.2)  # fmt: skip

    def ensure_running(self) -> None:
        """Start the cluster if it is down (used in finally blocks)."""
        if self.ready():
            return
        self.ctl("start")
        self.wait_ready()


def local_cluster(url: str) -> Cluster | None:
    """The pg_ctlcluster cluster serving `url`, if it runs on this machine."""
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 5432
    if host not in ("127.0.0.1", "localhost", "::1") or not shutil.which("pg_lsclusters"):
        return None
    if not shutil.which("pg_ctlcluster") or not shutil.which("pg_isready"):
        return None
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return Cluster(fields[0], fields[1], host, port)
    return None


# --- a PostgreSQL server that refuses every password ---------------------------------------


@contextlib.contextmanager
def password_refusing_server() -> Iterator[int]:
    """A TCP server speaking just enough of the PostgreSQL protocol to ask for a password
    and answer `password authentication failed` (SQLSTATE 28P01), as a real server does
    for a wrong password. The local test server trusts every connection, so a real
    wrong-password failure cannot be provoked there. Yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def message(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("!i", len(body) + 4) + body

    def read_exact(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("client went away")
            data += chunk
        return data

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            while True:  # SSLRequest / GSSENCRequest first, then the StartupMessage
                (length,) = struct.unpack("!i", read_exact(conn, 4))
                body = read_exact(conn, length - 4)
                (code,) = struct.unpack("!i", body[:4])
                if code in (80877103, 80877104):
                    conn.sendall(b"N")
                    continue
                user = body[4:].split(b"\0")[1].decode() if b"user\0" in body else "?"
                break
            conn.sendall(message(b"R", struct.pack("!i", 3)))  # AuthenticationCleartextPassword
            kind = read_exact(conn, 1)
            (length,) = struct.unpack("!i", read_exact(conn, 4))
            read_exact(conn, length - 4)
            assert kind == b"p"
            fields = [
                b"SFATAL",
                b"VFATAL",
                b"C28P01",
                f'Mpassword authentication failed for user "{user}"'.encode(),
            ]
            conn.sendall(message(b"E", b"\0".join(fields) + b"\0\0"))

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(Exception):
                serve(conn)

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


# --- read-only files, even for root ----------------------------------------------------------


def make_read_only(*paths: Path) -> Callable[[], None] | None:
    """Make files and directories unwritable for this process, and return the undo.

    Root ignores permission bits, so as root the immutable attribute (`chattr +i`,
    honoured even for root) is used; None if that is not possible here."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)

        def restore() -> None:
            for p, mode in modes.items():
                p.chmod(mode)

        return restore
    chattr = shutil.which("chattr")
    if chattr is None:
        return None
    done = subprocess.run([chattr, "+i", *map(str, paths)], capture_output=True, check=False)
    if done.returncode != 0:
        subprocess.run([chattr, "-i", *map(str, paths)], capture_output=True, check=False)
        return None

    def undo() -> None:
        subprocess.run([chattr, "-i", *map(str, paths)], capture_output=True, check=False)

    return undo
