"""How fast the binary-log audit reads a window, against the reader alone, in one run.

Starts a private server (binary log on, ROW, FULL), writes a window of row events on the
inventory ``customers`` table (multi-row INSERTs then UPDATEs, like loadengine's), and
times, ``--repeat`` times each, interleaved:

- ``reader``: ``mariadb-binlog --read-from-remote-server -v`` to /dev/null (the floor);
- ``audit``: ``binlog.read_window`` (the reader plus loadengine's per-key count);
- ``mysql-replication`` (only if importable; ``pip install mysql-replication``): the
  pure-Python replication client counting rows, on a smaller window (it is slow).

Reports median and spread (min-max) of seconds and row events/s, and the audit's ratio to
the reader alone. Run it with nothing else on the machine.

    .venv/bin/python benchmarks/audit_speed.py [--events 600000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadengine.core.dsn import Dsn
from loadengine.server import binlog, database, embedded, queries, schema_admin

ROWS_PER_STATEMENT = 1000
REPLICATION_LIMIT_S = 300


def write_window(
    d: Dsn, events: int, first: int = 1_000_000
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``events`` row events: half inserts of new customers, half updates of them."""
    conn = database.connect(d)
    try:
        start = queries.binlog_position(conn)
        assert start is not None
        inserts = events // 2
        cur = conn.cursor()
        for base in range(0, inserts, ROWS_PER_STATEMENT):
            n = min(ROWS_PER_STATEMENT, inserts - base)
            rows = ",".join(
                f"({first + base + i},'Sally','Thomas','c{first + base + i}@x.test')"
                for i in range(n)
            )
            cur.execute(f"INSERT INTO customers (id, first_name, last_name, email) VALUES {rows}")
            conn.commit()
        for base in range(0, events - inserts, ROWS_PER_STATEMENT):
            lo = first + base
            hi = min(first + inserts, lo + ROWS_PER_STATEMENT)
            cur.execute(
                f"UPDATE customers SET email = CONCAT('u', id, '@x.test') "
                f"WHERE id >= {lo} AND id < {hi}"
            )
            conn.commit()
        cur.close()
        end = queries.binlog_position(conn)
        assert end is not None
        return start, end
    finally:
        conn.close()


def time_reader(d: Dsn, start: dict[str, Any], end: dict[str, Any], logs: list[str]) -> float:
    files = binlog.files_between(logs, start["file"], end["file"])
    cmd = [
        binlog.reader(),
        "--read-from-remote-server",
        f"--host={d.host}",
        f"--port={d.port}",
        f"--user={d.user}",
        "--base64-output=decode-rows",
        "--verbose",
        f"--start-position={start['position']}",
        f"--stop-position={end['position']}",
        *files,
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env={**os.environ, "MYSQL_PWD": ""})
    return time.perf_counter() - t0


def time_audit(
    d: Dsn, start: dict[str, Any], end: dict[str, Any], logs: list[str]
) -> tuple[float, int]:
    read = binlog.read_window(d, start, end, logs, "mariadb")
    return read.seconds, sum(read.rows.values())


def time_replication(
    d: Dsn, start: dict[str, Any], end: dict[str, Any]
) -> tuple[float, int] | None:
    try:
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent
    except ImportError:
        return None
    stream = BinLogStreamReader(
        connection_settings={"host": d.host, "port": d.port, "user": d.user, "passwd": ""},
        server_id=4242,
        log_file=start["file"],
        log_pos=start["position"],
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent],
        is_mariadb=True,
    )
    rows, t0 = 0, time.perf_counter()
    for ev in stream:
        rows += len(ev.rows)
        if (stream.log_file, stream.log_pos) >= (end["file"], end["position"]):
            break
    stream.close()
    return time.perf_counter() - t0, rows


def spread(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.3f}s (min {min(xs):.3f}, max {max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=600_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--replication-events", type=int, default=60_000)
    args = ap.parse_args()
    server = embedded.start()
    try:
        d = server.dsn()
        schema_admin.init(d)
        rep_start, rep_end = write_window(d, args.replication_events)
        compare_replication(d, rep_start, rep_end, args.replication_events)
        start, end = write_window(d, args.events, first=10_000_000)
        logs = logs_now(d)
        reader_s, audit_s = [], []
        for _ in range(args.repeat):
            reader_s.append(time_reader(d, start, end, logs))
            secs, rows = time_audit(d, start, end, logs)
            assert rows == args.events, f"audit counted {rows}, wrote {args.events}"
            audit_s.append(secs)
        n = args.events
        print(f"window: {n:,} row events (customers, {ROWS_PER_STATEMENT}-row statements)")
        print(f"reader alone : {spread(reader_s)}  {n / statistics.median(reader_s):,.0f} events/s")
        print(
            f"audit        : {spread(audit_s)}  {n / statistics.median(audit_s):,.0f} events/s "
            f"(min {n / max(audit_s):,.0f}, max {n / min(audit_s):,.0f})"
        )
        print(
            "audit / reader time ratio: "
            f"{statistics.median(audit_s) / statistics.median(reader_s):.2f}"
        )
    finally:
        server.stop()
        server.remove()


def compare_replication(d: Dsn, start: dict[str, Any], end: dict[str, Any], n: int) -> None:
    """mysql-replication on a small window, in a thread with a time limit."""
    result: list[tuple[float, int] | None] = []
    worker = threading.Thread(
        target=lambda: result.append(time_replication(d, start, end)), daemon=True
    )
    worker.start()
    worker.join(REPLICATION_LIMIT_S)
    if not result:
        print(f"mysql-replication: no result within {REPLICATION_LIMIT_S}s")
        return
    if result[0] is None:
        print("mysql-replication: not installed (pip install mysql-replication to compare)")
        return
    secs, rows = result[0]
    print(f"mysql-replication: {rows:,} rows in {secs:.3f}s = {rows / secs:,.0f} events/s")
    ours, ours_rows = time_audit(d, start, end, logs_now(d))
    print(
        f"audit, same {n:,}-event window: {ours_rows:,} rows in {ours:.3f}s = "
        f"{ours_rows / ours:,.0f} events/s"
    )


def logs_now(d: Dsn) -> list[str]:
    conn = database.connect(d)
    try:
        return queries.binary_logs(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
