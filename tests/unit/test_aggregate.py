"""loadengine.aggregate: merging ShardDelta messages is order-independent addition."""

from __future__ import annotations

import copy
import random
from typing import Any

from loadengine.core.aggregate import Aggregate, Bucket, Silence, add_changes, total_changes
from loadengine.core.messages import ShardDelta

SHARDS = 3
SECONDS = 4


def delta(
    shard: int,
    second: int,
    *,
    inserts: int = 0,
    updates: int = 0,
    backlog: int = 0,
    errors: dict[str, int] | None = None,
    late: int = 0,
    missed: int = 0,
    reconnects: int = 0,
    latency: dict[int, int] | None = None,
) -> ShardDelta:
    return ShardDelta(
        shard=shard,
        second=second,
        changes={"customers": {"insert": inserts}, "orders": {"update": updates}},
        statements=2,
        transactions=1,
        errors=errors or {},
        late_batches=late,
        missed_changes=missed,
        backlog_changes=backlog,
        reconnects=reconnects,
        latency_us=latency or {},
        service_us={10: 1},
    )


def all_deltas() -> list[ShardDelta]:
    """Shard ``i`` in second ``s``: distinct, easily summed numbers."""
    return [
        delta(
            i,
            s,
            inserts=10 * (i + 1) + s,
            updates=i + 1,
            backlog=100 * i + s,
            errors={"deadlock": 1} if (i + s) % 2 else {},
            late=s,
            missed=i,
            reconnects=1 if i == s else 0,
            latency={100 + s: 1, 200: i + 1},
        )
        for s in range(SECONDS)
        for i in range(SHARDS)
    ]


def snapshot(b: Bucket) -> dict[str, Any]:
    return {
        "changes": b.changes,
        "change_count": b.change_count,
        "statements": b.statements,
        "transactions": b.transactions,
        "errors": b.errors,
        "late": b.late_batches,
        "missed": b.missed_changes,
        "reconnects": b.reconnects,
        "latency": b.latency_us,
        "service": b.service_us,
    }


def merged(order: list[ShardDelta]) -> Aggregate:
    agg = Aggregate()
    for d in order:
        agg.add(d)
    return agg


def test_per_second_and_total_results() -> None:
    agg = merged(all_deltas())
    assert sorted(agg.seconds) == [0, 1, 2, 3]
    assert sorted(agg.shards) == [0, 1, 2]
    # second s: inserts (10+s)+(20+s)+(30+s), updates 1+2+3
    assert [agg.seconds[s].changes for s in range(4)] == [
        {"customers": {"insert": 60 + 3 * s}, "orders": {"update": 6}} for s in range(4)
    ]
    assert [agg.seconds[s].change_count for s in range(4)] == [66, 69, 72, 75]
    assert [agg.seconds[s].statements for s in range(4)] == [6, 6, 6, 6]
    assert [agg.seconds[s].transactions for s in range(4)] == [3, 3, 3, 3]
    assert [agg.seconds[s].error_count for s in range(4)] == [1, 2, 1, 2]
    assert [agg.seconds[s].late_batches for s in range(4)] == [0, 3, 6, 9]
    assert [agg.seconds[s].missed_changes for s in range(4)] == [3, 3, 3, 3]
    assert [agg.seconds[s].reconnects for s in range(4)] == [1, 1, 1, 0]
    assert [agg.seconds[s].backlog_changes for s in range(4)] == [300, 303, 306, 309]
    assert agg.seconds[2].latency_us == {102: 3, 200: 6}
    assert agg.total.change_count == 66 + 69 + 72 + 75
    assert agg.total.changes == {"customers": {"insert": 258}, "orders": {"update": 24}}
    assert agg.total.errors == {"deadlock": 6}
    assert agg.total.transactions == 12
    assert agg.latency_between(0, 10**9) == {100: 3, 101: 3, 102: 3, 103: 3, 200: 24}
    assert agg.service_between(0, 10**9) == {10: 12}
    # the run's and the shards' buckets keep counts only: latency lives per second
    assert agg.total.latency_us == {} and agg.shards[0].service_us == {}
    assert [agg.shards[i].change_count for i in range(3)] == [
        4 * 11 + 6,
        4 * 22 + 6,
        4 * 33 + 6,
    ]


