"""A workload's DDL schedule during the load (``core.spec.DdlSchedule``): one thread, its
own connection, statements at absolute times from the run's common start.

A statement waits for the metadata lock like any other session's ALTER TABLE (the
shards' transactions are short), so its time in the results is from when it was due to
when the server answered. A statement that fails is recorded with its error class and
the schedule goes on: the audit counts the ALTER TABLE statements the binary log holds
against those that succeeded here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from loadengine.core.dsn import Dsn
from loadengine.core.spec import DdlSchedule
from loadengine.server import database


@dataclass(slots=True)
class DdlRecord:
    at_s: float  # due, seconds after the common start
    sql: str
    ok: bool = False
    took_ms: float | None = None
    error: str | None = None

    def document(self) -> dict[str, Any]:
        return {"at_s": self.at_s, "sql": self.sql, "ok": self.ok, "took_ms": self.took_ms,
                "error": self.error}  # fmt: skip


@dataclass(slots=True)
class DdlRunner:
    dsn: Dsn
    schedule: DdlSchedule
    run_id: str
    records: list[DdlRecord] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def begin(self, start_unix_ns: int, total_s: float) -> None:
        due = [(at, sql.replace("{run}", self.run_id)) for at, sql in self.schedule.due(total_s)]
        self._thread = threading.Thread(
            target=self._run, args=(start_unix_ns, due), name="loadengine-ddl", daemon=True
        )
        self._thread.start()

    def _run(self, start_unix_ns: int, due: list[tuple[float, str]]) -> None:
        conn = None
        try:
            for at_s, sql in due:
                wait_s = (start_unix_ns + at_s * 1e9 - time.time_ns()) / 1e9
                if wait_s > 0 and self._stop.wait(wait_s):
                    return
                record = DdlRecord(at_s, sql)
                self.records.append(record)
                try:
                    if conn is None:
                        conn = database.connect(self.dsn)
                    database.execute(conn, sql)
                    record.ok = True
                except database.DatabaseError as exc:
                    record.error, conn = exc.error_class, None
                except Exception as exc:
                    record.error = database.classify(exc)
                record.took_ms = round((time.time_ns() - start_unix_ns) / 1e6 - at_s * 1e3, 1)
        finally:
            if conn is not None:
                conn.close()

    def finish(self) -> list[dict[str, Any]]:
        """Stop (a statement under way completes) and return what ran."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60.0)
        return [r.document() for r in self.records]
