"""Merging shard deltas into per-second records and run totals: pure addition.

The coordinator feeds every ``ShardDelta`` to ``Aggregate.add``; the order in which they
arrive does not matter. Backlog is a level, not a delta: the latest value per shard and
second is kept and the per-second backlog is their sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loadengine import histogram
from loadengine.messages import ChangeCounts, ShardDelta

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
    latency_us: Mapping[int, int] = field(default_factory=dict)
    service_us: Mapping[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)

    def freeze(self) -> None:
        """Keep the histograms packed (a long run keeps one bucket per second)."""
        self.latency_us = histogram.Packed(self.latency_us)
        self.service_us = histogram.Packed(self.service_us)

    def add(self, d: ShardDelta) -> None:
        add_changes(self.changes, d.changes)
        add_counts(self.errors, d.errors)
        add_counts(self.faults, d.faults)
        self.statements += d.statements
        self.transactions += d.transactions
        self.late_batches += d.late_batches
        self.missed_changes += d.missed_changes
        self.reconnects += d.reconnects
        self.backlog_by_shard[d.shard] = d.backlog_changes
        self.latency_us = _added(self.latency_us, d.latency_us)
        self.service_us = _added(self.service_us, d.service_us)

    @property
    def change_count(self) -> int:
        return total_changes(self.changes)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def backlog_changes(self) -> int:
        return sum(self.backlog_by_shard.values())


def _added(into: Mapping[int, int], more: dict[int, int]) -> dict[int, int]:
    dst = into if isinstance(into, dict) else dict(into.items())  # a late delta thaws it
    for b, c in more.items():
        dst[b] = dst.get(b, 0) + c
    return dst


@dataclass(slots=True)
class Aggregate:
    """Per-second buckets, per-shard totals and the run total."""

    seconds: dict[int, Bucket] = field(default_factory=dict)
    shards: dict[int, Bucket] = field(default_factory=dict)
    total: Bucket = field(default_factory=Bucket)

    newest: int = -1

    def add(self, d: ShardDelta) -> None:
        self.seconds.setdefault(d.second, Bucket()).add(d)
        self.shards.setdefault(d.shard, Bucket()).add(d)
        self.total.add(d)
        while self.newest < d.second:
            self.newest += 1
            old = self.seconds.get(self.newest - FREEZE_AFTER_S)
            if old is not None:
                old.freeze()

    def changes_between(self, first_s: int, end_s: int) -> int:
        """Committed changes reported for seconds ``first_s <= s < end_s``."""
        return sum(b.change_count for s, b in self.seconds.items() if first_s <= s < end_s)

    def latency_between(self, first_s: int, end_s: int) -> dict[int, int]:
        return histogram.merge(
            b.latency_us for s, b in self.seconds.items() if first_s <= s < end_s
        )
