"""Stopping and refusing: signals leave a results file; bad servers get one line."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from loadengine.core.dsn import Dsn
from loadengine.server import database
from tests.integration.conftest import load_results, run_cli, start_cli, wait_for_line

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_run_writes_interrupted_results(
    dsn: Dsn, tmp_path: Path, signum: int, code: int
) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
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
    )
    wait_for_line(proc, "[   2s]")
    sent = time.monotonic()
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    assert proc.returncode == code
    assert time.monotonic() - sent < 5
    doc = load_results(out)
    assert doc["status"] == "interrupted"
    s = doc["summary"]
    assert 500 <= s["changes"] < 15_000
    # the partial last second is planned as well as counted: efficiency = achieved / target
    assert s["efficiency"] == pytest.approx(s["achieved_cps"] / 500, abs=0.002)
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


@pytest.mark.parametrize(
    ("phase", "delay_s", "signum"),
    [
        ("python start-up", 0.25, signal.SIGINT),
        ("settings and connection", 0.6, signal.SIGTERM),
    ],
)
def test_signal_during_start_up_still_writes_results(
    dsn: Dsn, tmp_path: Path, phase: str, delay_s: float, signum: int
) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        "run", "--dsn", dsn.to_url(), "--target-cps", "100", "--duration", "5", "--output", str(out)
    )
    time.sleep(delay_s)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], phase
    assert "Traceback" not in stdout + stderr
    doc = load_results(out)
    assert doc["status"] == "interrupted"
    assert doc["summary"]["changes"] == 0 or doc["summary"]["changes"] < 500


def test_signal_while_the_embedded_server_starts_leaves_results_and_no_server(
    tmp_path: Path,
) -> None:
    import psutil

    before = {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "mariadbd"}
    out = tmp_path / "r.json"
    proc = start_cli("run", "--target-cps", "100", "--duration", "5", "--output", str(out))
    time.sleep(1.0)  # installing and starting the private server
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stdout + stderr
    assert load_results(out)["status"] == "interrupted"
    time.sleep(0.5)
    after = {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "mariadbd"}
    assert after <= before  # the private server did not outlive the run


def test_signal_during_the_final_flush_keeps_books_exact(dsn: Dsn, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        "run",
        "--dsn",
        dsn.to_url(),
        "--target-cps",
        "500",
        "--duration",
        "2",
        "--workers",
        "2",
        "--audit",
        "--output",
        str(out),
    )
    wait_for_line(proc, "[   2s]")
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    doc = load_results(out)
    assert doc["status"] == "interrupted"
    assert doc["summary"]["changes"] == 1000
    assert doc["audit"]["binlog_changes"] == 1000 and doc["audit"]["clean"]


def test_results_directory_gone_at_the_end_summary_goes_to_stderr(dsn: Dsn, tmp_path: Path) -> None:
    import shutil

    sub = tmp_path / "sub"
    sub.mkdir()
    proc = start_cli(
        "run",
        "--dsn",
        dsn.to_url(),
        "--target-cps",
        "200",
        "--duration",
        "2",
        "--workers",
        "1",
        "--output",
        str(sub / "r.json"),
    )
    wait_for_line(proc, "[   1s]")
    shutil.rmtree(sub)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "cannot write results" in stderr
    doc = orjson_loads_tail(stderr)
    assert doc["status"] == "completed" and doc["summary"]["changes"] == 400


def orjson_loads_tail(stderr: str) -> dict:
    import orjson

    start = stderr.index("{")
    return orjson.loads(stderr[start:])


def test_batch_too_big_for_max_allowed_packet_is_refused_at_connect(
    own_server, tmp_path: Path
) -> None:
    """A transaction of 20,000 changes can take ~1.9 MB of text: against a server whose
    max_allowed_packet is 1 MiB the run stops at connect, exit 2, one line, no shard."""
    conn = database.connect(own_server.dsn())
    try:
        database.execute(conn, "SET GLOBAL max_allowed_packet = 1048576")
    finally:
        conn.close()
    out = tmp_path / "r.json"
    proc = run_cli(
        "run", "--dsn", own_server.dsn().to_url(), "--batch-size", "20000",
        "--target-cps", "20000", "--duration", "1", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--batch-size 20000: one transaction can take up to" in proc.stdout
    assert "max_allowed_packet of 1,048,576" in proc.stdout
    assert load_results(out)["summary"]["changes"] == 0
    # the same batch within the limit is accepted: the check is not a blanket refusal
    proc = run_cli(
        "run", "--dsn", own_server.dsn().to_url(), "--batch-size", "5000",
        "--target-cps", "5000", "--duration", "1", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
