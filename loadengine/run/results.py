"""The results document (schema in docs/results.md), built from an ``Outcome``.

``build`` is pure; ``write`` is the only I/O. Nothing in here ever sees a password: the
plan carries a redacted DSN by the time it gets here.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadengine.core import histogram, thresholds
from loadengine.core.aggregate import Aggregate, Bucket, total_changes
from loadengine.core.dsn import redact_text
from loadengine.core.plan import RunPlan
from loadengine.core.status import COMPLETED
from loadengine.run.coordinator import Outcome
from loadengine.run.sink_follow import SinkObserved
from loadengine.server.binlog import FollowState
from loadengine.settings import FIELDS
from loadengine.verify import ledger
from loadengine.verify.ledger import TableLedger

SCHEMA_VERSION = 1


@dataclass(slots=True)
class Observed:
    """What was observed beside the engine: the server's counters, the log, the audit."""

    server_seconds: dict[int, int | None] = field(default_factory=dict)
    server_counter_source: str = ""
    heartbeats: int | None = None
    follow: FollowState | None = None
    audit: dict[str, Any] | None = None
    ledger_tables: list[tuple[str, TableLedger]] = field(default_factory=list)
    sink: SinkObserved | None = None
    ddl: list[dict[str, Any]] | None = None  # the workload's DDL statements (server.ddl)

    @property
    def ddl_executed(self) -> int | None:
        """DDL statements that succeeded (None: the workload has no DDL schedule)."""
        return None if self.ddl is None else sum(1 for r in self.ddl if r["ok"])


class ResultsPathError(ValueError):
    """The results file cannot be written where asked."""


