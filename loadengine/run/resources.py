"""CPU % and RSS: the coordinator, each shard, each node, and the local database server.

CPU % is per process over the interval since the previous reading (100 % = one core).
A node's CPU % is the whole machine's, on the same scale (200 % = two cores busy).
Shards and nodes are measured where they run (``ProcessMeter``, ``node_usage``) and
reach the coordinator through the backend; the coordinator measures itself and the
database server (``Sampler``).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class ShardUsage:
    """One shard's process, measured on its own node."""

    node: str
    pid: int
    cpu_pct: float
    rss_bytes: int


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """One machine running shards: all of its CPU and memory, not only the engine's."""

    node: str
    cpu_pct: float
    ram_used_bytes: int
    ram_total_bytes: int


@dataclass(frozen=True, slots=True)
class ResourceSample:
    t_s: float
    coordinator_cpu_pct: float
    coordinator_rss_bytes: int
    shards_cpu_pct: float
    shards_rss_bytes: int
    per_shard_cpu_pct: tuple[float, ...]
    db_cpu_pct: float | None
    db_rss_bytes: int | None
    per_shard_rss_bytes: tuple[int, ...] = ()
    nodes: tuple[NodeUsage, ...] = ()


def _open(pid: int | None) -> psutil.Process | None:
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        proc.cpu_percent(None)
        return proc
    except psutil.Error:
        return None


def _read(proc: psutil.Process | None) -> tuple[float, int] | None:
    if proc is None:
        return None
    with contextlib.suppress(psutil.Error):
        return proc.cpu_percent(None), proc.memory_info().rss
    return None


class _StatHandle:
    """One process's ``/proc/<pid>/stat`` kept open (Linux): CPU ticks and RSS pages in
    one ``pread`` — the file psutil parses for ``cpu_times`` (and the same resident-page
    count its ``memory_info`` reads from ``statm``). A handle outlives its process
    harmlessly: reads fail (``ProcessLookupError``) once the process is gone, even if its
    pid is reused."""

    TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self, pid: int) -> None:
        self._fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        self._ticks, self._t_ns = 0, 0

    def read(self) -> tuple[float, int]:
        """CPU % since the previous read (0 on the first) and RSS in bytes."""
        fields = os.pread(self._fd, 4096, 0).rsplit(b")", 1)[1].split()
        # after "pid (comm)": state is fields[0], utime [11], stime [12], rss [21]
        ticks, t_ns = int(fields[11]) + int(fields[12]), time.monotonic_ns()
        cpu = 0.0
        if self._t_ns:
            cpu = (ticks - self._ticks) / self.TICKS_PER_S * 1e11 / max(1, t_ns - self._t_ns)
        self._ticks, self._t_ns = ticks, t_ns
        return cpu, int(fields[21]) * self.PAGE_BYTES

    def close(self) -> None:
        os.close(self._fd)


class _PsutilHandle:
    """The same readings through psutil, where there is no ``/proc``."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self._proc.cpu_percent(None)
        self._first = True

    def read(self) -> tuple[float, int]:
        # the first reading has no interval: psutil would divide the next clock tick by
        # the microseconds since opening (seen: one sample of ~5,000 %)
        cpu = 0.0 if self._first else self._proc.cpu_percent(None)
        self._first = False
        return cpu, self._proc.memory_info().rss

    def close(self) -> None:
        return None


HAVE_PROC_STAT = os.path.exists(f"/proc/{os.getpid()}/stat")


def _handle(pid: int) -> _StatHandle | _PsutilHandle | None:
    try:
        return _StatHandle(pid) if HAVE_PROC_STAT else _PsutilHandle(pid)
    except (OSError, psutil.Error):
        return None


class ProcessMeter:
    """Handles on shard processes on this node, kept so that CPU % is measured between
    consecutive readings. On Linux each is its ``/proc/<pid>/stat`` held open: psutil's
    ``cpu_percent`` + ``memory_info`` cost 112 us per process per reading here (0.7 % of
    a core each second with 64 shards, a third of the coordinator's budget); one
    ``pread`` of the same counters costs 8 us."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._handles: dict[int, _StatHandle | _PsutilHandle] = {}  # by pid

    def read(self, pids: dict[int, int]) -> dict[int, ShardUsage]:
        """Each process read once; shards sharing a process (``--processes``) each get
        an equal share of its CPU and RSS, so that sums over shards stay true."""
        sharing: dict[int, list[int]] = {}
        for shard, pid in pids.items():
            sharing.setdefault(pid, []).append(shard)
        out: dict[int, ShardUsage] = {}
        for pid, shards in sharing.items():
            reading = self._read(pid)
            if reading is None:
                continue
            cpu, rss = reading
            n = len(shards)
            for shard in shards:
                out[shard] = ShardUsage(self.node, pid, round(cpu / n, 1), rss // n)
        return out

    def _read(self, pid: int) -> tuple[float, int] | None:
        handle = self._handles.get(pid)
        if handle is None:  # new (a restart's pid is forgotten first: ``forget``)
            handle = _handle(pid)
            if handle is None:
                return None
            self._handles[pid] = handle
        try:
            return handle.read()
        except (OSError, psutil.Error, IndexError, ValueError):
            return None  # gone; ``forget`` drops it

    def forget(self, pid: int) -> None:
        """Drop a process that has ended, so that a new one given the same pid is opened
        afresh (``is_running`` on every reading, which would catch that, was 16 % of the
        coordinator's active time with 64 shards)."""
        handle = self._handles.pop(pid, None)
        if handle is not None:
            handle.close()

    def close(self) -> None:
        for pid in list(self._handles):
            self.forget(pid)


def node_usage(node: str) -> NodeUsage:
    """This machine's CPU % since the previous call (first call: since boot) and RAM."""
    mem = psutil.virtual_memory()
    cpu = psutil.cpu_percent(None) * (psutil.cpu_count() or 1)
    return NodeUsage(node, round(cpu, 1), mem.total - mem.available, mem.total)


class Sampler:
    """The coordinator's own process and the local database server, plus what the
    backend measured on the shards' nodes."""

    def __init__(self, db_pid: int | None) -> None:
        self._me = _open(os.getpid())
        self._db = _open(db_pid)

    def sample(
        self, t_s: float, shards: dict[int, ShardUsage], nodes: dict[str, NodeUsage]
    ) -> ResourceSample:
        me = _read(self._me) or (0.0, 0)
        db = _read(self._db)
        ordered = [shards[i] for i in sorted(shards)]
        return ResourceSample(
            t_s=round(t_s, 3),
            coordinator_cpu_pct=round(me[0], 1),
            coordinator_rss_bytes=me[1],
            shards_cpu_pct=round(sum(u.cpu_pct for u in ordered), 1),
            shards_rss_bytes=sum(u.rss_bytes for u in ordered),
            per_shard_cpu_pct=tuple(u.cpu_pct for u in ordered),
            db_cpu_pct=None if db is None else round(db[0], 1),
            db_rss_bytes=None if db is None else db[1],
            per_shard_rss_bytes=tuple(u.rss_bytes for u in ordered),
            nodes=tuple(nodes[n] for n in sorted(nodes)),
        )


def find_local_server_pid(port: int) -> int | None:
    """Pid of a local mariadbd/mysqld listening on ``port``, if one can be seen."""
    names = {"mariadbd", "mysqld"}
    candidates = [p for p in psutil.process_iter(["name"]) if p.info["name"] in names]
    for proc in candidates:
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return proc.pid
    return candidates[0].pid if len(candidates) == 1 else None
