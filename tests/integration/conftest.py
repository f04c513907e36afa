"""Integration tier: a real private MariaDB/MySQL (binary log on), a fresh schema per test.

The server is started once per session from the binary on this machine, with the
project's CDC config. If no server binary exists the fixture fails loudly: these tests
never silently skip.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest

from loadengine.core.dsn import Dsn
from loadengine.server import database, embedded, queries, schema_admin

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def server() -> Iterator[embedded.EmbeddedServer]:
    if embedded.find_binary() is None:
        pytest.fail(
            "integration tests need mariadbd or mysqld on this machine (apt-get install "
            "mariadb-server); .ci/run installs it"
        )
    srv = embedded.start()
    yield srv
    srv.stop()
    srv.remove()


@pytest.fixture
def dsn(server: embedded.EmbeddedServer) -> Iterator[Dsn]:
    """A fresh inventory schema in its own database on the private server."""
    d = Dsn("root", "", "127.0.0.1", server.port, f"t_{secrets.token_hex(4)}")
    schema_admin.init(d)
    yield d
    conn = database.connect(d, with_database=False)
    try:
        database.execute(conn, f"DROP DATABASE IF EXISTS `{d.database}`")
    finally:
        conn.close()


def run_cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    return subprocess.run(
        [sys.executable, "-m", "loadengine", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        env=env,
        check=False,
    )


def run_load(d: Dsn, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``loadengine run`` against ``d`` with ``args``; returns the process and results path."""
    out = tmp_path / "r.json"
    return run_cli("run", "--dsn", d.to_url(), *args, "--output", str(out)), out


def load_results(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def assert_audit_exact(doc: dict) -> None:
    """The run's audit found every change once and the binary log holds what it reports."""
    a, s = doc["audit"], doc["summary"]
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 0), a
    assert a["binlog_changes"] == s["changes"], (a["binlog_changes"], s["changes"])


def table_counts(d: Dsn) -> dict[str, int]:
    conn = database.connect(d)
    try:
        return {
            t: int(database.query(conn, f"SELECT COUNT(*) FROM {t}")[0][0])
            for t in ("customers", "orders")
        }
    finally:
        conn.close()


def start_cli(*args: str) -> subprocess.Popen[str]:
    """``loadengine ARGS`` in the background (stdout line-readable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "loadengine", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout_s: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line containing {needle!r}")


@pytest.fixture
def own_server() -> Iterator[embedded.EmbeddedServer]:
    """A private server for this test alone: it may be killed, paused and restarted."""
    srv = embedded.start()
    schema_admin.init(srv.dsn())
    yield srv
    try:
        os.kill(srv.process.pid, 18)  # SIGCONT, in case a test left it stopped
    except ProcessLookupError:
        pass
    srv.stop()
    srv.remove()


def window_text(d: Dsn, doc: dict) -> str:
    """The run's binary-log window as ``mariadb-binlog -v`` prints it (an independent
    reading: tests parse it themselves, not with loadengine's parser)."""
    start, end = doc["server"]["binlog_start"], doc["server"]["binlog_end"]
    conn = database.connect(d)
    try:
        logs = [f for f in queries.binary_logs(conn) if start["file"] <= f <= end["file"]]
    finally:
        conn.close()
    return subprocess.run(
        [
            "mariadb-binlog",
            "--read-from-remote-server",
            "-h127.0.0.1",
            f"-P{d.port}",
            "-uroot",
            "--base64-output=decode-rows",
            "-v",
            f"--start-position={start['position']}",
            f"--stop-position={end['position']}",
            *logs,
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout


def shard_pids(proc: psutil.Process) -> list[int]:
    """The shard processes under a running ``loadengine run``."""
    return [
        c.pid
        for c in proc.children(recursive=True)
        if "spawn_main" in " ".join(c.cmdline()) and "resource_tracker" not in " ".join(c.cmdline())
    ]
