"""``run --sink``: the live follower's side in the runner, and what it adds to the results.

Started before the shards seed (``start``), told the run's common start (``begin``),
polled for the live line (``live``), and after the load told how many distinct changes
the ledger holds (``finish``). Its report becomes ``SinkObserved``: per run second the
changes that reached the sink and the end-to-end lag, and ``summary.sink``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadengine.core import histogram
from loadengine.core.messages import SinkFinal, SinkPlan
from loadengine.core.plan import RunPlan
from loadengine.core.schema import ALL_TABLES
from loadengine.core.status import Exit, RunError
from loadengine.run.report import SinkLive
from loadengine.server.binlog import HEARTBEAT_TABLE
from loadengine.verify.follower import FollowerHandle
from loadengine.verify.ledger import TableLedger
from loadengine.verify.sink import lag_summary_ms, verdict


def sink_plan(plan: RunPlan, run_id: str) -> SinkPlan:
    assert plan.sink is not None
    own = () if plan.spec is None else tuple(t.name for t in plan.spec.tables if t.create)
    keys = tuple(plan.sink_topic_prefix + t for t in (*ALL_TABLES, *own, HEARTBEAT_TABLE))
    # Debezium's schema change events go to the topic named by topic.prefix alone
    keys += (plan.sink_topic_prefix.split(".")[0],)
    return SinkPlan(plan.sink, plan.sink_exchange, keys, f"loadengine.tap.{run_id}")


def start(plan: RunPlan, run_id: str) -> FollowerHandle:
    """The follower, bound to the sink before anything is written; or a one-line error."""
    from loadengine.verify.sink_amqp import SinkError, pika_module

    try:
        pika_module()
    except SinkError as exc:
        raise RunError(f"--sink: {exc}", Exit.USAGE) from None
    handle = FollowerHandle(sink_plan(plan, run_id))
    error = handle.start()
    if error is not None:
        handle.stop()
        raise RunError(f"--sink: {error}")
    return handle


def live(handle: FollowerHandle, upto_s: int, setup_changes: int) -> SinkLive:
    """``setup_changes``: the rows the shards seed; the sink sees them too (some after the
    start), so they are taken off its count to compare with the engine's."""
    handle.poll()
    ticks = handle.ticks
    received = sum(t.changes for s, t in ticks.items() if s < upto_s)
    total = max(0, received - setup_changes)
    last = ticks.get(upto_s - 1)
    p99 = histogram.samples_summary_ms(list(last.lag_us)) if last else None
    return SinkLive(
        total, None if last is None else last.changes, None if p99 is None else p99["p99"]
    )


@dataclass(slots=True)
class SinkObserved:
    changes_by_second: dict[int, int] = field(default_factory=dict)
    lag_by_second: dict[int, list[int]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return bool(self.summary.get("clean"))


def finish(
    handle: FollowerHandle,
    tables: list[tuple[str, TableLedger]],
    timeout_s: float,
    load_end_unix_s: float,
    warmup_s: int,
) -> SinkObserved:
    expected = sum(t.seeded + t.inserted + t.update_total + t.delete_total for _, t in tables)
    final = handle.finish(expected, timeout_s)
    handle.poll()
    obs = SinkObserved()
    for second, tick in sorted(handle.ticks.items()):
        obs.changes_by_second[second] = tick.changes
        obs.lag_by_second[second] = list(tick.lag_us)
    obs.summary = _summary(final, tables, obs, load_end_unix_s, warmup_s)
    return obs


def _summary(
    final: SinkFinal | None,
    tables: list[tuple[str, TableLedger]],
    obs: SinkObserved,
    load_end_unix_s: float,
    warmup_s: int,
) -> dict[str, Any]:
    if final is None or (final.error and not final.observed):
        why = "no report from the follower" if final is None else final.error
        return {"clean": False, "error": why}
    doc = verdict(Counter(dict(final.observed)), tables, final.redelivered, final.out_of_order)
    measured = [lag for s, lags in obs.lag_by_second.items() if s >= warmup_s for lag in lags]
    caught = final.caught_up_unix_s
    doc |= {
        "e2e_lag_ms": lag_summary_ms(measured),
        "caught_up_after_s": None
        if caught is None
        else round(max(0.0, caught - load_end_unix_s), 3),
        "messages": final.messages,
        "heartbeats": final.heartbeats,
        "tombstones": final.tombstones,
        "schema_changes": final.schema_changes,
        "snapshot_reads": final.snapshot_reads,
        "undecodable": final.undecodable,
        "reconnects": len(final.reconnects),
        "reconnected_at_unix_s": [round(t, 3) for t in final.reconnects],
        "error": final.error,
    }
    doc["examples"] = {
        **doc["examples"],
        "out_of_order": list(final.out_of_order_examples),
        "redelivered": list(final.redelivered_examples),
    }
    doc["examples"] = {k: v for k, v in doc["examples"].items() if v}
    if caught is None:
        doc["clean"] = False
    return doc


def line(summary: dict[str, Any]) -> str:
    """One line for the end of the run."""
    if "error" in summary and "lost" not in summary:
        return f"sink: FAILED ({summary['error']})"
    lag = summary["e2e_lag_ms"]
    word = "exact" if summary["clean"] else "PROBLEMS"
    caught = summary["caught_up_after_s"]
    return (
        f"sink {word}: {summary['changes']:,} changes (+{summary['setup_changes']:,} setup); "
        f"lost {summary['lost']:,} duplicated {summary['duplicated']:,} redelivered "
        f"{summary['redelivered']:,} extra {summary['extra']:,} out of order "
        f"{summary['out_of_order']:,}; e2e lag p50 {lag['p50']} p99 {lag['p99']} max "
        f"{lag['max']} ms; caught up "
        + ("never (timeout)" if caught is None else f"{caught} s after the load")
    )
