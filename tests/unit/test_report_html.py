"""loadengine report with a pipeline run: the verdict at the top, the sink on the CPS
chart, the end-to-end lag chart (matplotlib, no browser: the browser test is in
tests/integration/test_suite_report.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loadengine.tools import report_html


def doc(sink_clean: bool = True) -> dict[str, Any]:
    per_second = [
        {
            "t_s": t,
            "changes": 1000,
            "target_changes": 1000,
            "server_changes": 1000,
            "sink_changes": 990 + t,
            "e2e_lag_ms": {"p50": 300.0 + t, "p99": 900.0, "max": 950.0},
            "latency_p50_ms": 1.0,
            "latency_p99_ms": 5.0,
            "errors": {},
            "reconnects": 0,
        }
        for t in range(5)
    ]
    return {
        "status": "completed",
        "per_second": per_second,
        "resources": [],
        "summary": {
            "target_cps": 1000,
            "achieved_cps": 1000.0,
            "efficiency": 1.0,
            "latency_ms": {"p50": 1.0, "p99": 5.0},
            "error_count": 0,
            "server_agrees": True,
            "sink": {"clean": sink_clean},
        },
        "audit": {"clean": True},
        "thresholds_passed": True,
    }


def test_verdict_reads_every_book_checked() -> None:
    assert report_html.verdict(doc()) == (
        True,
        "status completed; server agrees; binary log exact; sink exact; thresholds passed",
    )
    ok, text = report_html.verdict(doc(sink_clean=False))
    assert not ok and "NOT sink exact" in text


def test_a_pipeline_run_gets_the_lag_chart_and_the_verdict_on_top(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(orjson.dumps(doc()))
    bad.write_bytes(orjson.dumps(doc(sink_clean=False)))
    out = tmp_path / "r.html"
    n = report_html.write([str(good), str(bad)], str(out), None)
    page = out.read_text()
    assert 'id="good-e2e"' in page and 'id="bad-e2e"' in page
    assert page.index("class='verdict'") < page.index("<table>")
    assert "PASS</b> good" in page and "FAIL</b> bad" in page
    assert n == 2 * 5 + 2


def test_cps_axes_start_at_zero() -> None:
    plt = report_html._plt()
    fig, ax = plt.subplots()
    report_html._cps_chart(ax, "r", doc())
    assert ax.get_ylim()[0] == 0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "sink (RabbitMQ)" in labels
    plt.close(fig)
