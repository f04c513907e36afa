"""Absolute send times for one shard's batches, and the overload policies.

Batch ``k`` carries changes ``[k*B, min((k+1)*B, total))`` and is due at the intended
time of its first change: ``k * B / rate`` seconds after the common start. Times are
computed from the batch index with integer nanoseconds, never accumulated, so there is
no drift however long the run.
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Schedule:
    """The open-model schedule of one shard: ``rate_cps`` changes/s for ``total_s`` seconds."""

    rate_cps: int
    batch_size: int
    total_s: int

    @property
    def total_changes(self) -> int:
        return self.rate_cps * self.total_s

    @property
    def batch_count(self) -> int:
        return -(-self.total_changes // self.batch_size)

    def offset_ns(self, batch: int) -> int:
        """Intended send time of ``batch``, in ns after the common start."""
        return batch * self.batch_size * NS_PER_S // self.rate_cps

    def changes_in(self, batch: int) -> int:
        """Changes carried by ``batch`` (the last one may be short)."""
        return max(0, min(self.batch_size, self.total_changes - batch * self.batch_size))

    def due_changes(self, elapsed_ns: int) -> int:
        """Changes whose intended time is at or before ``elapsed_ns`` (0 before the start)."""
        if elapsed_ns < 0:
            return 0
        return min(self.total_changes, elapsed_ns * self.rate_cps // NS_PER_S + 1)

    def batch_due_at(self, elapsed_ns: int) -> int:
        """Index of the latest batch whose intended time is at or before ``elapsed_ns``."""
        if elapsed_ns < 0:
            return 0
        return min(self.batch_count, (elapsed_ns * self.rate_cps) // (self.batch_size * NS_PER_S))


def next_batch(schedule: Schedule, batch: int, elapsed_ns: int, policy: str) -> tuple[int, int]:
    """Where to continue after falling behind: ``(batch_to_send, batches_skipped)``.

    ``catch-up`` (and ``abort``, which the coordinator enforces) sends every batch, late.
    ``drop`` skips batches whose slot has fully passed (the next batch is already due) and
    reports them as missed, k6-style: the rate is never silently lowered, it is counted.
    """
    if policy != "drop":
        return batch, 0
    due = schedule.batch_due_at(elapsed_ns)
    if due > batch:
        return due, due - batch
    return batch, 0
