"""CDC readiness: could this server feed a change-data-capture pipeline? Pure.

Reads the settings ``queries.server_environment`` collected. Problems make CDC
impossible (no binary log, or rows not logged as full row images); notes are facts a CDC
user should know but that do not stop a reader.
"""

from __future__ import annotations

from typing import Any


def _on(value: Any) -> bool:
    return str(value).upper() in ("ON", "1", "TRUE", "YES")


def readiness(env: dict[str, Any]) -> dict[str, Any]:
    problems: list[str] = []
    notes: list[str] = []
    if not _on(env.get("log_bin")):
        problems.append("binary log is off (log_bin=OFF)")
    else:
        if str(env.get("binlog_format", "")).upper() != "ROW":
            problems.append(f"binlog_format={env.get('binlog_format')} (CDC needs ROW)")
        if str(env.get("binlog_row_image", "")).upper() != "FULL":
            problems.append(f"binlog_row_image={env.get('binlog_row_image')} (CDC needs FULL)")
    metadata = env.get("binlog_row_metadata")
    if metadata is not None and str(metadata).upper() != "FULL":
        notes.append(f"binlog_row_metadata={metadata}: readers needing column names lack them")
    if env.get("flavor") == "mysql" and not _on(env.get("gtid_mode")):
        notes.append("gtid_mode is off: Debezium's source.ts_ms then has one-second resolution")
    for name in ("binlog_transaction_compression", "log_bin_compress"):
        if _on(env.get(name)):
            notes.append(f"{name}=ON: some readers skip compressed transactions")
    return {"ready": not problems, "problems": problems, "notes": notes}


def one_line(result: dict[str, Any]) -> str:
    return "; ".join(result["problems"] + result["notes"])
