"""loadengine.run.resources.ProcessMeter on real processes (this one, a child; no database)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from loadengine.run.resources import HAVE_PROC_STAT, ProcessMeter


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


def test_proc_stat_readings_agree_with_psutil() -> None:
    """On Linux the meter reads ``/proc/<pid>/stat`` itself (psutil costs 14x as much per
    process): the same CPU time and resident memory psutil reports."""
    if not HAVE_PROC_STAT:
        pytest.skip("no /proc here: the meter uses psutil itself")
    me = psutil.Process()
    meter = ProcessMeter("here")
    meter.read({0: os.getpid()})
    cpu0, t0 = me.cpu_times(), time.monotonic()
    while time.monotonic() - t0 < 0.3:
        _burn_cpu()
    usage = meter.read({0: os.getpid()})[0]
    cpu1, t1 = me.cpu_times(), time.monotonic()
    expect_pct = ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / (t1 - t0) * 100
    tick_pct = 100 / os.sysconf("SC_CLK_TCK") / (t1 - t0)  # one clock tick, in % (~3 %)
    assert usage.cpu_pct > 0
    assert abs(usage.cpu_pct - expect_pct) <= 2 * tick_pct + 1
    assert abs(usage.rss_bytes - me.memory_info().rss) < 2**20


def test_a_process_that_ended_is_left_out_not_an_error() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        meter = ProcessMeter("here")
        assert sorted(meter.read({0: os.getpid(), 1: child.pid})) == [0, 1]
    finally:
        child.kill()
        child.wait()
    assert sorted(meter.read({0: os.getpid(), 1: child.pid})) == [0]
    meter.close()
