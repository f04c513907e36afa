"""Long runs: final seconds fold their histograms into windows; answers do not change."""

from __future__ import annotations

import random

import pytest

from loadengine.core import histogram
from loadengine.core.aggregate import FREEZE_AFTER_S, Aggregate, Bucket
from loadengine.core.messages import ShardDelta


def _delta(second: int, shard: int, rng: random.Random) -> ShardDelta:
    lat: dict[int, int] = {}
    svc: dict[int, int] = {}
    for _ in range(50):
        histogram.add(lat, rng.uniform(100, 50_000))
        histogram.add(svc, rng.uniform(100, 20_000))
    return ShardDelta(
        shard=shard,
        second=second,
        changes={"customers": {"insert": 10}},
        statements=1,
        transactions=1,
        errors={},
        late_batches=0,
        missed_changes=0,
        backlog_changes=0,
        reconnects=0,
        latency_us=lat,
        service_us=svc,
    )


def _feed(agg: Aggregate, seconds: int) -> None:
    rng = random.Random(7)
    for s in range(seconds):
        for shard in range(2):
            agg.add(_delta(s, shard, rng))


def test_folded_windows_answer_exactly_like_unfolded_histograms() -> None:
    boundaries = (3, 13, 23)  # warmup 3 s, then steps of 10, 10 and 7 s
    folded = Aggregate(boundaries=boundaries)
    _feed(folded, 30)
    rng = random.Random(7)
    ref = Aggregate(boundaries=boundaries)  # buckets filled directly: never folded
    for s in range(30):
        for shard in range(2):
            ref.seconds.setdefault(s, Bucket()).add(_delta(s, shard, rng))
    for first, end in ((3, 10**9), (3, 13), (13, 23), (23, 30)):
        expect = histogram.merge(b.latency_us for s, b in ref.seconds.items() if first <= s < end)
        assert folded.latency_between(first, end) == expect
        svc = histogram.merge(b.service_us for s, b in ref.seconds.items() if first <= s < end)
        assert folded.service_between(first, end) == svc
    # per-second percentiles survive the fold
    for s in range(30 - FREEZE_AFTER_S):
        assert folded.seconds[s].quantiles_ms is not None
        assert folded.seconds[s].latency_us == {}
        assert folded.seconds[s].quantiles() == ref.seconds[s].quantiles()


def test_a_window_that_splits_a_folded_one_is_refused() -> None:
    agg = Aggregate(boundaries=(0,))
    _feed(agg, 12)
    with pytest.raises(ValueError, match="splits"):
        agg.latency_between(2, 5)


def test_a_late_delta_for_a_final_second_still_counts() -> None:
    agg = Aggregate(boundaries=(0,))
    _feed(agg, 12)
    before = histogram.total(agg.latency_between(0, 10**9))
    agg.add(_delta(1, 5, random.Random(1)))
    assert histogram.total(agg.latency_between(0, 10**9)) == before + 50
    assert agg.seconds[1].change_count == 30
