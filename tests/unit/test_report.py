"""loadengine.report: the live line says why a second's count is short."""

from __future__ import annotations

from loadengine.aggregate import Aggregate, Silence
from loadengine.messages import ShardDelta
from loadengine.plan import DEFAULT_MIX, RunPlan
from loadengine.report import live_line
from loadengine.resources import ResourceSample

SAMPLE = ResourceSample(1.2, 1.0, 1 << 20, 5.0, 1 << 20, (5.0,), None, None)


def plan() -> RunPlan:
    return RunPlan(
        steps=((2000, 10),),
        duration_s=10,
        warmup_s=0,
        workers=4,
        batch_size=10,
        log_interval_s=1.0,
        mix=DEFAULT_MIX,
        seed=1,
        on_overload="catch-up",
        dsn=None,
        output=None,
        keep_server=False,
    )


def reported(shard: int, second: int, n: int, backlog: int = 0) -> ShardDelta:
    return ShardDelta(
        shard=shard,
        second=second,
        changes={"customers": {"insert": n}},
        statements=1,
        transactions=1,
        errors={},
        late_batches=0,
        missed_changes=0,
        backlog_changes=backlog,
        reconnects=0,
        latency_us={},
        service_us={},
        updated_keys={},
        faults={},
    )


def test_silent_shards_are_named_with_the_end_of_their_last_report() -> None:
    agg = Aggregate()
    for shard in range(4):
        agg.add(reported(shard, 0, 500))
    agg.add(reported(0, 1, 500))
    line = live_line(plan(), agg, 2, SAMPLE, None, agg.silent(range(4), 2))
    assert "last 500" in line and "eff  25.0%" in line
    assert "WAITING for 3/4 shards: no report since t=1s" in line


def test_no_waiting_when_every_shard_reported() -> None:
    agg = Aggregate()
    for shard in range(4):
        agg.add(reported(shard, 0, 500, backlog=10))
    line = live_line(plan(), agg, 1, SAMPLE, 2000, agg.silent(range(4), 1))
    assert "WAITING" not in line
    assert "last 2,000" in line and "server 2,000" in line and "BEHIND backlog 40" in line


def test_waiting_is_shown_for_any_silence_given() -> None:
    line = live_line(plan(), Aggregate(), 3, SAMPLE, None, Silence(4, 0))
    assert "last 0" in line and "WAITING for 4/4 shards: no report since t=0s" in line
