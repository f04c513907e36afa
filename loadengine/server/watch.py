"""The watch on the server during a run: its own row-change counters each second, and a
pt-heartbeat style heartbeat row every 100 ms (when following the binary log).

One thread, one connection, an absolute schedule from the run's common start. Counters
are sampled on each second boundary *before* that tick's heartbeat, so the heartbeat
writes between two samples are known exactly and subtracted: ``server_changes`` is the
server's view of the load alone (plus anything else other sessions did; it is global).
The last sample is taken by ``finish`` after every shard has stopped, so commits that
were in flight at the end land in the last second, as they do in the engine's count.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from loadengine.core.dsn import Dsn
from loadengine.server import database, queries
from loadengine.server.binlog import HEARTBEAT_TABLE

TICK_NS = 100_000_000
TICKS_PER_SECOND = 10
HEARTBEAT_DDL = (
    f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} "
    "(id INT PRIMARY KEY, ts_us BIGINT NOT NULL) ENGINE=InnoDB"
)
HEARTBEAT_ID = 1


def create_heartbeat(conn: Any) -> None:
    database.execute(conn, HEARTBEAT_DDL)
    cur = conn.cursor()
    try:
        cur.execute(
            f"INSERT INTO {HEARTBEAT_TABLE} (id, ts_us) VALUES (%s, %s) "
            "ON DUPLICATE KEY UPDATE ts_us = VALUES(ts_us)",
            (HEARTBEAT_ID, time.time_ns() // 1000),
        )
        conn.commit()
    finally:
        cur.close()


@dataclass(slots=True)
class WatchState:
    source: str = ""
    samples: list[tuple[int, dict[str, int], int]] = field(default_factory=list)
    # (second boundary index, cumulative counters, heartbeats committed before it)
    heartbeats: int = 0
    heartbeat_errors: int = 0
    sample_errors: int = 0


def per_second(state: WatchState) -> dict[int, int | None]:
    """Server row changes per run second, heartbeat writes removed (pure). A counter that
    went down means the server restarted (counters reset): that interval is unknown."""
    out: dict[int, int | None] = {}
    for (s0, c0, h0), (_, c1, h1) in zip(state.samples, state.samples[1:], strict=False):
        if any(c1[k] < c0.get(k, 0) for k in c1):
            out[s0] = None
            continue
        out[s0] = sum(c1.values()) - sum(c0.values()) - (h1 - h0)
    return out


class ServerWatch:
    def __init__(self, dsn: Dsn, heartbeat: bool) -> None:
        self.conn = database.connect(dsn)
        self.conn.autocommit = True
        self.heartbeat = heartbeat
        self.state = WatchState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._start_unix_ns = 0
        self._total_s = 0

    def begin(self, start_unix_ns: int, total_s: int) -> None:
        """Called before the common start (shards are waiting): take the baseline now."""
        self._start_unix_ns, self._total_s = start_unix_ns, total_s
        self._sample(0)
        self._thread = threading.Thread(target=self._run, name="server-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            due = self._start_unix_ns + tick * TICK_NS
            delay = (due - time.time_ns()) / 1e9
            if delay > 0 and self._stop.wait(delay):
                break
            with self._lock:
                second = tick // TICKS_PER_SECOND
                if tick % TICKS_PER_SECOND == 0 and 0 < second < self._total_s:
                    self._sample(second)
                if self.heartbeat:
                    self._beat()
            tick = max(tick + 1, (time.time_ns() - self._start_unix_ns) // TICK_NS)

    def server_changes(self, second: int) -> int | None:
        """The server's row changes in run second ``second``, once both ends are sampled."""
        samples = {s: (c, h) for s, c, h in self.state.samples[-4:]}
        if second not in samples or second + 1 not in samples:
            return None
        (c0, h0), (c1, h1) = samples[second], samples[second + 1]
        return sum(c1.values()) - sum(c0.values()) - (h1 - h0)

    def _sample(self, second: int) -> None:
        try:
            source, counters = queries.row_change_counters_with_source(self.conn)
        except Exception:  # the server is away: this second stays unknown
            self.state.sample_errors += 1
            self._reconnect_quietly()
            return
        self.state.source = source
        self.state.samples.append((second, counters, self.state.heartbeats))

    def _beat(self) -> None:
        try:
            database.query(
                self.conn,
                f"UPDATE {HEARTBEAT_TABLE} SET ts_us = %s WHERE id = %s",
                (time.time_ns() // 1000, HEARTBEAT_ID),
            )
            self.state.heartbeats += 1
        except Exception:
            self.state.heartbeat_errors += 1
            self._reconnect_quietly()

    def _reconnect_quietly(self) -> None:
        try:
            self.conn.reconnect(attempts=1, delay=0)
        except Exception:
            return

    def finish(self, elapsed_s: float) -> WatchState:
        """Stop the thread and take the closing sample (labelled with the last second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            last = self.state.samples[-1][0] if self.state.samples else 0
            self._sample(max(last + 1, min(self._total_s, int(elapsed_s + 0.999))))
        try:
            self.conn.close()
        except Exception:
            pass
        return self.state