def check_writable(output: str | None) -> None:
    """Fail before the run, not after it, when the results file cannot be written: prove it
    by creating (and removing) a file where ``write`` will create its temporary file."""
    if output in (None, "-"):
        return
    path = Path(output)
    parent = path.resolve().parent
    if not parent.is_dir():
        raise ResultsPathError(f"--output {output!r}: directory {str(parent)!r} does not exist")
    if path.exists() and not path.is_file():
        raise ResultsPathError(f"--output {output!r}: exists and is not a regular file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".results-", dir=parent)
    except OSError as exc:
        raise ResultsPathError(
            f"--output {output!r}: cannot create a file in {str(parent)!r} ({exc.strerror})"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _lag_by_second(follow: FollowState | None) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for second, lag in follow.lag_us if follow else []:
        out.setdefault(second, []).append(lag)
    return out


def _observed_second(
    rec: dict[str, Any], second: int, obs: Observed, lags: dict[int, list[int]]
) -> None:
    rec["server_changes"] = obs.server_seconds.get(second)
    if obs.follow is not None:
        lag = histogram.samples_summary_ms(lags.get(second, []))
        rec["capture_lag_ms"] = None if lag is None else {"p50": lag["p50"], "max": lag["max"]}
        rec["binlog_bytes"] = obs.follow.bytes_by_second.get(second, 0)
        rec["binlog_row_events"] = obs.follow.rows_by_second.get(second, 0)
    if obs.sink is not None:
        rec["sink_changes"] = obs.sink.changes_by_second.get(second, 0)
        lag = histogram.samples_summary_ms(obs.sink.lag_by_second.get(second, []))
        rec["e2e_lag_ms"] = None if lag is None else {k: lag[k] for k in ("p50", "p99", "max")}


def _per_second(agg: Aggregate, plan: RunPlan, obs: Observed) -> list[dict[str, Any]]:
    out = []
    lags = _lag_by_second(obs.follow)
    for second in sorted(agg.seconds):
        b = agg.seconds[second]
        rec: dict[str, Any] = {
            "t_s": second,
            "phase": "warmup" if second < plan.warmup_s else "measure",
            "changes": b.change_count,
            "changes_by_table": b.changes,
            "target_changes": plan.target_at(second),
            "efficiency": _ratio(b.change_count, plan.target_at(second)),
            "transactions": b.transactions,
            "statements": b.statements,
            "errors": b.errors,
            "late_batches": b.late_batches,
            "missed_changes": b.missed_changes,
            "backlog_changes": b.backlog_changes,
            "reconnects": b.reconnects,
            "faults": b.faults,
            "latency_p50_ms": b.quantiles()[0],
            "latency_p99_ms": b.quantiles()[1],
            "service_p99_ms": b.quantiles()[2],
        }
        _observed_second(rec, second, obs, lags)
        out.append(rec)
    return out


def _ratio(num: float, den: float | None) -> float | None:
    return None if not den else round(num / den, 5)


def _steps(plan: RunPlan, agg: Aggregate) -> list[dict[str, Any]]:
    """Per-step results for a ramp (one entry per step; one step for a constant rate)."""
    out, t = [], plan.warmup_s
    for rate, dur in plan.steps:
        changes = agg.changes_between(t, t + dur)
        lat = agg.latency_between(t, t + dur)
        out.append(
            {
                "target_cps": rate,
                "start_s": t,
                "duration_s": dur,
                "changes": changes,
                "achieved_cps": round(changes / dur, 2),
                "efficiency": _ratio(changes, rate * dur),
                "latency_ms": histogram.summary_ms(lat),
            }
        )
        t += dur
    return out


def _measured_window_s(plan: RunPlan, out: Outcome) -> float:
    if out.status == COMPLETED:
        return float(plan.duration_s)
    return max(0.0, out.elapsed_s - plan.warmup_s)


def _summary(plan: RunPlan, out: Outcome) -> dict[str, Any]:
    agg, total = out.aggregate, out.aggregate.total
    measured = agg.changes_between(plan.warmup_s, 10**9)
    window_s = _measured_window_s(plan, out)
    achieved = measured / window_s if window_s > 0 else 0.0
    measured_end_s = plan.warmup_s + int(window_s)  # == total_s for a completed run
    expected: float = sum(plan.target_at(s) or 0 for s in range(plan.warmup_s, measured_end_s))
    # a stopped run's last, partial second counts in ``measured``: plan its part of it too
    expected += (window_s - int(window_s)) * (plan.target_at(measured_end_s) or 0)
    lat = agg.latency_between(plan.warmup_s, 10**9)
    service = agg.service_between(plan.warmup_s, 10**9)
    return {
        "target_cps": plan.target_cps,
        "duration_s": plan.duration_s,
        "warmup_s": plan.warmup_s,
        "measured_s": round(window_s, 3),
        "achieved_cps": round(achieved, 2),
        "planned_changes": plan.planned_changes,
        "efficiency": _ratio(measured, expected) if plan.steps else None,
        "changes": total.change_count,
        "measured_changes": measured,
        "warmup_changes": total.change_count - measured,
        "changes_by_table": total.changes,
        "setup_changes": out.setup_changes,
        "setup_changes_total": total_changes(out.setup_changes),
        "transactions": total.transactions,
        "statements": total.statements,
        "errors": total.errors,
        "error_count": total.error_count,
        "reconnects": total.reconnects,
        "faults": total.faults,
        "late_batches": total.late_batches,
        "missed_changes": total.missed_changes,
        "unsent_changes": sum(d.unsent_changes for d in out.done.values()),
        "latency_ms": histogram.summary_ms(lat),
        "service_time_ms": histogram.summary_ms(service),
        "steps": _steps(plan, agg),
    }


def _observed_summary(plan: RunPlan, out: Outcome, obs: Observed) -> dict[str, Any]:
    engine = out.aggregate.total.change_count
    known = [n for n in obs.server_seconds.values() if n is not None]
    complete = bool(obs.server_seconds) and len(known) == len(obs.server_seconds)
    server = sum(known) if complete else None
    doc: dict[str, Any] = {
        "server_changes": server,
        "server_counter_source": obs.server_counter_source or None,
        "server_agrees": None if server is None else server == engine,
    }
    if obs.server_seconds and not complete:
        doc["server_changes_note"] = "unknown: the server's counters reset (restart) mid-run"
    if obs.follow is not None:
        measured = [lag for s, lag in obs.follow.lag_us if s >= plan.warmup_s]
        seconds = [obs.follow.bytes_by_second.get(s, 0) for s in range(plan.warmup_s, plan.total_s)]
        doc["capture_lag_ms"] = histogram.samples_summary_ms(measured)
        doc["binlog_bytes_per_s"] = round(statistics.fmean(seconds)) if seconds else None
        doc["heartbeats"] = obs.heartbeats
        doc["follow_error"] = obs.follow.error
    if obs.sink is not None:
        doc["sink"] = obs.sink.summary
    if obs.ddl is not None:
        ok = obs.ddl_executed or 0
        doc["ddl"] = {"executed": ok, "failed": len(obs.ddl) - ok, "statements": obs.ddl}
    return doc


def _shards(out: Outcome, rates: dict[int, tuple[tuple[int, int], ...]]) -> list[dict[str, Any]]:
    rows = []
    for index in sorted(rates):
        b = out.aggregate.shards.get(index, Bucket())
        ready, done = out.ready.get(index), out.done.get(index)
        rows.append(
            {
                "shard": index,
                "steps": [list(step) for step in rates[index]],
                "pid": ready.pid if ready else None,
                "host": ready.host if ready else None,
                "driver": ready.driver if ready else None,
                **out.shard_facts.get(index, {}),
                "changes": b.change_count,
                "changes_by_table": b.changes,
                "setup_changes": ready.setup_changes if ready else {},
                "transactions": b.transactions,
                "errors": b.errors,
                "missed_changes": b.missed_changes,
                "unsent_changes": done.unsent_changes if done else None,
                "finished": done is not None,
            }
        )
    return rows


def build(
    plan: RunPlan,
    out: Outcome,
    *,
    run_id: str,
    started_at: str,
    environment: dict[str, Any],
    rates: dict[int, tuple[tuple[int, int], ...]],
    server: dict[str, Any] | None = None,
    observed: Observed | None = None,
    ledger_file: str | None = None,
) -> dict[str, Any]:
    """The whole results document (schema in docs/results.md): pure. ``ledger_file`` is
    the change ledger's file name beside it, when one was written."""
    obs = observed or Observed()
    summary = _summary(plan, out)
    summary.update(_observed_summary(plan, out, obs))
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "started_at": started_at,
        "status": out.status,
        "reason": out.reason,
        "backend": out.backend,
        "plan": plan_document(plan),
        "environment": environment,
        "summary": summary,
        "server": server or {},
        "per_second": _per_second(out.aggregate, plan, obs),
        "shards": _shards(out, rates),
        "failures": [f.document() for f in out.failures],
        "resources": [asdict(s) for s in out.resources],
    }
    if obs.audit is not None:
        doc["audit"] = obs.audit
    if plan.thresholds:
        checks = thresholds.evaluate(dict(plan.thresholds), summary)
        doc["thresholds"] = checks
        doc["thresholds_passed"] = all(c["pass"] for c in checks)
    if ledger_file is not None:
        doc["ledger"] = {"path": ledger_file, "format": ledger.FORMAT}
    return doc


# How a setting shows in the results' ``plan`` when not as its ``RunPlan`` value.
_PLAN_VALUES: dict[str, Callable[[RunPlan, dict[str, str]], Any]] = {
    "target_cps": lambda p, _: "max" if p.target_cps is None else p.target_cps,
    "processes": lambda p, _: p.processes or p.workers,
    "mix": lambda p, _: ",".join(f"{op}={w}" for op, w in p.mix),
    "dsn": lambda p, _: None if p.dsn is None else redact_text(p.dsn),
    "sink": lambda p, _: None if p.sink is None else redact_text(p.sink),
    "password_file": lambda _, src: _source_only(src, "password_file"),
}


def plan_document(plan: RunPlan) -> dict[str, Any]:
    """Every setting of the settings table (``settings.FIELDS``) with its value and source,
    plus the ramp's steps, where the password came from, and the thresholds."""
    sources = dict(plan.sources)
    values: dict[str, Any] = {}
    for f in FIELDS:
        if f.in_plan:
            render = _PLAN_VALUES.get(f.name)
            values[f.name] = render(plan, sources) if render else getattr(plan, f.name)
    values["steps"] = [list(step) for step in plan.steps]
    values["password"] = _source_only(sources, "password")
    values["thresholds"] = dict(plan.thresholds)
    return {k: {"value": v, "source": sources.get(k, "default")} for k, v in values.items()}


def _source_only(sources: dict[str, str], name: str) -> str | None:
    """Where a secret came from, never the secret (the DSN carries TLS file paths)."""
    return "(set)" if name in sources and sources[name] != "default" else None


def dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def write(doc: dict[str, Any], output: str | None) -> str | None:
    """Write atomically (temp file + rename). Returns where it went, or None on failure."""
    data = dumps(doc)
    if output is None:
        return None
    if output == "-":
        sys.stdout.buffer.write(data + b"\n")
        sys.stdout.flush()
        return "-"
    path = Path(output)
    fd, tmp = tempfile.mkstemp(prefix=".results-", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(path)
