"""Absolute send times for one shard's batches, over one or more constant-rate steps.

A step runs ``rate_cps`` changes/s for ``duration_s``. Within a step, batch ``k`` carries
changes ``[k*B, min((k+1)*B, rate*duration))`` and is due at the intended time of its
first change, ``step_start + k*B/rate``. Times are computed from indices in integer
nanoseconds, never accumulated, so there is no drift however long the run.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Schedule:
    """The open-model schedule of one shard: ``steps`` of (rate_cps, duration_s)."""

    steps: tuple[tuple[int, int], ...]
    batch_size: int
    _first_batch: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _first_change: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _start_ns: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fb, fc, st = [0], [0], [0]
        for rate, dur in self.steps:
            n = rate * dur
            fb.append(fb[-1] + -(-n // self.batch_size))
            fc.append(fc[-1] + n)
            st.append(st[-1] + dur * NS_PER_S)
        object.__setattr__(self, "_first_batch", tuple(fb))
        object.__setattr__(self, "_first_change", tuple(fc))
        object.__setattr__(self, "_start_ns", tuple(st))

    @property
    def total_changes(self) -> int:
        return self._first_change[-1]

    @property
    def batch_count(self) -> int:
        return self._first_batch[-1]

    @property
    def total_s(self) -> int:
        return sum(d for _, d in self.steps)

    def _step_of_batch(self, batch: int) -> int:
        return bisect.bisect_right(self._first_batch, batch) - 1

    def _step_at(self, elapsed_ns: int) -> int:
        return min(len(self.steps) - 1, bisect.bisect_right(self._start_ns, elapsed_ns) - 1)

    def offset_ns(self, batch: int) -> int:
        """Intended send time of ``batch``, in ns after the common start."""
        i = self._step_of_batch(batch)
        local = batch - self._first_batch[i]
        return self._start_ns[i] + local * self.batch_size * NS_PER_S // self.steps[i][0]

    def changes_in(self, batch: int) -> int:
        """Changes carried by ``batch`` (a step's last batch may be short)."""
        if batch < 0 or batch >= self.batch_count:
            return 0
        i = self._step_of_batch(batch)
        rate, dur = self.steps[i]
        local = batch - self._first_batch[i]
        return min(self.batch_size, rate * dur - local * self.batch_size)

    def due_changes(self, elapsed_ns: int) -> int:
        """Changes whose intended time is at or before ``elapsed_ns`` (0 before the start)."""
        if elapsed_ns < 0 or not self.steps:
            return 0
        i = self._step_at(elapsed_ns)
        rate, dur = self.steps[i]
        local_ns = elapsed_ns - self._start_ns[i]
        in_step = 0 if rate == 0 else min(rate * dur, local_ns * rate // NS_PER_S + 1)
        return self._first_change[i] + in_step

    def batch_due_at(self, elapsed_ns: int) -> int:
        """Index of the latest batch whose intended time is at or before ``elapsed_ns``."""
        if elapsed_ns < 0 or not self.steps:
            return 0
        i = self._step_at(elapsed_ns)
        rate, _ = self.steps[i]
        first, last = self._first_batch[i], self._first_batch[i + 1]
        if rate == 0:  # nothing due in this step: the latest due batch precedes it
            return max(0, first - 1)
        local_ns = elapsed_ns - self._start_ns[i]
        if last == first:
            return first
        return min(last - 1, first + local_ns * rate // (self.batch_size * NS_PER_S))


def next_batch(schedule: Schedule, batch: int, elapsed_ns: int, policy: str) -> tuple[int, int]:
    """Where to continue after falling behind: ``(batch_to_send, batches_skipped)``.

    ``catch-up`` (and ``abort``, which the coordinator enforces) sends every batch, late.
    ``drop`` skips batches whose slot has fully passed (a later batch is already due) and
    reports them as missed, k6-style: the rate is never silently lowered, it is counted.
    """
    if policy != "drop":
        return batch, 0
    due = schedule.batch_due_at(elapsed_ns)
    if due > batch:
        return due, due - batch
    return batch, 0
