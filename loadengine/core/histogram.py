"""Bounded, mergeable latency histogram (log-linear buckets over microseconds).

A value ``v_us`` falls into bucket ``floor(log2(v_us) * BUCKETS_PER_OCTAVE)`` (values
below 1 µs go to bucket 0). With 32 buckets per octave the relative width of a bucket is
2.2 %, so a percentile read back from the histogram is within ~1.1 % of the true sample.
Histograms are plain ``{bucket: count}`` mappings so they merge by addition and cross
process boundaries cheaply; percentiles are computed once, at the end.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

BUCKETS_PER_OCTAVE = 32


def bucket_of_us(value_us: float) -> int:
    """Bucket index of a latency in microseconds (>= 0)."""
    if value_us <= 1.0:
        return 0
    return int(math.log2(value_us) * BUCKETS_PER_OCTAVE)


def bucket_mid_us(bucket: int) -> float:
    """Geometric middle of a bucket, in microseconds."""
    return float(2.0 ** ((bucket + 0.5) / BUCKETS_PER_OCTAVE))


def add(hist: dict[int, int], value_us: float, count: int = 1) -> None:
    """Record ``count`` samples of ``value_us`` into ``hist`` in place."""
    b = bucket_of_us(value_us)
    hist[b] = hist.get(b, 0) + count


def merge(hists: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """Sum of histograms (a new dict)."""
    out: dict[int, int] = {}
    for h in hists:
        for b, c in h.items():
            out[b] = out.get(b, 0) + c
    return out


class Packed(Mapping[int, int]):
    """A read-only histogram in two arrays (~12 bytes per bucket instead of ~100 for a
    dict entry): what a finished second's histogram is kept as during a long run."""

    __slots__ = ("_buckets", "_counts")

    def __init__(self, hist: Mapping[int, int]) -> None:
        keys = sorted(hist)
        self._buckets = array("i", keys)
        self._counts = array("q", (hist[k] for k in keys))

    def __getitem__(self, bucket: int) -> int:
        i = bisect_left(self._buckets, bucket)
        if i < len(self._buckets) and self._buckets[i] == bucket:
            return int(self._counts[i])
        raise KeyError(bucket)

    def __iter__(self) -> Iterator[int]:
        return iter(self._buckets)

    def __len__(self) -> int:
        return len(self._buckets)


def total(hist: Mapping[int, int]) -> int:
    return sum(hist.values())


def percentile_ms(hist: Mapping[int, int], pct: float) -> float | None:
    """The ``pct`` percentile (0 < pct <= 100) in milliseconds, or None when empty."""
    n = total(hist)
    if n == 0:
        return None
    rank = max(1, math.ceil(n * pct / 100.0))
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return bucket_mid_us(b) / 1000.0
    raise AssertionError("unreachable: rank exceeds count")


def summary_ms(hist: Mapping[int, int]) -> dict[str, float | None]:
    """p50/p90/p99/p99.9 and max in milliseconds, rounded to µs."""
    out: dict[str, float | None] = {}
    for label, pct in (("p50", 50), ("p90", 90), ("p99", 99), ("p99_9", 99.9), ("max", 100)):
        v = percentile_ms(hist, pct)
        out[label] = None if v is None else round(v, 3)
    out["count"] = total(hist)
    return out


def samples_summary_ms(samples_us: list[int]) -> dict[str, Any] | None:
    """Exact p50/p99/max (ms) of a few raw samples, such as capture-lag heartbeats."""
    if not samples_us:
        return None
    ordered = sorted(samples_us)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1000, 3)

    return {
        "p50": pct(50),
        "p99": pct(99),
        "max": round(ordered[-1] / 1000, 3),
        "samples": len(ordered),
    }
