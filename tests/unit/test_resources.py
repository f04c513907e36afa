"""loadengine.resources.ProcessMeter on this very process (real psutil, no database)."""

from __future__ import annotations

import os

from loadengine.resources import ProcessMeter


def _burn_cpu() -> int:
    return sum(i * i for i in range(300_000))


def test_shards_sharing_a_process_split_its_cpu_and_rss() -> None:
    """Shards on threads of one process (``--processes``) each get an equal share, so a
    sum over shards counts the process once."""
    me = os.getpid()
    meter = ProcessMeter("here")
    meter.read({0: me, 1: me, 2: me})
    _burn_cpu()
    shared = meter.read({0: me, 1: me, 2: me})
    assert sorted(shared) == [0, 1, 2]
    assert {u.pid for u in shared.values()} == {me}
    assert len({u.cpu_pct for u in shared.values()}) == 1
    assert len({u.rss_bytes for u in shared.values()}) == 1
    alone = meter.read({0: me})[0]
    assert alone.rss_bytes > 0
    assert abs(sum(u.rss_bytes for u in shared.values()) - alone.rss_bytes) < alone.rss_bytes / 10


def test_a_process_first_seen_reports_no_cpu_yet() -> None:
    """CPU % needs an interval: the first reading of a process is 0, never a clock tick
    divided by the microseconds since it was opened."""
    for _ in range(20):
        first = ProcessMeter("here").read({0: os.getpid()})[0]
        assert first.cpu_pct == 0.0 and first.rss_bytes > 0


def test_a_forgotten_pid_is_opened_afresh() -> None:
    meter = ProcessMeter("here")
    meter.read({0: os.getpid()})
    sum(i * i for i in range(200_000))  # some CPU, so that a kept handle reads above 0
    meter.forget(os.getpid())
    again = meter.read({0: os.getpid()})[0]
    assert again.cpu_pct == 0.0  # a first reading again: no interval yet
    assert again.rss_bytes > 0
