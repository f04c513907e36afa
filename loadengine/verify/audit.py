"""The binary-log audit: the run's window of the log, key by key, against the ledger. Pure.

Every row event in the window falls in one class:
- ``heartbeat``: the capture-lag heartbeat table (never workload);
- ``setup``: an insert of a key a shard seeded before the load;
- ``load``: an insert of a key a shard inserted, an update of a key it updated, a delete
  of a key it deleted (as many as the ledger says, key by key);
- anything else (another table in the database, a key no shard wrote) is extra.

DDL statements (``ALTER TABLE``) in the window are counted apart: ``ddl`` (observed
against what the engine ran).

Per (table, kind, key), with ``e`` events expected from the ledger and ``o`` observed:
``missing += e - o`` when ``o < e``; ``duplicates += o - e`` when ``o > e > 0``;
``extra += o`` when ``e == 0``. A clean run has 0, 0, 0, and ``changes_by_table`` (every
non-setup, non-heartbeat event on the database) equal to the engine's own count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from loadengine.core.aggregate import add_changes, total_changes
from loadengine.core.messages import ChangeCounts
from loadengine.server.binlog import HEARTBEAT_TABLE, RowKey
from loadengine.verify.ledger import TableLedger

MAX_EXAMPLES = 10


@dataclass(slots=True)
class Tally:
    changes_by_table: ChangeCounts = field(default_factory=dict)
    setup_by_table: ChangeCounts = field(default_factory=dict)
    heartbeat: int = 0
    matched: dict[str, int] = field(default_factory=lambda: {"load": 0, "setup": 0})
    extra: int = 0
    duplicates: int = 0
    examples: dict[str, list[str]] = field(
        default_factory=lambda: {"missing": [], "extra": [], "duplicates": []}
    )

    def example(self, what: str, table: str, kind: str, key: str) -> None:
        if len(self.examples[what]) < MAX_EXAMPLES:
            self.examples[what].append(f"{table} {kind} {key}")


class Owners:
    """Which shard's ledger owns a key: shards of a table share ``first_key`` and stride."""

    def __init__(self, tables: list[tuple[str, TableLedger]]) -> None:
        self.by_table: dict[str, dict[int, TableLedger]] = {}
        for table, t in tables:
            self.by_table.setdefault(table, {})[t.shard] = t

    def find(self, table: str, key_text: str) -> tuple[TableLedger, int] | None:
        shards = self.by_table.get(table)
        if not shards:
            return None
        try:
            key = int(key_text)
        except ValueError:
            return None
        any_t = next(iter(shards.values()))
        off = key - any_t.first_key
        if off < 0:
            return None
        t = shards.get(off % any_t.stride)
        k = None if t is None else t.index_of(key)
        return None if t is None or k is None else (t, k)


def _classify(owners: Owners, table: str, kind: str, key: str) -> tuple[str, int]:
    found = owners.find(table, key)
    if found is None:
        return "none", 0
    t, k = found
    return t.expected(kind, k)


def _tally(rows: Counter[RowKey], owners: Owners) -> Tally:
    tally = Tally()
    for (table, kind, key), o in rows.items():
        if table == HEARTBEAT_TABLE:
            tally.heartbeat += o
            continue
        cat, e = _classify(owners, table, kind, key)
        add_changes(
            tally.setup_by_table if cat == "setup" else tally.changes_by_table, {table: {kind: o}}
        )
        if cat != "none":
            tally.matched[cat] += min(o, e)
        if o > e > 0:
            tally.duplicates += o - e
            tally.example("duplicates", table, kind, key)
        elif e == 0:
            tally.extra += o
            tally.example("extra", table, kind, key)
    return tally


def _expected(tables: list[tuple[str, TableLedger]]) -> tuple[int, int]:
    load = sum(t.inserted + t.update_total + t.delete_total for _, t in tables)
    setup = sum(t.seeded for _, t in tables)
    return load, setup


def _missing_examples(
    rows: Counter[RowKey], tables: list[tuple[str, TableLedger]]
) -> Iterator[str]:
    for table, t in tables:
        for k in range(t.seeded + t.inserted):
            key = str(t.key(k))
            if rows.get((table, "insert", key), 0) < 1:
                yield f"{table} insert {key}"
            if k < len(t.updates) and rows.get((table, "update", key), 0) < t.updates[k]:
                yield f"{table} update {key}"
            if k < len(t.deletes) and rows.get((table, "delete", key), 0) < t.deletes[k]:
                yield f"{table} delete {key}"


