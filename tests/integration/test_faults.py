"""Faults against a real private server: it crashes and comes back, it pauses, its
connections are killed, a shard process dies. Every time the run's books are checked
against the binary log with the audit (``--audit``): exact, or the test fails."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from loadengine.core.dsn import Dsn
from loadengine.server import database, embedded
from tests.integration.conftest import (
    assert_audit_exact,
    load_results,
    shard_pids,
    start_cli,
    wait_for_line,
)

pytestmark = pytest.mark.integration


def _run_args(d: Dsn, out: Path, *args: str) -> list[str]:
    return ["run", "--dsn", d.to_url(), "--audit", "--output", str(out), *args]


def _books_exact(doc: dict) -> None:
    assert_audit_exact(doc)
    assert doc["audit"]["changes_by_table"] == doc["summary"]["changes_by_table"]


def test_server_killed_and_restarted_mid_run_books_exact(
    own_server: embedded.EmbeddedServer, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        *_run_args(
            own_server.dsn(),
            out,
            "--target-cps",
            "1000",
            "--duration",
            "12",
            "--workers",
            "2",
            "--batch-size",
            "10",
        )
    )
    wait_for_line(proc, "[   5s]")
    own_server.process.kill()  # SIGKILL: no clean shutdown
    own_server.process.wait(10)
    time.sleep(2.0)
    own_server.relaunch()
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    assert doc["status"] == "completed"
    s = doc["summary"]
    # the outage is visible, second by second: errors by class and reconnects
    outage = [r for r in doc["per_second"] if r["errors"]]
    assert outage and all(
        set(r["errors"]) <= {"connection_lost", "connection_refused"} for r in outage
    )
    assert s["reconnects"] >= 2
    assert any(r["changes"] == 0 for r in doc["per_second"][5:9])
    _books_exact(doc)
    assert s["server_changes"] is None and "restart" in s["server_changes_note"]


def test_server_paused_stall_is_visible_and_nothing_double_counted(
    own_server: embedded.EmbeddedServer, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        *_run_args(
            own_server.dsn(),
            out,
            "--target-cps",
            "1000",
            "--duration",
            "10",
            "--workers",
            "2",
            "--batch-size",
            "10",
        )
    )
    wait_for_line(proc, "[   3s]")
    os.kill(own_server.process.pid, signal.SIGSTOP)
    time.sleep(3.0)
    os.kill(own_server.process.pid, signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    p99s = [r["latency_p99_ms"] or 0 for r in doc["per_second"]]
    assert max(p99s) >= 2000  # latency from the intended time shows the stall
    assert any(r["backlog_changes"] > 0 or r["late_batches"] for r in doc["per_second"])
    assert "BEHIND" in stdout
    # while the server is paused the shards cannot report: each second's line says so
    waiting = [ln for ln in stdout.splitlines() if "WAITING for 2/2 shards" in ln]
    assert len(waiting) >= 2, stdout
    assert all("last 0" in ln for ln in waiting[1:]), waiting
    _books_exact(doc)
    assert doc["summary"]["changes"] == 10_000  # catch-up: every planned change, once


def test_killed_connections_reconnect_and_books_exact(dsn: Dsn, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        *_run_args(
            dsn,
            out,
            "--target-cps",
            "1000",
            "--duration",
            "6",
            "--workers",
            "2",
            "--batch-size",
            "10",
        )
    )
    wait_for_line(proc, "[   3s]")
    conn = database.connect(dsn)
    conn.autocommit = True
    me = int(database.query(conn, "SELECT CONNECTION_ID()")[0][0])
    ids = [
        int(r[0])
        for r in database.query(
            conn,
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> %s",
            (dsn.database, me),
        )
    ]
    for cid in ids:
        database.execute(conn, f"KILL CONNECTION {cid}")
    conn.close()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    s = doc["summary"]
    assert len(ids) >= 2 and s["reconnects"] >= 2
    assert s["errors"].get("connection_lost", 0) >= 2
    _books_exact(doc)
    assert s["changes"] == 6_000  # retried after reconnecting: nothing lost, nothing twice


@pytest.mark.parametrize(
    ("policy", "code", "status"), [("restart", 0, "completed"), ("abort", 1, "failed")]
)
def test_shard_killed_is_named_and_books_exact(
    dsn: Dsn, tmp_path: Path, policy: str, code: int, status: str
) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        *_run_args(
            dsn,
            out,
            "--target-cps",
            "1000",
            "--duration",
            "6",
            "--workers",
            "2",
            "--batch-size",
            "10",
            "--on-shard-failure",
            policy,
        )
    )
    wait_for_line(proc, "[   3s]")
    victim = sorted(shard_pids(psutil.Process(proc.pid)))[0]
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    line = wait_for_line(proc, "DIED" if policy == "restart" else "FAILED")
    assert time.monotonic() - killed_at < 2.0  # noticed within 2 s
    assert "shard" in line
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stdout + stderr
    doc = load_results(out)
    assert doc["status"] == status
    (failure,) = doc["failures"]
    assert failure["pid"] == victim and failure["exit_code"] == -9
    assert failure["action"] == ("restarted" if policy == "restart" else "run failed")
    assert failure["shard"] in (0, 1) and failure["t_s"] > 2
    _books_exact(doc)
    if policy == "restart":
        assert doc["summary"]["changes"] == 6_000


def test_shard_killed_while_building_ahead_books_exact(dsn: Dsn, tmp_path: Path) -> None:
    """Unthrottled single-row transactions are built and journaled 32 at a time: a shard
    killed then leaves intents it never sent; the replacement books exactly what was
    committed and re-sends what was not (every transaction here can be looked up)."""
    out = tmp_path / "r.json"
    proc = start_cli(
        *_run_args(
            dsn, out, "--target-cps", "max", "--duration", "6", "--workers", "2",
            "--batch-size", "1", "--mix", "insert_customer=1,update_customer=1",
            "--on-shard-failure", "restart",
        )
    )  # fmt: skip
    wait_for_line(proc, "[   2s]")
    os.kill(sorted(shard_pids(psutil.Process(proc.pid)))[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    assert doc["status"] == "completed" and doc["failures"][0]["action"] == "restarted"
    assert "ambiguous_unresolved_changes" not in doc["summary"]["faults"]
    _books_exact(doc)


def test_process_of_two_shards_killed_restarts_both_and_books_exact(
    dsn: Dsn, tmp_path: Path
) -> None:
    """``--processes 2`` puts two shards in each process, on threads: killing one process
    kills two shards; both are named, recovered from their own journals and restarted
    (each in a process of its own), and the run still commits exactly its plan."""
    out = tmp_path / "r.json"
    proc = start_cli(
        *_run_args(
            dsn, out, "--target-cps", "1000", "--duration", "6", "--workers", "4",
            "--processes", "2", "--batch-size", "10", "--on-shard-failure", "restart",
        )
    )  # fmt: skip
    wait_for_line(proc, "[   3s]")
    pids = sorted(shard_pids(psutil.Process(proc.pid)))
    assert len(pids) == 2  # four shards, two processes
    os.kill(pids[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    assert doc["status"] == "completed"
    assert doc["plan"]["processes"]["value"] == 2
    dead = sorted(f["shard"] for f in doc["failures"])
    assert len(dead) == 2 and {f["pid"] for f in doc["failures"]} == {pids[0]}
    assert all(f["action"] == "restarted" for f in doc["failures"])
    assert dead in ([0, 1], [2, 3])  # the two shards the killed process held
    assert doc["summary"]["changes"] == 6_000
    _books_exact(doc)
