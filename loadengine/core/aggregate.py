"""Merging shard deltas into per-second records and run totals: pure addition.

The coordinator feeds every ``ShardDelta`` to ``Aggregate.add``; the order in which they
arrive does not matter. Backlog is a level, not a delta: the latest value per shard and
second is kept and the per-second backlog is their sum.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

from loadengine.core import histogram
from loadengine.core.messages import ChangeCounts, ShardDelta

FREEZE_AFTER_S = 5  # a second this far behind the newest is final: pack its histograms


def add_changes(into: ChangeCounts, more: ChangeCounts) -> None:
    for table, kinds in more.items():
        dst = into.setdefault(table, {})
        for kind, n in kinds.items():
            dst[kind] = dst.get(kind, 0) + n


def add_counts(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def total_changes(changes: ChangeCounts) -> int:
    return sum(n for kinds in changes.values() for n in kinds.values())


@dataclass(slots=True)
class Bucket:
    """Everything merged for one second (or for the whole run)."""

    changes: ChangeCounts = field(default_factory=dict)
    statements: int = 0
    transactions: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    late_batches: int = 0
    missed_changes: int = 0
    reconnects: int = 0
    backlog_by_shard: dict[int, int] = field(default_factory=dict)
    latency_us: dict[int, int] = field(default_factory=dict)
    service_us: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    # once final: (latency p50, latency p99, service p99) in ms; histograms folded away
    quantiles_ms: tuple[float | None, float | None, float | None] | None = None

    def add(self, d: ShardDelta) -> None:
        """Counts and histograms: a second's bucket."""
        self.add_counts(d)
        for dst, src in ((self.latency_us, d.latency_us), (self.service_us, d.service_us)):
            for b, c in src.items():
                dst[b] = dst.get(b, 0) + c

    def add_counts(self, d: ShardDelta) -> None:
        """Counts only: a shard's and the run's buckets, whose latency is never asked for
        (``Aggregate.latency_between`` reads the seconds); merging each delta's
        histograms three times was a tenth of the coordinator's time with 64 shards."""
        add_changes(self.changes, d.changes)
        add_counts(self.errors, d.errors)
        add_counts(self.faults, d.faults)
        self.statements += d.statements
        self.transactions += d.transactions
        self.late_batches += d.late_batches
        self.missed_changes += d.missed_changes
        self.reconnects += d.reconnects
        self.backlog_by_shard[d.shard] = d.backlog_changes

    def quantiles(self) -> tuple[float | None, float | None, float | None]:
        if self.quantiles_ms is not None:
            return self.quantiles_ms
        return (
            histogram.percentile_ms(self.latency_us, 50),
            histogram.percentile_ms(self.latency_us, 99),
            histogram.percentile_ms(self.service_us, 99),
        )

    @property
    def change_count(self) -> int:
        return total_changes(self.changes)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def backlog_changes(self) -> int:
        return sum(self.backlog_by_shard.values())


@dataclass(frozen=True, slots=True)
class Silence:
    """Shards that have not reported all seconds so far: how many, and the end (in
    seconds since the start) of the oldest report among them."""

    shards: int
    reported_upto_s: int


@dataclass(slots=True)
class Aggregate:
    """Per-second buckets, per-shard totals and the run total (totals: counts only;
    latency histograms are kept per second and per window).

    A long run keeps one bucket per second, so a second that is final (``FREEZE_AFTER_S``
    behind the newest) keeps only its percentiles, and its histograms are folded into
    its *window*: the windows start at ``boundaries`` (end of warmup, each ramp step),
    the only ranges ``latency_between`` is asked about.
    """

    seconds: dict[int, Bucket] = field(default_factory=dict)
    shards: dict[int, Bucket] = field(default_factory=dict)
    total: Bucket = field(default_factory=Bucket)
    boundaries: tuple[int, ...] = ()
    newest: int = -1
    folded: dict[int, tuple[dict[int, int], dict[int, int]]] = field(default_factory=dict)
    reported_upto_s: dict[int, int] = field(default_factory=dict)  # shard -> newest second + 1

    def add(self, d: ShardDelta) -> None:
        if d.second >= self.reported_upto_s.get(d.shard, 0):
            self.reported_upto_s[d.shard] = d.second + 1
        bucket = self.seconds.setdefault(d.second, Bucket())
        bucket.add(d)
        if bucket.quantiles_ms is not None:  # a late delta for a final second
            self._fold(d.second, bucket)
        self.shards.setdefault(d.shard, Bucket()).add_counts(d)
        self.total.add_counts(d)
        while self.newest < d.second:
            self.newest += 1
            old = self.seconds.get(self.newest - FREEZE_AFTER_S)
            if old is not None and old.quantiles_ms is None:
                old.quantiles_ms = old.quantiles()
                self._fold(self.newest - FREEZE_AFTER_S, old)

    def silent(self, shards: Iterable[int], upto_s: int) -> Silence | None:
        """Which of ``shards`` have not reported every second before ``upto_s``: a shard
        reports a second once its loop comes round after the second ends, so one that
        waits in a round trip (a server that stalls or does not answer) is silent, and
        the seconds it has not reported are counted short until it does (a shard that
        died and was restarted never reports the seconds in between: what it did then
        is booked to the second it was found dead)."""
        behind = [s for s in shards if self.reported_upto_s.get(s, 0) < upto_s]
        if not behind:
            return None
        since = min(self.reported_upto_s.get(s, 0) for s in behind)
        return Silence(len(behind), since)

    def _window(self, second: int) -> int:
        return bisect_right(self.boundaries, second)

    def _fold(self, second: int, bucket: Bucket) -> None:
        lat, svc = self.folded.setdefault(self._window(second), ({}, {}))
        for dst, src in ((lat, bucket.latency_us), (svc, bucket.service_us)):
            for b, c in src.items():
                dst[b] = dst.get(b, 0) + c
        bucket.latency_us, bucket.service_us = {}, {}

    def _windows_within(self, first_s: int, end_s: int) -> list[int]:
        edges = (0, *self.boundaries, self.newest + 1)  # no second beyond the newest
        inside = []
        for w in self.folded:
            lo, hi = edges[w], max(edges[w], edges[w + 1])
            if first_s <= lo and hi <= end_s:
                inside.append(w)
            elif lo < end_s and first_s < hi:
                raise ValueError(f"window [{first_s}, {end_s}) splits folded window {w}")
        return inside

    def changes_between(self, first_s: int, end_s: int) -> int:
        """Committed changes reported for seconds ``first_s <= s < end_s``."""
        return sum(b.change_count for s, b in self.seconds.items() if first_s <= s < end_s)

    def latency_between(self, first_s: int, end_s: int) -> dict[int, int]:
        return self._between(first_s, end_s, 0)

    def service_between(self, first_s: int, end_s: int) -> dict[int, int]:
        return self._between(first_s, end_s, 1)

    def _between(self, first_s: int, end_s: int, which: int) -> dict[int, int]:
        live = (
            (b.latency_us, b.service_us)[which]
            for s, b in self.seconds.items()
            if first_s <= s < end_s
        )
        folded = (self.folded[w][which] for w in self._windows_within(first_s, end_s))
        return histogram.merge([*live, *folded])
