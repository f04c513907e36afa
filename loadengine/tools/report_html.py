"""``loadengine report``: one self-contained HTML page of charts from results files.

Charts are drawn with matplotlib (an optional extra: ``pip install 'loadengine[report]'``)
as inline SVG, so the page loads nothing from the network; ``--png DIR`` writes the same
figures as PNG files. At the top, a verdict per run: books exact or not (server, binary
log, sink, as far as checked), thresholds passed or not. Per run: target / engine /
server / sink CPS (axes from 0), latency p50/p99, errors and reconnects, engine and
database CPU and RSS, and with ``--sink`` the end-to-end lag p50/p99 over time. With
several files, a comparison view overlays achieved CPS and p99 and tabulates the summaries.
"""

from __future__ import annotations

import html
import io
import math
from pathlib import Path
from typing import Any

import orjson

MIB = 2**20


class ReportError(ValueError):
    """Bad input or a missing extra (one line, exit 2)."""


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError(
            "loadengine report needs matplotlib: pip install 'loadengine[report]'"
        ) from None
    return plt


def load(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for p in paths:
        try:
            doc = orjson.loads(Path(p).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ReportError(f"{p!r}: not a readable results file ({exc})") from None
        if not isinstance(doc, dict) or "per_second" not in doc:
            raise ReportError(f"{p!r}: not a loadengine results file")
        name, n = Path(p).stem, 2
        while name in {x for x, _ in out}:  # the same stem twice: keep both apart
            name, n = f"{Path(p).stem}-{n}", n + 1
        out.append((name, doc))
    return out


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _series(doc: dict[str, Any], key: str) -> tuple[list[int], list[float]]:
    """Per-second values; missing ones become NaN (a gap in the line, not a zero)."""
    recs = doc["per_second"]
    return [r["t_s"] for r in recs], [_nan(r.get(key)) for r in recs]


def _cps_chart(ax: Any, name: str, doc: dict[str, Any]) -> None:
    t, target = _series(doc, "target_changes")
    _, achieved = _series(doc, "changes")
    _, server = _series(doc, "server_changes")
    if not all(math.isnan(v) for v in target):
        ax.step(t, target, where="post", label="target", linestyle="--", color="#888888")
    ax.plot(t, achieved, label="achieved (engine)", color="#1f77b4", linewidth=1.8)
    if not all(math.isnan(v) for v in server):
        ax.plot(t, server, label="server-observed", color="#ff7f0e", linewidth=1.0)
    _, sink = _series(doc, "sink_changes")
    if not all(math.isnan(v) for v in sink):
        ax.plot(t, sink, label="sink (RabbitMQ)", color="#2ca02c", linewidth=1.0)
    ax.set_ylim(bottom=0)  # from 0: a 0.3 % wobble must not fill the chart
    ax.set_title(f"{name}: changes per second")
    ax.set_xlabel("s")
    ax.set_ylabel("CPS")
    ax.legend(loc="lower right")


def _e2e_values(doc: dict[str, Any], key: str) -> list[float]:
    return [_nan((r.get("e2e_lag_ms") or {}).get(key)) for r in doc["per_second"]]


def _e2e_chart(ax: Any, name: str, doc: dict[str, Any]) -> None:
    t = [r["t_s"] for r in doc["per_second"]]
    ax.plot(t, _e2e_values(doc, "p50"), label="p50", color="#2ca02c")
    ax.plot(t, _e2e_values(doc, "p99"), label="p99", color="#d62728")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{name}: end-to-end lag, database to sink (heartbeat)")
    ax.set_xlabel("s")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right")


def has_sink(doc: dict[str, Any]) -> bool:
    return any("sink_changes" in r for r in doc["per_second"])


def _latency_chart(ax: Any, name: str, doc: dict[str, Any]) -> None:
    t, p50 = _series(doc, "latency_p50_ms")
    _, p99 = _series(doc, "latency_p99_ms")
    ax.plot(t, p50, label="p50", color="#2ca02c")
    ax.plot(t, p99, label="p99", color="#d62728")
    ax.set_yscale("log")
    ax.set_title(f"{name}: latency from the intended time")
    ax.set_xlabel("s")
    ax.set_ylabel("ms")
    ax.legend(loc="upper right")


def _errors_chart(ax: Any, name: str, doc: dict[str, Any]) -> None:
    recs = doc["per_second"]
    t = [r["t_s"] for r in recs]
    ax.bar(t, [sum(r["errors"].values()) for r in recs], label="errors", color="#d62728")
    ax.plot(t, [r["reconnects"] for r in recs], label="reconnects", color="#9467bd")
    ax.set_title(f"{name}: errors and reconnects per second")
    ax.set_xlabel("s")
    ax.legend(loc="upper right")


def _resources_chart(ax: Any, name: str, doc: dict[str, Any]) -> None:
    res = doc.get("resources") or []
    t = [r["t_s"] for r in res]
    ax.plot(
        t,
        [r["coordinator_cpu_pct"] + r["shards_cpu_pct"] for r in res],
        label="engine CPU %",
        color="#1f77b4",
    )
    ax.plot(t, [_nan(r["db_cpu_pct"]) for r in res], label="DB CPU %", color="#ff7f0e")
    ax.set_title(f"{name}: CPU (100 = one core) and RSS")
    ax.set_xlabel("s")
    ax.set_ylabel("CPU %")
    ax2 = ax.twinx()
    ax2.plot(
        t,
        [(r["coordinator_rss_bytes"] + r["shards_rss_bytes"]) / MIB for r in res],
        label="engine RSS MiB",
        color="#1f77b4",
        linestyle=":",
    )
    ax2.plot(
        t,
        [(r["db_rss_bytes"] or 0) / MIB for r in res],
        label="DB RSS MiB",
        color="#ff7f0e",
        linestyle=":",
    )
    ax2.set_ylabel("MiB")
    ax.legend(loc="upper left")
    ax2.legend(loc="upper right")


def _compare_chart(ax: Any, runs: list[tuple[str, dict[str, Any]]], key: str, title: str) -> None:
    for name, doc in runs:
        t, v = _series(doc, key)
        ax.plot(t, v, label=name)
    ax.set_title(title)
    ax.set_xlabel("s")
    ax.legend(loc="best")


def figures(runs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    plt = _plt()
    figs = []
    for name, doc in runs:
        for label, draw in (
            ("cps", _cps_chart),
            ("latency", _latency_chart),
            ("errors", _errors_chart),
            ("resources", _resources_chart),
            ("e2e", _e2e_chart),
        ):
            if label == "e2e" and not has_sink(doc):
                continue
            fig, ax = plt.subplots(figsize=(9, 3.2))
            draw(ax, name, doc)
            fig.tight_layout()
            figs.append((f"{name}-{label}", fig))
    if len(runs) > 1:
        for key, title in (
            ("changes", "achieved CPS, all runs"),
            ("latency_p99_ms", "latency p99 (ms), all runs"),
        ):
            fig, ax = plt.subplots(figsize=(9, 3.2))
            _compare_chart(ax, runs, key, title)
            fig.tight_layout()
            figs.append((f"compare-{key}", fig))
    return figs


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _summary_table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    head = ("run", "status", "target", "achieved", "efficiency", "p50 ms", "p99 ms", "errors")
    rows = []
    for name, doc in runs:
        s = doc["summary"]
        eff = s.get("efficiency")
        cells = (
            name,
            doc["status"],
            str(s.get("target_cps") or "max"),
            f"{s['achieved_cps']:,.1f}",
            "-" if eff is None else f"{100 * eff:.2f}%",
            str(s["latency_ms"].get("p50")),
            str(s["latency_ms"].get("p99")),
            str(s["error_count"]),
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    th = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{th}</tr>{''.join(rows)}</table>"


def verdict(doc: dict[str, Any]) -> tuple[bool, str]:
    """Books exact or not (server, binary log, sink, as far as they were checked) and
    thresholds passed or not: the one line at the top of a run's report."""
    s = doc["summary"]
    checks = [("status " + doc["status"], doc["status"] == "completed")]
    if s.get("server_agrees") is not None:
        checks.append(("server agrees", bool(s["server_agrees"])))
    if "audit" in doc:
        checks.append(("binary log exact", bool(doc["audit"].get("clean"))))
    if "sink" in s:
        checks.append(("sink exact", bool(s["sink"].get("clean"))))
    if "thresholds_passed" in doc:
        checks.append(("thresholds passed", bool(doc["thresholds_passed"])))
    ok = all(passed for _, passed in checks)
    text = "; ".join(what if passed else f"NOT {what}" for what, passed in checks)
    return ok, text


def _verdicts(runs: list[tuple[str, dict[str, Any]]]) -> str:
    items = []
    for name, doc in runs:
        ok, text = verdict(doc)
        word, color = ("PASS", "#2a7d2a") if ok else ("FAIL", "#b22222")
        items.append(
            f"<li><b style='color:{color}'>{word}</b> {html.escape(name)}: {html.escape(text)}</li>"
        )
    return f"<ul class='verdict'>{''.join(items)}</ul>"


def write(paths: list[str], output: str, png_dir: str | None) -> int:
    runs = load(paths)
    figs = figures(runs)
    if png_dir:
        Path(png_dir).mkdir(parents=True, exist_ok=True)
        for name, fig in figs:
            fig.savefig(Path(png_dir) / f"{name}.png", dpi=100)
    body = "\n".join(
        f'<figure class="chart" id="{html.escape(n)}">{_svg(f)}</figure>' for n, f in figs
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>loadengine report</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "figure{margin:0.5em 0}svg{max-width:100%;height:auto}</style></head><body>"
        f"<h1>loadengine report</h1>{_verdicts(runs)}{_summary_table(runs)}{body}"
        "</body></html>\n"
    )
    Path(output).write_text(page)
    return len(figs)
