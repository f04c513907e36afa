"""Overload is never hidden: a target the server cannot absorb is reported every second."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadengine.core.dsn import Dsn
from tests.integration.conftest import load_results, run_load

pytestmark = pytest.mark.integration

UNREACHABLE = ["--target-cps", "40000", "--batch-size", "1", "--workers", "2"]


def test_drop_policy_counts_missed_work_every_second(dsn: Dsn, tmp_path: Path) -> None:
    proc, out = run_load(dsn, tmp_path, *UNREACHABLE, "--duration", "2", "--on-overload", "drop")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    live = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    assert live and all("BEHIND" in ln for ln in live)
    doc = load_results(out)
    s = doc["summary"]
    assert s["efficiency"] < 0.9
    assert all(r["missed_changes"] > 0 for r in doc["per_second"])
    # planned = committed + missed + unsent + failed: nothing vanishes from the books
    assert s["changes"] + s["missed_changes"] + s["unsent_changes"] == s["planned_changes"]


def test_abort_policy_stops_with_distinct_exit_code(dsn: Dsn, tmp_path: Path) -> None:
    proc, out = run_load(dsn, tmp_path, *UNREACHABLE, "--duration", "10", "--on-overload", "abort")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    doc = load_results(out)
    assert doc["status"] == "aborted" and "backlog" in doc["reason"]
    s = doc["summary"]
    assert sum(doc["server"]["row_changes"].values()) == s["changes"] + s["setup_changes_total"]
