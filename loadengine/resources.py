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


class ProcessMeter:
    """psutil handles for shard processes on this node, kept so that CPU % is measured
    between consecutive readings."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._procs: dict[int, psutil.Process] = {}  # by pid

    def read(self, pids: dict[int, int]) -> dict[int, ShardUsage]:
        """Each process read once; shards sharing a process (``--processes``) each get
        an equal share of its CPU and RSS, so that sums over shards stay true."""
        sharing: dict[int, list[int]] = {}
        for shard, pid in pids.items():
            sharing.setdefault(pid, []).append(shard)
        out: dict[int, ShardUsage] = {}
        for pid, shards in sharing.items():
            proc = self._procs.get(pid)
            if proc is None:  # new (a restart's pid is forgotten first: ``forget``)
                proc = _open(pid)
                if proc is None:
                    continue
                self._procs[pid] = proc
                # CPU % needs an interval: read right after opening, psutil divides the
                # next clock tick by microseconds (seen: one sample of ~5,000 %)
                cpu, rss = 0.0, (_read(proc) or (0.0, 0))[1]
            else:
                cpu, rss = _read(proc) or (0.0, 0)
            n = len(shards)
            for shard in shards:
                out[shard] = ShardUsage(self.node, pid, round(cpu / n, 1), rss // n)
        return out

    def forget(self, pid: int) -> None:
        """Drop a process that has ended, so that a new one given the same pid is opened
        afresh (``is_running`` on every reading, which would catch that, was 16 % of the
        coordinator's active time with 64 shards)."""
        self._procs.pop(pid, None)


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
