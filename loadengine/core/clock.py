"""Clocks are passed in, never read from module state, so tests can use a fake one."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def sleep_ns(self, duration_ns: int) -> None: ...

    def unix_ns(self) -> int: ...


class SystemClock:
    """Monotonic time for pacing; wall time only to agree on a common start instant."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_ns(self, duration_ns: int) -> None:
        if duration_ns > 0:
            time.sleep(duration_ns / 1e9)

    def unix_ns(self) -> int:
        return time.time_ns()


def monotonic_from_unix(clock: Clock, unix_ns: int) -> int:
    """This process's monotonic time corresponding to wall-clock instant ``unix_ns``.

    The offset is measured once, here: a shard converts the coordinator's start instant
    and then paces on its own monotonic clock, immune to wall-clock steps mid-run.
    """
    return unix_ns - (clock.unix_ns() - clock.now_ns())


class FakeClock:
    """Virtual time: ``sleep_ns`` advances it; ``step_ns`` is added on every read."""

    def __init__(self, start_ns: int = 0, step_ns: int = 0, unix_offset_ns: int = 0) -> None:
        self.t_ns = start_ns
        self.step_ns = step_ns
        self.unix_offset_ns = unix_offset_ns

    def now_ns(self) -> int:
        self.t_ns += self.step_ns
        return self.t_ns

    def sleep_ns(self, duration_ns: int) -> None:
        self.t_ns += max(0, duration_ns)

    def unix_ns(self) -> int:
        return self.t_ns + self.unix_offset_ns
