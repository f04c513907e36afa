"""Suites, compare and the HTML report, end to end against the private server; the report
is rendered by a real headless browser (Debian's chromium) and its screenshot inspected."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from loadengine.core.dsn import Dsn
from tests.integration.conftest import ROOT, load_results, run_cli, run_load

pytestmark = pytest.mark.integration

TINY_SUITE = """
[defaults]
workers = 2
batch_size = 10
min_efficiency = 0.95
max_p99_ms = 2000

[[scenario]]
name = "steady"
title = "Steady 500"
target_cps = 500
duration = 2

[[scenario]]
name = "impossible"
title = "Impossible p99"
target_cps = 500
duration = 2
max_p99_ms = 0.001

[[scenario]]
name = "search"
kind = "search"
start_cps = 500
max_cps = 1000
max_trials = 2
duration = 2
"""


def test_suite_leaves_summaries_and_exits_5_on_a_failed_threshold(dsn: Dsn, tmp_path: Path) -> None:
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(TINY_SUITE)
    out = tmp_path / "res"
    proc = subprocess.run(
        [
            str(ROOT / "run_performance_tests.sh"),
            str(suite_file),
            "--results-dir",
            str(out),
            "--dsn",
            dsn.to_url(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 5, proc.stdout[-3000:] + proc.stderr
    summary = orjson.loads((out / "summary.json").read_bytes())
    verdicts = {r["name"]: r["verdict"] for r in summary["scenarios"]}
    assert verdicts == {"steady": "pass", "impossible": "fail", "search": "pass"}
    search = next(r for r in summary["scenarios"] if r["name"] == "search")["search"]
    assert search["max_sustainable_cps"] == 1000 and len(search["trials"]) == 2
    md = (out / "summary.md").read_text()
    assert "| Steady 500 | 500 |" in md and "FAIL" in md and "Max-rate search" in md
    steady = load_results(out / "steady.json")
    assert steady["thresholds_passed"] is True
    bad = load_results(out / "impossible.json")
    assert bad["thresholds_passed"] is False and bad["status"] == "completed"


def test_compare_same_file_passes_and_a_30_percent_slower_one_fails(
    dsn: Dsn, tmp_path: Path
) -> None:
    proc, out = run_load(dsn, tmp_path, "--target-cps", "500", "--duration", "2", "--workers", "2")
    assert proc.returncode == 0
    same = run_cli("compare", str(out), str(out))
    assert same.returncode == 0, same.stdout + same.stderr
    doc = load_results(out)
    doc["summary"]["achieved_cps"] *= 0.7
    slower = tmp_path / "slower.json"
    slower.write_bytes(orjson.dumps(doc))
    worse = run_cli("compare", str(out), str(slower), "--format", "markdown")
    assert worse.returncode == 1, worse.stdout
    assert "REGRESSION" in worse.stdout and "-30.00%" in worse.stdout
    bad = run_cli("compare", str(out), str(slower), "--fail-on", "achieved_cps>+5%")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("the report test needs chromium (apt-get install chromium); .ci/run installs it")


def test_report_renders_charts_in_a_headless_browser(dsn: Dsn, tmp_path: Path) -> None:
    import matplotlib.image

    proc, out = run_load(dsn, tmp_path, "--target-cps", "500", "--duration", "3", "--workers", "2")
    assert proc.returncode == 0
    page, pngs = tmp_path / "r.html", tmp_path / "png"
    rep = run_cli("report", str(out), str(out), "--output", str(page), "--png", str(pngs))
    assert rep.returncode == 0, rep.stderr
    text = page.read_text()
    assert text.count("<svg") == 10  # 4 per run x 2 + 2 comparison charts
    import re

    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched
    assert "<script" not in text and "<link" not in text
    assert len(list(pngs.glob("*.png"))) == 10
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1000,1400",
            f"file://{page}",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    img = matplotlib.image.imread(str(shot))
    rgb = (img[:, :, :3] * 255).round()
    blue = (
        (abs(rgb[:, :, 0] - 31) < 12)
        & (abs(rgb[:, :, 1] - 119) < 12)
        & (abs(rgb[:, :, 2] - 180) < 12)
    ).sum()
    assert blue > 200, "the achieved-CPS line did not render"
    white = (rgb.sum(axis=2) > 750).mean()
    assert 0.3 < white < 0.99  # a page with drawings on it, not a blank or an error page
