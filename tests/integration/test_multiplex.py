"""``--multiplex``: a process's shards on one thread, round trips through ``wire``.

Real server, real connections: whole runs book exactly and audit clean against the
binary log; ``WireSession`` classifies server errors as the driver would, rolls back a
transaction that failed half-way, and reports a killed connection as lost."""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from loadengine.core.dsn import Dsn
from loadengine.core.workload import CommitProbe, Statement
from loadengine.server import database
from loadengine.server.database import DatabaseError
from loadengine.shard.hub import Hub
from loadengine.shard.wire import WireSession
from tests.integration.conftest import (
    assert_audit_exact,
    load_results,
    run_load,
    shard_pids,
    start_cli,
    wait_for_line,
)

pytestmark = pytest.mark.integration
T = TypeVar("T")


class BlockingWaiter:
    """A hub stand-in for one session outside a hub: waits in place."""

    def wait_readable(self, fd: int) -> None:
        select.select([fd], [], [], 10)

    def sleep_ns(self, duration_ns: int) -> None:
        time.sleep(duration_ns / 1e9)

    def forget(self, fd: int) -> None:
        pass

    def call_blocking(self, fn: Callable[[], T]) -> T:
        return fn()


def _insert(cid: int) -> Statement:
    text = (
        "INSERT INTO customers (id, first_name, last_name, email) "
        f"VALUES ({cid},'Wire','Test','w{cid}@wire.test')"
    )
    return Statement("insert_customer", "customers", "insert", "", (), 1, text=text)


def _ids(d: Dsn, ids: tuple[int, ...]) -> int:
    conn = database.connect(d)
    try:
        sql = f"SELECT COUNT(*) FROM customers WHERE id IN ({','.join(map(str, ids))})"
        return int(database.query(conn, sql)[0][0])
    finally:
        conn.close()


