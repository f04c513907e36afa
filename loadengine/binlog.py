"""Count row events in a window of the binary log, read as a replica would.

Uses the server distribution's own reader (``mariadb-binlog`` / ``mysqlbinlog``) with
``--read-from-remote-server``, decoding row events (``-v``) and counting the
``### INSERT INTO`` / ``### UPDATE`` / ``### DELETE FROM`` lines: one per row. This is the
ground truth a CDC reader such as Debezium sees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

from loadengine.dsn import Dsn
from loadengine.messages import ChangeCounts

READERS = ("mariadb-binlog", "mysqlbinlog")
ROW_LINE = re.compile(rb"^### (INSERT INTO|UPDATE|DELETE FROM) `([^`]*)`\.`([^`]*)`")
KIND = {b"INSERT INTO": "insert", b"UPDATE": "update", b"DELETE FROM": "delete"}


class BinlogError(RuntimeError):
    pass


def reader() -> str:
    for name in READERS:
        path = shutil.which(name)
        if path:
            return path
    raise BinlogError("no binary-log reader found (install mariadb-client or mysql-client)")


def count_lines(lines: Iterable[bytes], database: str | None = None) -> ChangeCounts:
    """Row events by table and kind from decoded ``-v`` output (pure; unit tested)."""
    out: ChangeCounts = {}
    for line in lines:
        m = ROW_LINE.match(line)
        if not m or (database is not None and m.group(2).decode() != database):
            continue
        kinds = out.setdefault(m.group(3).decode(), {})
        kind = KIND[m.group(1)]
        kinds[kind] = kinds.get(kind, 0) + 1
    return out


def files_between(all_logs: list[str], first: str, last: str) -> list[str]:
    return [f for f in all_logs if first <= f <= last]


def count_window(
    dsn: Dsn, start: dict[str, Any], end: dict[str, Any], all_logs: list[str]
) -> ChangeCounts:
    """Row events for ``dsn.database`` between two ``database.binlog_position`` results."""
    files = files_between(all_logs, str(start["file"]), str(end["file"]))
    cmd = [
        reader(),
        "--read-from-remote-server",
        f"--host={dsn.host}",
        f"--port={dsn.port}",
        f"--user={dsn.user}",
        "--base64-output=decode-rows",
        "--verbose",
        f"--start-position={start['position']}",
        f"--stop-position={end['position']}",
        *files,
    ]
    if dsn.unix_socket:
        cmd.insert(2, f"--socket={dsn.unix_socket}")
    env = {**os.environ, "MYSQL_PWD": dsn.password}  # never on the command line
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    counts = count_lines(proc.stdout, dsn.database)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise BinlogError(f"binary-log reader failed: {err.decode(errors='replace').strip()[:200]}")
    return counts
