"""loadengine.run.sink_follow: the follower's final report becomes summary.sink (pure
parts), and the live line shows the sink."""

from __future__ import annotations

from array import array

from loadengine.core.aggregate import Aggregate
from loadengine.core.messages import SinkFinal
from loadengine.run import sink_follow
from loadengine.run.report import SinkLive, live_line
from loadengine.verify.ledger import TableLedger
from tests.unit.test_aggregate import delta
from tests.unit.test_plan import make_plan
from tests.unit.test_report import SAMPLE


def ledger(seeded: int = 2, inserted: int = 3) -> list[tuple[str, TableLedger]]:
    t = TableLedger(0, 100, 1, seeded, inserted, array("I", [1, 0, 0, 0, 0]))
    return [("customers", t)]


def final(observed: dict, **kw: object) -> SinkFinal:
    base = dict(
        observed=tuple(observed.items()),
        redelivered=0,
        out_of_order=0,
        out_of_order_examples=(),
        tombstones=0,
        schema_changes=0,
        snapshot_reads=0,
        undecodable=0,
        heartbeats=10,
        messages=len(observed),
        reconnects=(),
        caught_up_unix_s=101.5,
    )
    return SinkFinal(**(base | kw))  # type: ignore[arg-type]


EXACT = {
    **{("customers", "insert", str(100 + k)): 1 for k in range(5)},
    ("customers", "update", "100"): 1,
}


def test_exact_books() -> None:
    obs = sink_follow.SinkObserved(lag_by_second={0: [1000, 3000], 1: [2000]})
    s = sink_follow._summary(final(EXACT), ledger(), obs, 100.0, 0)
    assert (s["changes"], s["setup_changes"], s["lost"], s["extra"]) == (4, 2, 0, 0)
    assert s["clean"] and s["caught_up_after_s"] == 1.5
    assert s["e2e_lag_ms"]["samples"] == 3 and s["e2e_lag_ms"]["max"] == 3.0
    assert "sink exact" in sink_follow.line(s)


def test_a_lost_change_is_named_and_not_clean() -> None:
    observed = dict(EXACT)
    del observed[("customers", "insert", "104")]
    s = sink_follow._summary(
        final(observed, caught_up_unix_s=None), ledger(), sink_follow.SinkObserved(), 100.0, 0
    )
    assert s["lost"] == 1 and not s["clean"] and s["caught_up_after_s"] is None
    assert s["examples"]["missing"] == ["customers insert 104"]
    assert "PROBLEMS" in sink_follow.line(s) and "never (timeout)" in sink_follow.line(s)


def test_warmup_lag_is_left_out() -> None:
    obs = sink_follow.SinkObserved(lag_by_second={0: [9_000_000], 1: [2000]})
    s = sink_follow._summary(final(EXACT), ledger(), obs, 100.0, 1)
    assert s["e2e_lag_ms"]["max"] == 2.0


def test_no_report_from_the_follower_is_a_failure() -> None:
    s = sink_follow._summary(None, ledger(), sink_follow.SinkObserved(), 100.0, 0)
    assert not s["clean"] and "FAILED" in sink_follow.line(s)


def test_the_live_line_shows_the_sink() -> None:
    plan = make_plan(((1000, 10),))
    agg = Aggregate()
    agg.add(delta(0, 0, inserts=1000))
    line = live_line(plan, agg, 1, SAMPLE, 1000, None, SinkLive(950, 940, 12.5))
    assert "sink 950 (last 940) e2e p99 12.5ms" in line
    assert "sink" not in live_line(plan, agg, 1, SAMPLE, 1000, None, None)