def test_multiplexed_run_books_exact_and_audits_clean(dsn: Dsn, tmp_path: Path) -> None:
    proc, out = run_load(
        dsn, tmp_path, "--target-cps", "2000", "--duration", "3", "--workers", "4",
        "--processes", "1", "--multiplex", "--batch-size", "5", "--audit",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_results(out)
    assert doc["summary"]["changes"] == 6_000
    assert doc["summary"]["server_agrees"] is True
    assert_audit_exact(doc)
    assert doc["plan"]["multiplex"]["value"] is True
    assert {s["driver"] for s in doc["shards"]} == {database.MULTIPLEXED}
    assert "WARNING" not in proc.stdout


def test_multiplexed_single_row_at_max_counts_what_the_server_committed(
    dsn: Dsn, tmp_path: Path
) -> None:
    proc, out = run_load(
        dsn, tmp_path, "--target-cps", "max", "--duration", "2", "--workers", "4",
        "--processes", "1", "--multiplex", "--batch-size", "1",
        "--mix", "insert_customer=1", "--audit",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_results(out)
    assert doc["summary"]["changes"] > 0
    assert doc["summary"]["server_agrees"] is True
    assert_audit_exact(doc)


def test_single_row_shards_beyond_the_cpus_multiplex_by_default(dsn: Dsn, tmp_path: Path) -> None:
    """No layout asked for, batch 1, more shards than CPUs: the shards share hub
    processes (half the CPUs), the results say so and why, and the books are exact."""
    cpus = os.cpu_count() or 1
    workers = cpus + 2
    proc, out = run_load(
        dsn, tmp_path, "--target-cps", str(300 * workers), "--duration", "2",
        "--workers", str(workers), "--batch-size", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_results(out)
    assert doc["summary"]["changes"] == 600 * workers
    assert doc["summary"]["server_agrees"] is True
    plan = doc["plan"]
    assert plan["multiplex"]["value"] is True
    assert plan["multiplex"]["source"].startswith(f"auto (batch 1, {workers} shards > {cpus} CPUs")
    assert plan["processes"]["value"] == max(1, cpus // 2)
    assert {s["driver"] for s in doc["shards"]} == {database.MULTIPLEXED}
    assert f"{workers} shards multiplexed on {max(1, cpus // 2)} process(es)" in proc.stdout


def test_wire_session_classifies_and_rolls_back_like_the_driver(dsn: Dsn) -> None:
    session = WireSession(dsn, BlockingWaiter())
    try:
        assert session.run_transaction([_insert(900_001)]) == [1]  # autocommit
        with pytest.raises(DatabaseError) as excinfo:
            session.run_transaction([_insert(900_001)])
        assert excinfo.value.error_class == "duplicate_key"
        # several statements: the second fails, so the first must not stay
        with pytest.raises(DatabaseError) as excinfo:
            session.run_transaction([_insert(900_002), _insert(900_001)])
        assert excinfo.value.error_class == "duplicate_key"
        assert _ids(dsn, (900_002,)) == 0
        assert session.run_transaction([_insert(900_003), _insert(900_004)]) == [1, 1]
        assert _ids(dsn, (900_003, 900_004)) == 2
        probe = "SELECT COUNT(*) FROM customers WHERE id IN (?,?)"
        assert session.committed(CommitProbe(probe, (900_003, 900_004), 2)) is True
        assert session.committed(CommitProbe(probe, (900_005, 900_006), 2)) is False
        assert session.run_transaction([_insert(900_007)]) == [1]  # autocommit again
        assert _ids(dsn, (900_007,)) == 1
    finally:
        session.close()


def test_wire_session_reports_a_killed_connection_as_lost_and_reconnects(dsn: Dsn) -> None:
    session = WireSession(dsn, BlockingWaiter())
    admin = database.connect(dsn)
    try:
        session.run_transaction([_insert(910_001)])
        conn_id = session._conn.connection_id
        database.execute(admin, f"KILL CONNECTION {conn_id}")
        with pytest.raises(DatabaseError) as excinfo:
            session.run_transaction([_insert(910_002)])
        assert database.is_connection_lost(excinfo.value.error_class)
        assert excinfo.value.in_commit is True
        session.reconnect()
        nodelay = session._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert nodelay != 0  # set again on the new connection (Nagle off, as libmysqlclient)
        assert session.run_transaction([_insert(910_003)]) == [1]
        assert _ids(dsn, (910_001, 910_003)) == 2
    finally:
        session.close()
        admin.close()


def test_multiplexed_process_killed_restarts_its_shards_and_books_exact(
    dsn: Dsn, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = start_cli(
        "run", "--dsn", dsn.to_url(), "--audit", "--output", str(out),
        "--target-cps", "1000", "--duration", "6", "--workers", "4", "--processes", "2",
        "--multiplex", "--batch-size", "10", "--on-shard-failure", "restart",
    )  # fmt: skip
    wait_for_line(proc, "[   3s]")
    pids = sorted(shard_pids(psutil.Process(proc.pid)))
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout + stderr
    doc = load_results(out)
    assert doc["status"] == "completed"
    dead = sorted(f["shard"] for f in doc["failures"])
    assert dead in ([0, 1], [2, 3])
    assert all(f["action"] == "restarted" for f in doc["failures"])
    assert doc["summary"]["changes"] == 6_000
    assert_audit_exact(doc)


def test_a_shard_connecting_to_a_server_that_does_not_answer_stops_no_other(dsn: Dsn) -> None:
    """One task connects to a listener that accepts TCP but never sends the handshake (a
    hung server): the driver waits out its connect timeout. The other task's session on
    the same hub commits all its rows meanwhile."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # the kernel completes the TCP handshake; nobody ever answers
    hung = Dsn("root", "", "127.0.0.1", silent.getsockname()[1], "inventory")
    hub, events = Hub(), []

    def hanging() -> None:
        with pytest.raises(DatabaseError):
            WireSession(hung, hub)
        events.append("timed out")

    def working() -> None:
        session = WireSession(dsn, hub)
        try:
            for i in range(50):
                assert session.run_transaction([_insert(920_000 + i)]) == [1]
        finally:
            session.close()
        events.append("committed 50")

    hub.spawn(hanging)
    hub.spawn(working)
    hub.run()
    silent.close()
    assert events == ["committed 50", "timed out"]
    assert _ids(dsn, tuple(range(920_000, 920_050))) == 50
