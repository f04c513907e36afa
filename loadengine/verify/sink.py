"""The far end of the pipeline: Debezium change events, checked key by key. Pure.

``SinkCheck.add`` takes one message body as it arrives (Debezium JSON, with or without
the ``{schema, payload}`` wrapper) and keeps, per table and key:

- ``redelivered``: the same change seen again (same table, key and binary-log coordinates
  ``source.file/pos/row``): delivery is at least once, so these are set aside, not errors;
- ``observed``: distinct change events per (table, kind, key), which ``verify.audit.compare``
  checks against the change ledger: lost (``missing``), ``extra``, ``duplicates``;
- ``out_of_order``: a change of a key that arrives after a later change of the same key
  (its binary-log coordinates are earlier); events without coordinates are checked by
  their images instead (an update's ``before`` must be the previous ``after``);
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
from orjson import JSONDecodeError, loads

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
    # each change once, by its place in the binary log: (file << 52 | pos << 20 | row)
    seen: dict[int, tuple[str, str, Any]] = field(default_factory=dict)
    last_mark: dict[str, dict[Any, int]] = field(default_factory=dict)  # table -> key -> place
    file: str | None = None  # the binary-log file of the last change, and its rank
    file_base: int = 0
    file_numbers: dict[str, int] = field(default_factory=dict)
    unplaced: dict[tuple[str, str, Any], int] = field(default_factory=dict)  # no position
    last_after: dict[tuple[str, Any], Any] = field(default_factory=dict)  # unplaced only
    redelivered: int = 0
    out_of_order: int = 0
    snapshot_reads: int = 0
    undecodable: int = 0
    tombstones: int = 0
    schema_changes: int = 0
    heartbeats: int = 0
    messages: int = 0
    changes_by_second: dict[int, int] = field(default_factory=dict)  # by second received
    current_second: int = -1
    second_ends_us: int = 0  # when ``current_second`` ends (unix µs)
    lag_us: list[tuple[int, int]] = field(default_factory=list)  # (second received, lag)
    age_us: list[int] | None = field(default_factory=list)  # receive time - source.ts_us
    # (None: not kept; the live follower reports lag, and a list per message would grow)
    examples: dict[str, list[str]] = field(
        default_factory=lambda: {"out_of_order": [], "redelivered": []}
    )

    @property
    def changes(self) -> int:
        return len(self.seen) + sum(self.unplaced.values())

    @property
    def observed(self) -> Counter[tuple[str, str, str]]:
        """Distinct change events per (table, kind, key), as the ledger comparison reads."""
        by_op: Counter[tuple[str, str, Any]] = Counter(self.unplaced)
        by_op.update(self.seen.values())
        out: Counter[tuple[str, str, str]] = Counter()
        for (table, op, key), n in by_op.items():
            out[(table, OPS.get(op, op), str(key))] += n
        return out

    def _unplaced(self, table: str, op: str, key: Any, before: Any, after: Any) -> None:
        """An event without binary-log coordinates (not from a binlog reader): counted,
        and its order checked by images (an update's before is the previous after)."""
        ident = (table, op, key)
        self.unplaced[ident] = self.unplaced.get(ident, 0) + 1
        k = (table, key)
        if op == "u" and k in self.last_after and self.last_after[k] != before:
            self._out_of_order(table, key)
        self.last_after[k] = after

    def _next_second(self, received_us: int) -> None:
        second = self.second(received_us)
        self.current_second = second
        self.changes_by_second.setdefault(second, 0)
        if second < 0:
            self.second_ends_us = self.origin_us
        else:
            self.second_ends_us = self.origin_us + (second + 1) * 1_000_000

    def set_origin(self, origin_us: int) -> None:
        self.origin_us = origin_us
        self.second_ends_us = 0  # the next change recomputes its second

    def second(self, received_us: int) -> int:
        return -1 if received_us < self.origin_us else (received_us - self.origin_us) // 1_000_000

    def add(self, body: bytes, received_us: int) -> None:  # noqa: C901 - one path
        """One message. The common case (a change event of a table) runs straight through,
        with its lookups bound locally: this is the per-message cost that
        ``benchmarks/sink_speed.py`` holds against a bare decode."""
        self.messages += 1
        try:
            msg: Any = loads(body)
        except JSONDecodeError:
            self._not_json(body)
            return
        if type(msg) is not dict or "source" not in msg:
            self._unusual(msg, received_us)
            return
        get: Any = msg.get  # bound once: this path runs per message
        source = get("source")
        op = get("op")
        sget = source.get
        table = sget("table")
        if table == self.heartbeat_table or op is None or op == "r":
            self._unusual(msg, received_us)
            return
        image = get("after") or get("before")
        key = image.get(KEY_COLUMNS.get(table) or next(iter(image)))
        pos = sget("pos")
        if pos is None:
            self._unplaced(table, op, key, get("before"), get("after"))
            return
        file = sget("file")
        if file != self.file:
            self._switch_file(file)
        mark = self.file_base | pos << 20 | sget("row", 0)
        seen = self.seen
        if mark in seen:
            self._redelivered(table, op, key)
            return
        seen[mark] = (table, op, key)
        if received_us >= self.second_ends_us:  # a new second: the rare path
            self._next_second(received_us)
        self.changes_by_second[self.current_second] += 1
        ts_us = sget("ts_us")
        if ts_us and self.age_us is not None:
            self.age_us.append(received_us - ts_us)
        last = self.last_mark.get(table)
        if last is None:
            last = self.last_mark[table] = {}
        if last.get(key, -1) > mark:  # a key's changes arrive in binary-log order
            self._out_of_order(table, key)
        last[key] = mark

    def _switch_file(self, file: str) -> None:
        """Binary-log files are numbered (``binlog.000042``): positions across files order
        by (file number, position, row); a name without a number ranks by first sight."""
        self.file = file
        suffix = str(file).rpartition(".")[2]
        number = int(suffix) if suffix.isdigit() else len(self.file_numbers)
        self.file_numbers.setdefault(file, number)
        self.file_base = self.file_numbers[file] << 52

    def _not_json(self, body: bytes) -> None:
        if body in NULL_BODIES:
            self.tombstones += 1
        else:
            self.undecodable += 1

    def _unusual(self, msg: Any, received_us: int) -> None:
        """The wrapped ``{schema, payload}`` form, heartbeats, schema changes, snapshot
        reads, tombstones and what is not Debezium at all."""
        if type(msg) is dict and "payload" in msg and "schema" in msg:
            self.messages -= 1
            self.add(orjson.dumps(msg["payload"]), received_us)
            return
        if msg is None:
            self.tombstones += 1
            return
        if type(msg) is not dict:
            self.undecodable += 1
            return
        source, op = msg.get("source"), msg.get("op")
        if op is None or type(source) is not dict:
            self.schema_changes += "ddl" in msg or "tableChanges" in msg
            self.undecodable += not ("ddl" in msg or "tableChanges" in msg)
            return
        if source.get("table") == self.heartbeat_table:
            self.heartbeats += 1
            ts_us = (msg.get("after") or {}).get("ts_us")
            if op == "u" and isinstance(ts_us, int):
                self.lag_us.append((self.second(received_us), received_us - ts_us))
            return
        self.snapshot_reads += 1  # op "r"

    def _redelivered(self, table: str, op: str, key: Any) -> None:
        self.redelivered += 1
        if len(self.examples["redelivered"]) < MAX_EXAMPLES:
            self.examples["redelivered"].append(f"{table} {OPS.get(op, op)} {key}")

    def _out_of_order(self, table: str, key: Any) -> None:
        self.out_of_order += 1
        if len(self.examples["out_of_order"]) < MAX_EXAMPLES:
            self.examples["out_of_order"].append(f"{table} {key}")


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