def compare(
    rows: Counter[RowKey],
    tables: list[tuple[str, TableLedger]],
    engine_changes: ChangeCounts,
    heartbeats_written: int | None,
) -> dict[str, Any]:
    """The ``audit`` object of the results file (see module doc)."""
    tally = _tally(rows, Owners(tables))
    exp_load, exp_setup = _expected(tables)
    missing = exp_load - tally.matched["load"]
    setup_missing = exp_setup - tally.matched["setup"]
    if missing or setup_missing:
        gen = _missing_examples(rows, tables)
        tally.examples["missing"] = [x for _, x in zip(range(MAX_EXAMPLES), gen, strict=False)]
    binlog_total = total_changes(tally.changes_by_table)
    engine_total = total_changes(engine_changes)
    heartbeat_ok = heartbeats_written is None or tally.heartbeat >= heartbeats_written
    matches = _nonzero(tally.changes_by_table) == _nonzero(engine_changes)
    return {
        "missing": missing,
        "extra": tally.extra,
        "duplicates": tally.duplicates,
        "changes_by_table": tally.changes_by_table,
        "binlog_changes": binlog_total,
        "engine_changes": engine_total,
        "matches_engine": matches,
        "setup": {
            "expected": exp_setup,
            "observed": total_changes(tally.setup_by_table),
            "missing": setup_missing,
            "by_table": tally.setup_by_table,
        },
        "heartbeat": {"written": heartbeats_written, "observed": tally.heartbeat},
        "examples": {k: v for k, v in tally.examples.items() if v},
        "clean": missing == tally.extra == tally.duplicates == setup_missing == 0
        and binlog_total == engine_total
        and matches
        and heartbeat_ok,
    }


def _nonzero(changes: ChangeCounts) -> ChangeCounts:
    return {
        t: {k: n for k, n in kinds.items() if n}
        for t, kinds in changes.items()
        if any(kinds.values())
    }


Position = dict[str, Any]  # a binary-log position: {"file", "pos"} (and a GTID where known)


def perform(
    dsn: Any,
    window: tuple[Position | None, Position | None],
    tables: list[tuple[str, TableLedger]],
    engine_changes: ChangeCounts,
    heartbeats_written: int | None,
    ddl_executed: int | None = None,
) -> dict[str, Any]:
    """Read the run's window of the log from the server and ``compare`` (the only I/O).
    ``ddl_executed``: ALTER TABLE statements the run's DDL schedule committed (None: the
    workload has none; the window's are still counted)."""
    from loadengine.server import binlog, database, queries

    start, end = window
    if not start or not end:
        raise binlog.BinlogError("the results hold no binary-log window (binary log off?)")
    conn = database.connect(dsn)
    try:
        sizes = queries.binary_log_sizes(conn)
        logs = list(sizes)
        flavor = queries.server_environment(conn)["flavor"]
    finally:
        conn.close()
    read = binlog.read_window(dsn, start, end, logs, flavor)
    out = compare(read.rows, tables, engine_changes, heartbeats_written)
    out["ddl"] = {"executed": ddl_executed or 0, "observed": read.ddl}
    out["clean"] = out["clean"] and read.ddl == (ddl_executed or 0)
    out["window"] = {"start": start, "end": end}
    out["binlog_bytes"] = queries.window_bytes(sizes, start, end)
    out["reader"] = read.reader
    out["row_events_read"] = read.events_all_databases
    out["read_seconds"] = round(read.seconds, 3)
    out["row_events_per_s"] = (
        round(read.events_all_databases / read.seconds) if read.seconds else None
    )
    return out


class AuditInputError(ValueError):
    """A results file or DSN the after-the-fact audit cannot use (one line)."""


def audit_file(path: str, dsn_text: str | None) -> dict[str, Any]:
    """``loadengine audit RESULTS.json``: audit a finished run; writes ``audit`` back."""
    import os

    import orjson

    from loadengine.core.dsn import parse_dsn
    from loadengine.run import results
    from loadengine.verify import ledger

    try:
        with open(path, "rb") as fh:
            doc = orjson.loads(fh.read())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise AuditInputError(f"{path!r}: cannot read a results file ({exc})") from None
    if not isinstance(doc, dict) or "summary" not in doc or "server" not in doc:
        raise AuditInputError(f"{path!r}: not a loadengine results file")
    text = dsn_text or doc["plan"]["dsn"]["value"]
    if text is None:
        raise AuditInputError(
            f"{path!r}: the run used the embedded server, which stopped with the run; use "
            "'run --audit', or 'run --keep-server' and then 'audit --dsn'"
        )
    if ":***@" in text:
        raise AuditInputError(f"{path!r}: the recorded DSN has no password; pass --dsn")
    ledger_name = (doc.get("ledger") or {}).get("path")
    if not ledger_name:
        raise AuditInputError(f"{path!r}: no change ledger recorded for this run")
    ledger_path = os.path.join(os.path.dirname(os.path.abspath(path)), ledger_name)
    try:
        with open(ledger_path, "rb") as fh:
            tables = ledger.from_document(orjson.loads(fh.read()))
    except (OSError, ValueError) as exc:
        raise AuditInputError(f"{ledger_path!r}: cannot read the change ledger ({exc})") from None
    summary = doc["summary"]
    out = perform(
        parse_dsn(text),
        (doc["server"].get("binlog_start"), doc["server"].get("binlog_end")),
        tables,
        summary["changes_by_table"],
        summary.get("heartbeats"),
        (summary.get("ddl") or {}).get("executed"),
    )
    doc["audit"] = out
    results.write(doc, path)
    return out
