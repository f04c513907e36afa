"""loadengine.report: the live line says why a second's count is short."""

from __future__ import annotations

from loadengine.core.aggregate import Aggregate, Silence
from loadengine.run.report import live_line
from loadengine.run.resources import ResourceSample
from tests.unit.test_aggregate import delta
from tests.unit.test_plan import make_plan

PLAN = make_plan(((2000, 10),), workers=4)
SAMPLE = ResourceSample(1.2, 1.0, 1 << 20, 5.0, 1 << 20, (5.0,), None, None)


def test_silent_shards_are_named_with_the_end_of_their_last_report() -> None:
    agg = Aggregate()
    for shard in range(4):
        agg.add(delta(shard, 0, inserts=500))
    agg.add(delta(0, 1, inserts=500))
    line = live_line(PLAN, agg, 2, SAMPLE, None, agg.silent(range(4), 2))
    assert "last 500" in line and "eff  25.0%" in line
    assert "WAITING for 3/4 shards: no report since t=1s" in line


def test_no_waiting_when_every_shard_reported() -> None:
    agg = Aggregate()
    for shard in range(4):
        agg.add(delta(shard, 0, inserts=500, backlog=10))
    line = live_line(PLAN, agg, 1, SAMPLE, 2000, agg.silent(range(4), 1))
    assert "WAITING" not in line
    assert "last 2,000" in line and "server 2,000" in line and "BEHIND backlog 40" in line


def test_waiting_is_shown_for_any_silence_given() -> None:
    line = live_line(PLAN, Aggregate(), 3, SAMPLE, None, Silence(4, 0))
    assert "last 0" in line and "WAITING for 4/4 shards: no report since t=0s" in line
