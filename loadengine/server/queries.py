"""The coordinator's questions to the server, over a connection of ``database``: its
settings, its row-change counters, its pid, its binary log's position and files."""

from __future__ import annotations

import contextlib
from typing import Any

from loadengine.server.database import DRIVER_ERRORS, DatabaseError, query

# The server's own cumulative row-change counters, by flavour: MySQL 8 has InnoDB's
# (InnoDB tables only); MariaDB 10.11 has only the handler's (all engines, all sessions).
ROW_COUNTERS: tuple[tuple[str, dict[str, str]], ...] = (
    (
        "Innodb_rows_*",
        {
            "Innodb_rows_inserted": "insert",
            "Innodb_rows_updated": "update",
            "Innodb_rows_deleted": "delete",
        },
    ),
    (
        "Handler_*",
        {"Handler_write": "insert", "Handler_update": "update", "Handler_delete": "delete"},
    ),
)


def flavor_of(env: dict[str, Any]) -> str:
    """MariaDB says so in its version, unless started with a 5.7-style ``--version`` for
    Debezium; then its MariaDB-only variables still tell (MySQL has no gtid_strict_mode)."""
    mariadb = "mariadb" in str(env.get("version", "")).lower() or "gtid_strict_mode" in env
    return "mariadb" if mariadb else "mysql"


def server_environment(conn: Any) -> dict[str, Any]:
    """Server version and the settings that decide what a CDC pipeline sees."""
    names = (
        "version",
        "version_comment",
        "log_bin",
        "binlog_format",
        "binlog_row_image",
        "sync_binlog",
        "innodb_flush_log_at_trx_commit",
        "server_id",
        "gtid_mode",
        "enforce_gtid_consistency",
        "gtid_strict_mode",
        "binlog_row_metadata",
        "binlog_transaction_compression",
        "log_bin_compress",
        "max_allowed_packet",
    )
    quoted = ",".join(f"'{n}'" for n in names)
    rows = query(conn, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({quoted})")
    env: dict[str, Any] = {str(k): plain(v) for k, v in rows}
    env["flavor"] = flavor_of(env)
    return env


def plain(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes | bytearray) else value


def row_change_counters(conn: Any) -> dict[str, int]:
    """Cumulative row changes by kind (all tables, all sessions); see ``ROW_COUNTERS``."""
    return row_change_counters_with_source(conn)[1]


def row_change_counters_with_source(conn: Any) -> tuple[str, dict[str, int]]:
    names = [n for _, m in ROW_COUNTERS for n in m]
    quoted = ",".join(f"'{n}'" for n in names)
    rows = query(conn, f"SHOW GLOBAL STATUS WHERE Variable_name IN ({quoted})")
    values = {str(plain(k)): int(plain(v)) for k, v in rows}
    for source, mapping in ROW_COUNTERS:
        if all(n in values for n in mapping):
            return source, {kind: values[n] for n, kind in mapping.items()}
    raise DatabaseError("unsupported", "server has no row-change counters")


def server_pid(conn: Any) -> int | None:
    """The server's pid when it reports one (MariaDB/MySQL ``pid_file``), else None."""
    rows = query(conn, "SELECT @@pid_file")
    if not rows or not rows[0][0]:
        return None
    try:
        with open(str(plain(rows[0][0]))) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def binlog_position(conn: Any) -> dict[str, Any] | None:
    """Current binary-log file/position (and GTID position where the server has one)."""
    for sql in ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"):
        try:
            rows = query(conn, sql)
        except DRIVER_ERRORS:
            continue
        if not rows:
            return None
        pos: dict[str, Any] = {"file": plain(rows[0][0]), "position": int(rows[0][1])}
        with contextlib.suppress(*DRIVER_ERRORS):
            gtid = query(conn, "SELECT @@gtid_binlog_pos")  # MariaDB
            pos["gtid"] = plain(gtid[0][0])
        if "gtid" not in pos and len(rows[0]) > 4:
            pos["gtid"] = plain(rows[0][4])  # MySQL Executed_Gtid_Set
        return pos
    return None


def binary_logs(conn: Any) -> list[str]:
    """Names of the server's binary-log files, oldest first."""
    return [str(plain(r[0])) for r in query(conn, "SHOW BINARY LOGS")]


def binary_log_sizes(conn: Any) -> dict[str, int]:
    """Each binary-log file's size in bytes."""
    return {str(plain(r[0])): int(r[1]) for r in query(conn, "SHOW BINARY LOGS")}


def window_bytes(sizes: dict[str, int], start: dict[str, Any], end: dict[str, Any]) -> int:
    """Bytes of binary log between two positions (across files). Pure."""
    first, last = str(start["file"]), str(end["file"])
    if first == last:
        return int(end["position"]) - int(start["position"])
    middle = sum(n for f, n in sizes.items() if first < f < last)
    return sizes.get(first, 0) - int(start["position"]) + middle + int(end["position"])
