"""Human-readable output: the live line and the end-of-run summary table. Pure formatting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadengine.core import histogram
from loadengine.core.aggregate import Aggregate, Silence
from loadengine.core.plan import RunPlan
from loadengine.run.resources import ResourceSample

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SinkLive:
    """The sink follower's numbers for the live line: load changes that reached the sink
    since the start, those of the last second, and that second's end-to-end lag p99."""

    total: int
    last: int | None
    e2e_p99_ms: float | None


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}ms" if v >= 1 else f"{v:.2f}ms"


def live_line(
    plan: RunPlan,
    agg: Aggregate,
    upto_s: int,
    sample: ResourceSample,
    server_last: int | None = None,
    silence: Silence | None = None,
    sink: SinkLive | None = None,
) -> str:
    """One line for seconds ``[0, upto_s)``: totals, engine and server rates, efficiency,
    p99, errors, CPU. ``server_last`` is the server's own count for the last second;
    ``silence``, the shards that have not reported all of those seconds yet (their
    changes are missing from the counts: the line says so, and since when)."""
    total = agg.changes_between(0, upto_s)
    last = agg.seconds.get(upto_s - 1)
    recent = last.change_count if last else 0
    overall = total / upto_s if upto_s else 0.0
    parts = [f"[{upto_s:>4}s]", f"changes {total:,}", f"cps {overall:,.0f} (last {recent:,})"]
    parts.append("server " + ("-" if server_last is None else f"{server_last:,}"))
    if sink is not None:
        last_sink = "-" if sink.last is None else f"{sink.last:,}"
        parts.append(f"sink {sink.total:,} (last {last_sink}) e2e p99 {_fmt_ms(sink.e2e_p99_ms)}")
    target = plan.target_at(upto_s - 1)
    if target:
        parts.append(f"eff {100.0 * recent / target:5.1f}%")
    p99 = histogram.percentile_ms(last.latency_us, 99) if last else None
    parts.append(f"p99 {_fmt_ms(p99)}")
    errors = sum(b.error_count for s, b in agg.seconds.items() if s < upto_s)
    parts.append(f"err {errors}")
    if last and (last.backlog_changes or last.missed_changes or last.late_batches):
        parts.append(
            f"BEHIND backlog {last.backlog_changes:,} missed {last.missed_changes:,} "
            f"late {last.late_batches}"
        )
    if silence is not None:
        parts.append(
            f"WAITING for {silence.shards}/{plan.workers} shards: no report since "
            f"t={silence.reported_upto_s}s (in a transaction, reconnecting or restarting)"
        )
    if upto_s <= plan.warmup_s:
        parts.append("(warmup)")
    cpu = sample.coordinator_cpu_pct + sample.shards_cpu_pct
    rss = (sample.coordinator_rss_bytes + sample.shards_rss_bytes) / MIB
    parts.append(f"engine cpu {cpu:.0f}% rss {rss:.0f}MiB")
    if sample.db_cpu_pct is not None:
        parts.append(f"db cpu {sample.db_cpu_pct:.0f}%")
    return "  ".join(parts)


def summary_table(doc: dict[str, Any]) -> str:
    """The end-of-run table, from the results document's ``summary``."""
    s = doc["summary"]
    lat = s["latency_ms"]
    target = s["target_cps"]
    rows = [
        ("status", doc["status"] + (f" ({doc['reason']})" if doc.get("reason") else "")),
        (
            "workload",
            str(((doc.get("plan") or {}).get("workload") or {}).get("value", "inventory")),
        ),
        ("target cps", "max" if target is None else f"{target:,}"),
        ("achieved cps", f"{s['achieved_cps']:,.1f}"),
        ("efficiency", "-" if s["efficiency"] is None else f"{100 * s['efficiency']:.2f}%"),
        ("changes (load)", f"{s['changes']:,}  (warmup {s['warmup_changes']:,})"),
        ("setup changes", f"{s['setup_changes_total']:,}"),
        ("by table", _by_table(s["changes_by_table"])),
        ("transactions", f"{s['transactions']:,}  statements {s['statements']:,}"),
        ("errors", _errors(s["errors"])),
        ("missed / unsent", f"{s['missed_changes']:,} / {s['unsent_changes']:,}"),
        ("late batches", f"{s['late_batches']:,}"),
        *(
            [("ddl", f"{s['ddl']['executed']:,} executed, {s['ddl']['failed']:,} failed")]
            if s.get("ddl")
            else []
        ),
        ("server changes", _server(s)),
        ("latency (intended)", _lat(lat)),
        ("service time", _lat(s["service_time_ms"])),
        ("driver", doc["environment"]["driver"]["implementation"]),
    ]
    if s.get("capture_lag_ms") is not None or "capture_lag_ms" in s:
        rows.append(("capture lag", _capture(s)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _server(s: dict[str, Any]) -> str:
    if s.get("server_changes") is None:
        return s.get("server_changes_note") or "-"
    verdict = "agrees" if s["server_agrees"] else "DISAGREES with the engine"
    return f"{s['server_changes']:,} ({s['server_counter_source']}; {verdict})"


def _capture(s: dict[str, Any]) -> str:
    lag = s.get("capture_lag_ms")
    if not lag:
        return f"no heartbeat seen ({s.get('follow_error') or 'reader saw nothing'})"
    rate = s.get("binlog_bytes_per_s") or 0
    return (
        f"p50 {_fmt_ms(lag['p50'])}  p99 {_fmt_ms(lag['p99'])}  max {_fmt_ms(lag['max'])}  "
        f"({lag['samples']} heartbeats; binlog {rate / MIB:.2f} MiB/s)"
    )


def audit_line(a: dict[str, Any]) -> str:
    """One line for the binary-log audit."""
    if "error" in a:
        return f"AUDIT FAILED: {a['error']}"
    verdict = "clean" if a["clean"] else "MISMATCH"
    speed = a.get("row_events_per_s")
    return (
        f"audit {verdict}: binlog {a['binlog_changes']:,} vs engine {a['engine_changes']:,}; "
        f"missing {a['missing']:,} extra {a['extra']:,} duplicates {a['duplicates']:,}; "
        f"setup {a['setup']['observed']:,}/{a['setup']['expected']:,}; heartbeat "
        f"{a['heartbeat']['observed']:,}; read {a.get('row_events_read', 0):,} row events in "
        f"{a.get('read_seconds', 0)}s ({speed or 0:,}/s)"
    )


def _by_table(by: dict[str, dict[str, int]]) -> str:
    return (
        "  ".join(
            f"{t}: " + ",".join(f"{k} {n:,}" for k, n in sorted(kinds.items()))
            for t, kinds in sorted(by.items())
        )
        or "-"
    )


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "0"


def _lat(lat: dict[str, Any]) -> str:
    keys = ("p50", "p90", "p99", "p99_9", "max")
    return "  ".join(f"{k} {_fmt_ms(lat.get(k))}" for k in keys)
