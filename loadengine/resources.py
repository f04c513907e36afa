"""CPU % and RSS of the coordinator, each shard and the local database server (psutil).

CPU % is per process over the interval since the previous sample (100 % = one core).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import psutil


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


class Sampler:
    """Holds psutil handles so that CPU % is measured between consecutive samples."""

    def __init__(self, db_pid: int | None) -> None:
        self._me = psutil.Process(os.getpid())
        self._me.cpu_percent(None)
        self._shards: dict[int, psutil.Process] = {}
        self._db = self._open(db_pid)

    @staticmethod
    def _open(pid: int | None) -> psutil.Process | None:
        if pid is None:
            return None
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)
            return proc
        except psutil.Error:
            return None

    def watch_shards(self, pids: dict[int, int]) -> None:
        for shard, pid in pids.items():
            if shard not in self._shards:
                proc = self._open(pid)
                if proc is not None:
                    self._shards[shard] = proc

    @staticmethod
    def _read(proc: psutil.Process | None) -> tuple[float, int] | None:
        if proc is None:
            return None
        with contextlib.suppress(psutil.Error):
            return proc.cpu_percent(None), proc.memory_info().rss
        return None

    def sample(self, t_s: float) -> ResourceSample:
        me = self._read(self._me) or (0.0, 0)
        shards = [self._read(p) or (0.0, 0) for _, p in sorted(self._shards.items())]
        db = self._read(self._db)
        return ResourceSample(
            t_s=round(t_s, 3),
            coordinator_cpu_pct=round(me[0], 1),
            coordinator_rss_bytes=me[1],
            shards_cpu_pct=round(sum(c for c, _ in shards), 1),
            shards_rss_bytes=sum(r for _, r in shards),
            per_shard_cpu_pct=tuple(round(c, 1) for c, _ in shards),
            db_cpu_pct=None if db is None else round(db[0], 1),
            db_rss_bytes=None if db is None else db[1],
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
