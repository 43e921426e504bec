"""The shell scripts that start servers (scripts/citus-cluster, .ci/run)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DETACH = ROOT / "scripts" / "detach"


def _daemon_through(prefix: str, pid_file: Path, timeout: float) -> str:
    """What `url=$(scripts/citus-cluster up)` does when it starts a node: the caller's pipe
    is fd 3 while a long-lived process is started in the background."""
    daemon = f"sleep 60 </dev/null >/dev/null 2>&1 & echo $! > {pid_file}"
    script = f"exec 3>&1 1>&2; {prefix} sh -c '{daemon}'; echo started >&3"
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def _kill(pid_file: Path) -> None:
    if pid_file.exists():
        os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_a_daemon_started_through_detach_holds_no_pipe_of_its_caller(tmp_path):
    pid_file = tmp_path / "daemon.pid"
    try:
        assert _daemon_through(str(DETACH), pid_file, timeout=20) == "started\n"
        os.kill(int(pid_file.read_text()), 0)  # and the daemon runs on
    finally:
        _kill(pid_file)


def test_without_detach_the_caller_waits_for_the_daemon(tmp_path):
    """The failure detach prevents (CI waited 90 minutes on a Citus postmaster's fd 3)."""
    pid_file = tmp_path / "daemon.pid"
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            _daemon_through("", pid_file, timeout=3)
    finally:
        _kill(pid_file)


def _server_starts(script: str) -> list[str]:
    lines = [line.strip() for line in (ROOT / script).read_text().splitlines()]
    return [
        line
        for line in lines
        if not line.startswith("#")
        and (
            ("pg_ctlcluster" in line and line.endswith(" start"))
            or "start-stop-daemon" in line
            or "pgbouncer -d" in line
        )
    ]


@pytest.mark.parametrize(("script", "starts"), [("scripts/citus-cluster", 1), (".ci/run", 3)])
def test_every_server_start_goes_through_detach(script, starts):
    found = _server_starts(script)
    assert len(found) == starts, found
    for line in found:
        command = line.split()[0].strip('"')
        assert command.endswith("scripts/detach"), f"{script} starts a server directly: {line}"