def test_arrival_order_does_not_matter() -> None:
    deltas = all_deltas()
    reference = merged(deltas)
    orders = [list(reversed(deltas)), sorted(deltas, key=lambda d: (d.shard, d.second))]
    for seed in range(25):
        shuffled = list(deltas)
        random.Random(seed).shuffle(shuffled)
        orders.append(shuffled)
    for order in orders:
        agg = merged(order)
        assert sorted(agg.seconds) == sorted(reference.seconds)
        for s, bucket in reference.seconds.items():
            assert snapshot(agg.seconds[s]) == snapshot(bucket)
            assert agg.seconds[s].backlog_changes == bucket.backlog_changes
        for i, bucket in reference.shards.items():
            assert snapshot(agg.shards[i]) == snapshot(bucket)
        assert snapshot(agg.total) == snapshot(reference.total)
        assert agg.changes_between(0, 4) == reference.changes_between(0, 4)
        assert agg.latency_between(1, 3) == reference.latency_between(1, 3)


def test_total_backlog_is_each_shards_latest_level() -> None:
    # shards report in order; interleaving between shards does not matter
    deltas = all_deltas()
    by_second = merged(deltas)
    by_shard = merged(sorted(deltas, key=lambda d: (d.shard, d.second)))
    # latest second (3) of shards 0, 1, 2: 3 + 103 + 203
    assert by_second.total.backlog_changes == by_shard.total.backlog_changes == 309
    assert [by_second.shards[i].backlog_changes for i in range(3)] == [3, 103, 203]


def test_backlog_is_a_level_not_a_sum() -> None:
    agg = Aggregate()
    agg.add(delta(0, 0, backlog=5))
    agg.add(delta(0, 0, backlog=7))  # a newer level for the same shard replaces the old one
    agg.add(delta(1, 0, backlog=3))
    assert agg.seconds[0].backlog_changes == 10
    assert agg.seconds[0].backlog_by_shard == {0: 7, 1: 3}
    agg.add(delta(1, 1, backlog=0))
    assert agg.seconds[1].backlog_changes == 0
    assert agg.total.backlog_changes == 7


def test_windows() -> None:
    agg = merged(all_deltas())
    assert agg.changes_between(0, 4) == 282
    assert agg.changes_between(1, 3) == 69 + 72
    assert agg.changes_between(3, 4) == 75
    assert agg.changes_between(2, 2) == 0
    assert agg.changes_between(4, 10) == 0
    assert agg.latency_between(1, 3) == {101: 3, 102: 3, 200: 12}
    assert agg.latency_between(0, 1) == {100: 3, 200: 6}
    assert agg.latency_between(5, 9) == {}


def test_adding_does_not_modify_the_deltas() -> None:
    deltas = all_deltas()
    before = copy.deepcopy(deltas)
    agg = merged(deltas)
    agg.add(deltas[0])
    assert deltas == before


def test_change_helpers() -> None:
    into = {"customers": {"insert": 1}}
    add_changes(into, {"customers": {"insert": 2, "update": 3}, "orders": {"delete": 4}})
    assert into == {"customers": {"insert": 3, "update": 3}, "orders": {"delete": 4}}
    assert total_changes(into) == 10
    assert total_changes({}) == 0


def test_silent_names_the_shards_that_have_not_reported_every_second() -> None:
    agg = Aggregate()
    assert agg.silent(range(2), 0) is None  # nothing due yet
    assert agg.silent(range(2), 1) == Silence(shards=2, reported_upto_s=0)
    for d in (delta(0, 2), delta(0, 0), delta(1, 0)):  # arrival order does not matter
        agg.add(d)
    assert agg.reported_upto_s == {0: 3, 1: 1}
    assert agg.silent(range(2), 1) is None
    assert agg.silent(range(2), 3) == Silence(shards=1, reported_upto_s=1)
    assert agg.silent([0], 3) is None  # shard 1 finished: not waited for
    assert agg.silent(range(3), 3) == Silence(shards=2, reported_upto_s=0)
