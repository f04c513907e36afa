"""Absolute send times for one shard's batches, over one or more constant-rate steps.

A step runs ``rate_cps`` changes/s for ``duration_s``. Within a step, batch ``k`` carries
changes ``[k*B, min((k+1)*B, rate*duration))`` and is due at the intended time of its
first change, ``step_start + phase + k*B/rate``. Times are computed from indices in
integer nanoseconds, never accumulated, so there is no drift however long the run.

``phase`` (a fraction of one batch interval, ``0 <= phase < 1``) staggers shards: shard
``i`` of ``n`` at ``phase = i/n`` sends between the others, so the shards' batches fall
evenly and every second holds the same number of them (with one phase for all, 4 shards
at 25 CPS in batches of 10 put 12 batches in one second and 8 in the next). A step's last
batch is never shifted past the step's end.
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
    phase: float = 0.0
    _phase_ns: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _first_batch: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _first_change: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _start_ns: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fb, fc, st, ph = [0], [0], [0], []
        for rate, dur in self.steps:
            n = rate * dur
            batches = -(-n // self.batch_size)
            ph.append(_phase_ns(self.phase, rate, dur, self.batch_size, batches))
            fb.append(fb[-1] + batches)
            fc.append(fc[-1] + n)
            st.append(st[-1] + dur * NS_PER_S)
        object.__setattr__(self, "_phase_ns", tuple(ph))
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
        step_ns = local * self.batch_size * NS_PER_S // self.steps[i][0]
        return self._start_ns[i] + self._phase_ns[i] + step_ns

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
        local_ns = elapsed_ns - self._start_ns[i] - self._phase_ns[i]
        if elapsed_ns >= self._start_ns[i + 1] - 1:  # a step's changes are all due by its end
            in_step = rate * dur
        elif rate == 0 or local_ns < 0:
            in_step = 0
        else:
            in_step = min(rate * dur, local_ns * rate // NS_PER_S + 1)
        return self._first_change[i] + in_step

    def batch_due_at(self, elapsed_ns: int) -> int:
        """Index of the latest batch whose intended time is at or before ``elapsed_ns``."""
        if elapsed_ns < 0 or not self.steps:
            return 0
        i = self._step_at(elapsed_ns)
        rate, _ = self.steps[i]
        first, last = self._first_batch[i], self._first_batch[i + 1]
        local_ns = elapsed_ns - self._start_ns[i] - self._phase_ns[i]
        if rate == 0 or local_ns < 0:  # nothing due yet in this step: the latest precedes it
            return max(0, first - 1)
        if last == first:
            return first
        return min(last - 1, first + local_ns * rate // (self.batch_size * NS_PER_S))


def _phase_ns(phase: float, rate: int, dur_s: int, batch_size: int, batches: int) -> int:
    """The shift of a step's batches: ``phase`` of one batch interval, but never so much
    that the step's last (possibly short) batch leaves the step."""
    if rate <= 0 or phase <= 0 or batches == 0:
        return 0
    interval_ns = batch_size * NS_PER_S // rate
    last_ns = (batches - 1) * batch_size * NS_PER_S // rate
    room_ns = dur_s * NS_PER_S - last_ns - 1
    return max(0, min(int(phase * interval_ns), room_ns))


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
