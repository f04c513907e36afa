"""End to end: the CLI against the private server; numbers checked against the server
and the binary log, exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadengine.core.dsn import Dsn
from loadengine.server import binlog, database, queries
from tests.integration.conftest import load_results, run_load, table_counts

pytestmark = pytest.mark.integration


def _binlog_counts(d: Dsn, doc: dict) -> dict[str, dict[str, int]]:
    conn = database.connect(d)
    try:
        logs = queries.binary_logs(conn)
    finally:
        conn.close()
    return binlog.count_window(d, doc["server"]["binlog_start"], doc["server"]["binlog_end"], logs)


def _plus(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out = {t: dict(k) for t, k in a.items()}
    for t, kinds in b.items():
        for k, n in kinds.items():
            out.setdefault(t, {})[k] = out.get(t, {}).get(k, 0) + n
    return out


def test_2000_cps_two_shards_hits_target_and_counts_match_server_and_binlog(
    dsn: Dsn, tmp_path: Path
) -> None:
    before = table_counts(dsn)
    proc, out = run_load(
        dsn,
        tmp_path,
        "--target-cps",
        "2000",
        "--duration",
        "5",
        "--workers",
        "2",
        "--batch-size",
        "10",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    doc = load_results(out)
    s = doc["summary"]
    assert doc["status"] == "completed"
    assert abs(s["achieved_cps"] - 2000) / 2000 <= 0.01, s["achieved_cps"]
    assert s["changes"] == 10_000 and s["error_count"] == 0
    # the server's own row counters saw exactly load + setup
    server = doc["server"]["row_changes"]
    assert sum(server.values()) == s["changes"] + s["setup_changes_total"]
    # rows in the tables: seeded + inserted
    after = table_counts(dsn)
    for table in ("customers", "orders"):
        inserted = s["changes_by_table"][table].get("insert", 0)
        setup = s["setup_changes"][table]["insert"]
        assert after[table] - before[table] == inserted + setup
    # the binary log holds exactly the same row events, by table and kind
    assert _binlog_counts(dsn, doc) == _plus(s["changes_by_table"], s["setup_changes"])
    assert len(doc["per_second"]) == 5
    assert all(r["changes"] == 2000 for r in doc["per_second"])
    assert doc["environment"]["driver"]["implementation"] == "c-extension"


def test_unthrottled_max_run_counts_match(dsn: Dsn, tmp_path: Path) -> None:
    proc, out = run_load(
        dsn,
        tmp_path,
        "--target-cps",
        "max",
        "--duration",
        "2",
        "--workers",
        "2",
        "--batch-size",
        "50",
    )
    assert proc.returncode == 0, proc.stderr
    doc = load_results(out)
    s = doc["summary"]
    assert s["changes"] > 1000 and s["efficiency"] is None
    assert _binlog_counts(dsn, doc) == _plus(s["changes_by_table"], s["setup_changes"])
    # the server's own per-second counts add up to the engine's count
    assert s["server_changes"] == s["changes"] and s["server_agrees"] is True


def test_ramp_profile_steps_reported(dsn: Dsn, tmp_path: Path) -> None:
    profile = tmp_path / "ramp.toml"
    profile.write_text(
        "workers = 2\nbatch_size = 5\nsteps = [{target_cps = 200, duration = 2},"
        " {target_cps = 400, duration = 2}]\n"
    )
    proc, out = run_load(dsn, tmp_path, "--profile", str(profile))
    assert proc.returncode == 0, proc.stderr
    doc = load_results(out)
    steps = doc["summary"]["steps"]
    assert [(st["target_cps"], st["changes"]) for st in steps] == [(200, 400), (400, 800)]
    assert [r["changes"] for r in doc["per_second"]] == [200, 200, 400, 400]
