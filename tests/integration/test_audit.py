"""The numbers proved: binary-log audit, server counters, change ledger and capture lag,
against the private server (binary log on, ROW, FULL)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from loadengine.core.dsn import Dsn
from loadengine.server import database, queries
from loadengine.verify import ledger
from tests.integration.conftest import load_results, run_cli, run_load, window_text

pytestmark = pytest.mark.integration


def independent_counts(d: Dsn, doc: dict) -> dict[str, int]:
    """Row events per table in the run's window, counted with plain line matching on the
    reader's output (not loadengine's parser)."""
    text = window_text(d, doc)
    counts: dict[str, int] = {}
    for line in text.splitlines():
        for verb in ("### INSERT INTO ", "### UPDATE ", "### DELETE FROM "):
            if line.startswith(verb + f"`{d.database}`."):
                table = line[len(verb) :].split(".")[1].strip("`")
                counts[table] = counts.get(table, 0) + 1
    return counts


def test_clean_run_audits_to_zero_and_matches_the_log_and_the_server(
    dsn: Dsn, tmp_path: Path
) -> None:
    # 4 shards, not 2: this is often the suite's first run against a cold private server
    # on a slow 2-core machine, and 2 connections at 75 commits/s each once ended 140
    # changes short (unsent at the end, reported as such). The counts below stay exact.
    proc, out = run_load(
        dsn,
        tmp_path,
        "--target-cps",
        "3000",
        "--duration",
        "5",
        "--workers",
        "4",
        "--batch-size",
        "20",
        "--audit",
        "--follow-binlog",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = load_results(out)
    a, s = doc["audit"], doc["summary"]
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 0)
    assert a["clean"] is True
    assert a["binlog_changes"] == s["changes"] == 15_000
    assert a["changes_by_table"] == s["changes_by_table"]
    independent = independent_counts(dsn, doc)
    heartbeat = independent.pop("loadengine_heartbeat")
    assert heartbeat == a["heartbeat"]["observed"] >= s["heartbeats"] >= 40
    setup = s["setup_changes_total"]
    assert sum(independent.values()) == s["changes"] + setup
    assert a["setup"] == {**a["setup"], "expected": setup, "observed": setup, "missing": 0}
    # the server's own counters, every second, adding up to the engine's count
    assert all(isinstance(r["server_changes"], int) for r in doc["per_second"])
    assert s["server_changes"] == s["changes"] and s["server_agrees"] is True
    # capture lag: present and plausible on an idle-ish local server
    lag = s["capture_lag_ms"]
    assert lag["samples"] >= 40 and 0 < lag["p50"] <= lag["p99"] <= lag["max"] < 2000
    assert s["binlog_bytes_per_s"] > 100_000
    assert "server " in proc.stdout and "audit clean" in proc.stdout
    # the ledger next to the results: what the shards committed, key by key
    led = orjson.loads((tmp_path / doc["ledger"]["path"]).read_bytes())
    load, _ = ledger.totals(ledger.from_document(led))
    assert load == s["changes_by_table"]


def _tamper_ledger(path: Path, extra_inserts: int, fewer_updates: int) -> None:
    """Make the ledger claim 5 more inserts and one update fewer than were committed."""
    doc = orjson.loads(path.read_bytes())
    tables = ledger.from_document(doc)
    target = next(t for n, t in tables if n == "customers")
    counts = target.updates
    # A row updated more than once: one update fewer is then a duplicate (not an extra).
    k = next(k for k in range(len(counts)) if counts[k] > fewer_updates)
    counts[k] -= fewer_updates
    lying = ledger.TableLedger(
        target.shard,
        target.first_key,
        target.stride,
        target.seeded,
        target.inserted + extra_inserts,
        counts,
    )
    changed = [(n, lying if t is target else t) for n, t in tables]
    path.write_bytes(orjson.dumps(ledger.document(doc["run_id"], changed)))


def test_changes_behind_the_engines_back_are_extra_and_a_lying_ledger_is_caught(
    dsn: Dsn, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    args = [
        "run",
        "--dsn",
        dsn.to_url(),
        "--target-cps",
        "1000",
        "--duration",
        "4",
        "--workers",
        "2",
        "--batch-size",
        "10",
        "--output",
        str(out),
    ]
    runner = subprocess.Popen(
        [sys.executable, "-m", "loadengine", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3.0)  # inside the run's window: one foreign insert, one delete
    conn = database.connect(dsn)
    try:
        database.execute(
            conn,
            "INSERT INTO customers (id, first_name, last_name, email) "
            "VALUES (99999999, 'Intruder', 'X', 'x@example.test')",
        )
        database.execute(conn, "DELETE FROM customers WHERE id = 99999999")
        conn.commit()
    finally:
        conn.close()
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
    audited = run_cli("audit", str(out), "--dsn", dsn.to_url())
    assert audited.returncode == 4, audited.stdout + audited.stderr
    a = load_results(out)["audit"]
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 2, 0)
    assert "customers insert 99999999" in a["examples"]["extra"]
    assert "customers delete 99999999" in a["examples"]["extra"]
    assert a["clean"] is False

    _tamper_ledger(tmp_path / "r.ledger.json", extra_inserts=5, fewer_updates=1)
    audited = run_cli("audit", str(out), "--dsn", dsn.to_url())
    assert audited.returncode == 4
    a = load_results(out)["audit"]
    assert (a["missing"], a["extra"], a["duplicates"]) == (5, 2, 1)
    assert len(a["examples"]["missing"]) == 5


def test_audit_refused_on_a_server_that_cannot_feed_cdc(dsn: Dsn, tmp_path: Path) -> None:
    conn = database.connect(dsn)
    conn.autocommit = True
    database.execute(conn, "SET GLOBAL binlog_format = 'STATEMENT'")
    try:
        proc, out = run_load(dsn, tmp_path, "--target-cps", "100", "--duration", "1", "--audit")
    finally:
        database.execute(conn, "SET GLOBAL binlog_format = 'ROW'")
        conn.close()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not CDC-ready: binlog_format=STATEMENT (CDC needs ROW)" in proc.stdout
    assert "--audit: the server cannot feed CDC" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert load_results(out)["server"]["cdc"]["ready"] is False


def test_audit_of_an_embedded_run_explains_the_server_is_gone(tmp_path: Path) -> None:
    doc = {"summary": {}, "server": {}, "plan": {"dsn": {"value": None}}}
    path = tmp_path / "r.json"
    path.write_bytes(orjson.dumps(doc))
    proc = run_cli("audit", str(path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "embedded server" in proc.stderr


def test_the_projects_cdc_config_passes_the_readiness_check(dsn: Dsn) -> None:
    """The private server runs loadengine/data/mysql/cdc.cnf (also mounted by compose/)."""
    from loadengine.server import cdc

    conn = database.connect(dsn)
    try:
        env = queries.server_environment(conn)
    finally:
        conn.close()
    ready = cdc.readiness(env)
    assert ready == {"ready": True, "problems": [], "notes": []}, ready
    assert env["binlog_row_metadata"] == "FULL"
