"""The far end of the pipeline: Debezium change events, checked key by key. Pure.

``SinkCheck.add`` takes one message body as it arrives (Debezium JSON, with or without
the ``{schema, payload}`` wrapper) and keeps, per table and key:

- ``redelivered``: the same change seen again (same table, key and binary-log coordinates
  ``source.file/pos/row``): delivery is at least once, so these are set aside, not errors;
- ``observed``: distinct change events per (table, kind, key), which ``verify.audit.compare``
  checks against the change ledger: lost (``missing``), ``extra``, ``duplicates``;
- ``out_of_order``: an update whose ``before`` image is not the previous event's ``after``
  for that key (row images are FULL, so a faithful stream chains exactly);
- the heartbeat row's events: end-to-end lag = receive time - the row's ``ts_us``, written
  by the engine every 100 ms (µs resolution; Debezium's own ``source.ts_ms`` has whole
  seconds only, so it gives the *age* of a message, not lag);
- tombstones (a null value), schema-change events and snapshot reads, counted apart.

It runs once per message at the sink's speed, so it does the least it can: one
``orjson.loads`` and a few dictionary operations.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadengine.core import histogram
from loadengine.server.binlog import HEARTBEAT_TABLE
from loadengine.verify.ledger import KEY_COLUMNS, TableLedger

OPS = {"c": "insert", "u": "update", "d": "delete"}
MAX_EXAMPLES = 10
NULL_BODIES = (b"", b"null", b"default")  # a tombstone as a RabbitMQ sink publishes it


@dataclass(slots=True)
class SinkCheck:
    heartbeat_table: str = HEARTBEAT_TABLE
    origin_us: int = 0  # run start (unix µs): seconds count from it; before it, second -1
    observed: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    seen: set[tuple[str, str, str, int, int]] = field(default_factory=set)
    last_after: dict[tuple[str, str], Any] = field(default_factory=dict)
    redelivered: int = 0
    out_of_order: int = 0
    snapshot_reads: int = 0
    undecodable: int = 0
    tombstones: int = 0
    schema_changes: int = 0
    heartbeats: int = 0
    messages: int = 0
    changes_by_second: dict[int, int] = field(default_factory=dict)  # by second received
    lag_us: list[tuple[int, int]] = field(default_factory=list)  # (second received, lag)
    age_us: list[int] = field(default_factory=list)  # receive time - source.ts_us
    examples: dict[str, list[str]] = field(
        default_factory=lambda: {"out_of_order": [], "redelivered": []}
    )

    @property
    def changes(self) -> int:
        return self.observed.total()

    def second(self, received_us: int) -> int:
        return -1 if received_us < self.origin_us else (received_us - self.origin_us) // 1_000_000

    def add(self, body: bytes, received_us: int) -> None:
        self.messages += 1
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            if body in NULL_BODIES:
                self.tombstones += 1
            else:
                self.undecodable += 1
            return
        if isinstance(msg, dict) and "payload" in msg and "schema" in msg:
            msg = msg["payload"]
        if not isinstance(msg, dict):
            self.tombstones += msg is None
            self.undecodable += msg is not None
            return
        op = msg.get("op")
        source = msg.get("source")
        if op is None or not isinstance(source, dict):
            if "ddl" in msg or "tableChanges" in msg:
                self.schema_changes += 1
            else:
                self.undecodable += 1
            return
        self._change(op, source, msg.get("before"), msg.get("after"), received_us)

    def _change(
        self, op: str, source: dict[str, Any], before: Any, after: Any, received_us: int
    ) -> None:
        table = source.get("table") or ""
        image = after or before or {}
        if table == self.heartbeat_table:
            self.heartbeats += 1
            ts_us = image.get("ts_us")
            if op == "u" and isinstance(ts_us, int):
                self.lag_us.append((self.second(received_us), received_us - ts_us))
            return
        column = KEY_COLUMNS.get(table) or next(iter(image), "")
        key = str(image.get(column, ""))
        pos = source.get("pos")
        if pos is not None:
            ident = (table, key, str(source.get("file")), int(pos), int(source.get("row") or 0))
            if ident in self.seen:
                self.redelivered += 1
                if len(self.examples["redelivered"]) < MAX_EXAMPLES:
                    self.examples["redelivered"].append(f"{table} {OPS.get(op, op)} {key}")
                return
            self.seen.add(ident)
        if op == "r":
            self.snapshot_reads += 1
            return
        self.observed[(table, OPS.get(op, op), key)] += 1
        second = self.second(received_us)
        self.changes_by_second[second] = self.changes_by_second.get(second, 0) + 1
        ts_us = source.get("ts_us") or (source.get("ts_ms") or 0) * 1000
        if ts_us:
            self.age_us.append(received_us - int(ts_us))
        k = (table, key)
        if op == "u" and k in self.last_after and self.last_after[k] != before:
            self.out_of_order += 1
            if len(self.examples["out_of_order"]) < MAX_EXAMPLES:
                self.examples["out_of_order"].append(f"{table} {key}")
        self.last_after[k] = after


def verdict(
    observed: Counter[tuple[str, str, str]],
    tables: list[tuple[str, TableLedger]],
    redelivered: int,
    out_of_order: int,
) -> dict[str, Any]:
    """Distinct events against the ledger: what was lost, duplicated (redeliveries are
    not), added or reordered, with examples naming table, kind and key."""
    from loadengine.verify.audit import compare

    audit = compare(observed, tables, {}, None)
    lost = audit["missing"] + audit["setup"]["missing"]
    return {
        "changes": audit["binlog_changes"],
        "setup_changes": audit["setup"]["observed"],
        "lost": lost,
        "setup_lost": audit["setup"]["missing"],
        "duplicated": audit["duplicates"],
        "redelivered": redelivered,
        "extra": audit["extra"],
        "out_of_order": out_of_order,
        "changes_by_table": audit["changes_by_table"],
        "examples": audit["examples"],
        "clean": lost == 0
        and audit["extra"] == 0
        and audit["duplicates"] == 0
        and out_of_order == 0,
    }


def lag_summary_ms(samples_us: list[int]) -> dict[str, Any]:
    summary = histogram.samples_summary_ms(samples_us)
    return summary or {"p50": None, "p99": None, "max": None, "samples": 0}
