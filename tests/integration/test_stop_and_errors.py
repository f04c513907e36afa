"""Stopping and refusing: signals leave a results file; bad servers get one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadengine import database
from loadengine.dsn import Dsn
from tests.integration.conftest import ROOT, load_results, run_cli

pytestmark = pytest.mark.integration


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADENGINE_", "MYSQL_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "loadengine", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout_s: float = 30) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return
    raise AssertionError(f"no line containing {needle!r}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_writes_interrupted_results(
    dsn: Dsn, tmp_path: Path, signum: int, code: int
) -> None:
    out = tmp_path / "r.json"
    proc = _start(
        [
            "run",
            "--dsn",
            dsn.to_url(),
            "--target-cps",
            "500",
            "--duration",
            "30",
            "--workers",
            "2",
            "--output",
            str(out),
        ]
    )
    _wait_for_line(proc, "[   2s]")
    sent = time.monotonic()
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    assert proc.returncode == code
    assert time.monotonic() - sent < 5
    doc = load_results(out)
    assert doc["status"] == "interrupted"
    s = doc["summary"]
    assert 500 <= s["changes"] < 15_000
    # nothing miscounted: the server saw exactly what the engine reports as committed
    assert sum(doc["server"]["row_changes"].values()) == s["changes"] + s["setup_changes_total"]


def test_missing_schema_is_refused_with_one_line(server, tmp_path: Path) -> None:
    d = Dsn("root", "", "127.0.0.1", server.port, "no_such_db_here")
    proc = run_cli(
        "run", "--dsn", d.to_url(), "--duration", "1", "--output", str(tmp_path / "r.json")
    )
    assert proc.returncode == 1
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "loadengine schema init" in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unreachable_server_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "run",
        "--dsn",
        "mysql://root:pw@127.0.0.1:1/inventory",
        "--duration",
        "1",
        "--output",
        str(tmp_path / "r.json"),
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "connection_refused" in proc.stdout


def test_wrong_password_never_printed(server, dsn: Dsn, tmp_path: Path) -> None:
    conn = database.connect(dsn)
    try:
        database.execute(conn, "CREATE USER IF NOT EXISTS 'le_user'@'%' IDENTIFIED BY 'right-pw'")
    finally:
        conn.close()
    secret = "s3cr3t-Wrong-pw"
    bad = Dsn("le_user", secret, "127.0.0.1", server.port, dsn.database)
    out = tmp_path / "r.json"
    proc = run_cli("run", "--dsn", bad.to_url(), "--duration", "1", "--output", str(out))
    assert proc.returncode == 1
    assert "access_denied" in proc.stdout
    text = proc.stdout + proc.stderr + (out.read_text() if out.exists() else "")
    assert secret not in text
    assert "Traceback" not in text


def test_password_redacted_in_results(server, dsn: Dsn, tmp_path: Path) -> None:
    conn = database.connect(dsn)
    try:
        database.execute(conn, "CREATE USER IF NOT EXISTS 'le_pw'@'%' IDENTIFIED BY 'Hush-9876'")
        database.execute(conn, f"GRANT ALL ON `{dsn.database}`.* TO 'le_pw'@'%'")
        database.execute(conn, "GRANT RELOAD, REPLICATION CLIENT, PROCESS ON *.* TO 'le_pw'@'%'")
    finally:
        conn.close()
    d = Dsn("le_pw", "Hush-9876", "127.0.0.1", server.port, dsn.database)
    out = tmp_path / "r.json"
    proc = run_cli(
        "run",
        "--dsn",
        d.to_url(),
        "--target-cps",
        "100",
        "--duration",
        "1",
        "--workers",
        "1",
        "--output",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Hush-9876" not in proc.stdout + proc.stderr + out.read_text()
    assert load_results(out)["plan"]["dsn"]["value"] == d.redacted()


def test_schema_init_creates_database_and_status(server) -> None:
    d = Dsn("root", "", "127.0.0.1", server.port, "fresh_db_init")
    assert run_cli("schema", "status", "--dsn", d.to_url()).returncode == 1
    proc = run_cli("schema", "init", "--dsn", d.to_url())
    assert proc.returncode == 0 and "ready" in proc.stdout
    status = run_cli("schema", "status", "--dsn", d.to_url())
    assert (
        status.returncode == 0 and "customers 4" in status.stdout and "products 9" in status.stdout
    )
    assert run_cli("schema", "reset", "--dsn", d.to_url()).returncode == 0


def test_unwritable_output_detected_before_run(dsn: Dsn, tmp_path: Path) -> None:
    proc = run_cli("run", "--dsn", dsn.to_url(), "--output", str(tmp_path / "nope" / "r.json"))
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr
