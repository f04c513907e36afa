"""loadengine.histogram: bucketing, percentile accuracy, merge by addition, empty input."""

from __future__ import annotations

import math
import random

import pytest

from loadengine.core import histogram


def hist_of(samples_us: list[float]) -> dict[int, int]:
    h: dict[int, int] = {}
    for v in samples_us:
        histogram.add(h, v)
    return h


def nearest_rank_ms(samples_us: list[float], pct: float) -> float:
    ordered = sorted(samples_us)
    rank = max(1, math.ceil(len(ordered) * pct / 100.0))
    return ordered[rank - 1] / 1000.0


@pytest.mark.parametrize(
    ("value_us", "bucket"),
    [(0.0, 0), (0.5, 0), (1.0, 0), (2.0, 32), (4.0, 64), (1024.0, 320), (1_000_000.0, 637)],
)
def test_bucket_of_us(value_us: float, bucket: int) -> None:
    assert histogram.bucket_of_us(value_us) == bucket


def test_bucket_mid_lies_inside_its_bucket() -> None:
    for b in (1, 32, 100, 320, 637):
        assert histogram.bucket_of_us(histogram.bucket_mid_us(b)) == b


def test_add_with_count() -> None:
    h: dict[int, int] = {}
    histogram.add(h, 1024.0, count=5)
    histogram.add(h, 1024.0)
    histogram.add(h, 2.0, count=2)
    assert h == {320: 6, 32: 2}
    assert histogram.total(h) == 8


@pytest.mark.parametrize("pct", [1, 25, 50, 90, 99, 99.9, 100])
def test_percentiles_of_uniform_samples_within_2_5_percent(pct: float) -> None:
    samples = [float(v) for v in range(1, 100_001, 3)]  # 1 µs .. 100 ms
    h = hist_of(samples)
    got = histogram.percentile_ms(h, pct)
    assert got == pytest.approx(nearest_rank_ms(samples, pct), rel=0.025)


def test_known_percentiles_in_milliseconds() -> None:
    samples = [1000.0 * ms for ms in range(1, 101)]  # 1 ms .. 100 ms, one each
    h = hist_of(samples)
    expected = {50: 50.0, 90: 90.0, 99: 99.0, 100: 100.0}
    for pct, ms in expected.items():
        assert histogram.percentile_ms(h, pct) == pytest.approx(ms, rel=0.025)


def test_percentiles_of_lognormal_samples_within_2_5_percent() -> None:
    rng = random.Random(12345)
    samples = [rng.lognormvariate(math.log(2000.0), 1.0) for _ in range(20_000)]
    h = hist_of(samples)
    for pct in (50, 90, 99, 99.9, 100):
        expected = nearest_rank_ms(samples, pct)
        assert histogram.percentile_ms(h, pct) == pytest.approx(expected, rel=0.025), pct


def test_single_value() -> None:
    h = hist_of([5000.0])
    for pct in (0.1, 50, 100):
        assert histogram.percentile_ms(h, pct) == pytest.approx(5.0, rel=0.025)


def test_merge_is_addition() -> None:
    rng = random.Random(3)
    a = [rng.uniform(100, 50_000) for _ in range(500)]
    b = [rng.uniform(10, 5_000) for _ in range(300)]
    c = [rng.uniform(1_000, 900_000) for _ in range(200)]
    ha, hb, hc = hist_of(a), hist_of(b), hist_of(c)
    snapshot = (dict(ha), dict(hb), dict(hc))
    merged = histogram.merge([ha, hb, hc])
    assert merged == hist_of(a + b + c)
    assert histogram.merge([hc, ha, hb]) == merged
    assert histogram.total(merged) == 1000
    assert (ha, hb, hc) == snapshot  # inputs are not modified
    assert merged is not ha


def test_merge_literal() -> None:
    assert histogram.merge([{1: 2, 5: 1}, {5: 3, 9: 1}, {}]) == {1: 2, 5: 4, 9: 1}
    assert histogram.merge([]) == {}


def test_empty_histogram() -> None:
    assert histogram.total({}) == 0
    for pct in (50, 99, 100):
        assert histogram.percentile_ms({}, pct) is None
    assert histogram.summary_ms({}) == {
        "p50": None,
        "p90": None,
        "p99": None,
        "p99_9": None,
        "max": None,
        "count": 0,
    }


def test_summary_keys_and_rounding() -> None:
    samples = [1000.0 * ms for ms in range(1, 1001)]  # 1 ms .. 1 s
    summary = histogram.summary_ms(hist_of(samples))
    assert list(summary) == ["p50", "p90", "p99", "p99_9", "max", "count"]
    assert summary["count"] == 1000
    expected = {"p50": 500.0, "p90": 900.0, "p99": 990.0, "p99_9": 999.0, "max": 1000.0}
    for key, ms in expected.items():
        value = summary[key]
        assert value is not None
        assert value == pytest.approx(ms, rel=0.025), key
        assert value == round(value, 3)
