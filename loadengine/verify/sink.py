"""The far end of the pipeline: Debezium change events, checked against the change ledger.

Pure: ``decode`` turns one message body (Debezium JSON, with or without the
``{schema, payload}`` wrapper) into an ``Event``; ``SinkCheck`` takes events in arrival
order and tells, per table and key:

- ``redelivered``: the same change seen again (same table, key and binary-log coordinates
  ``source.file/pos/row``): delivery is at least once, so these are dropped, not errors;
- ``missing`` / ``extra`` / ``duplicates``: deduplicated events against the ledger, as in
  the binary-log audit (``c`` = insert, ``u`` = update, ``d`` = delete; ``r`` snapshot
  reads are counted apart);
- ``out_of_order``: an update whose ``before`` image is not the previous event's
  ``after`` for that key (row images are FULL, so a faithful stream chains exactly);
- lag: receive time minus ``source.ts_us`` (or ``ts_ms``), per second and overall.

The AMQP side lives in ``sink_amqp``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadengine.core import histogram
from loadengine.verify.ledger import KEY_COLUMNS, TableLedger

OPS = {"c": "insert", "u": "update", "d": "delete"}
MAX_EXAMPLES = 10


class BadMessage(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Event:
    table: str
    op: str  # c, u, d, r
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: tuple[str, int, int] | None  # binlog file, pos, row
    source_ts_us: int | None


def decode(body: bytes) -> Event:
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if isinstance(msg, dict) and "payload" in msg and "schema" in msg:
        msg = msg["payload"]
    if not isinstance(msg, dict) or "op" not in msg or "source" not in msg:
        raise BadMessage("not a Debezium change event (no op/source)")
    src = msg["source"]
    table = str(src.get("table", ""))
    image = msg.get("after") or msg.get("before") or {}
    column = KEY_COLUMNS.get(table, next(iter(image), ""))
    ts_us = src.get("ts_us")
    if ts_us is None and src.get("ts_ms") is not None:
        ts_us = int(src["ts_ms"]) * 1000
    pos = None
    if src.get("file") is not None and src.get("pos") is not None:
        pos = (str(src["file"]), int(src["pos"]), int(src.get("row") or 0))
    return Event(
        table,
        str(msg["op"]),
        str(image.get(column, "")),
        msg.get("before"),
        msg.get("after"),
        pos,
        None if ts_us is None else int(ts_us),
    )


@dataclass(slots=True)
class SinkCheck:
    tables: list[tuple[str, TableLedger]]
    origin_us: int = 0  # run start (µs), for per-second lag
    observed: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    seen: set[tuple[str, str, tuple[str, int, int]]] = field(default_factory=set)
    last_after: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    redelivered: int = 0
    out_of_order: int = 0
    snapshot_reads: int = 0
    undecodable: int = 0
    by_table: dict[str, dict[str, int]] = field(default_factory=dict)
    lag_us: list[tuple[int, int]] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=lambda: {"out_of_order": []})

    def add(self, ev: Event, received_us: int) -> None:
        if ev.position is not None:
            ident = (ev.table, ev.key, ev.position)
            if ident in self.seen:
                self.redelivered += 1
                return
            self.seen.add(ident)
        if ev.op == "r":
            self.snapshot_reads += 1
            return
        kind = OPS.get(ev.op, ev.op)
        kinds = self.by_table.setdefault(ev.table, {})
        kinds[kind] = kinds.get(kind, 0) + 1
        self.observed[(ev.table, kind, ev.key)] += 1
        self._order(ev)
        if ev.source_ts_us is not None:
            second = (ev.source_ts_us - self.origin_us) // 1_000_000 if self.origin_us else 0
            self.lag_us.append((int(second), received_us - ev.source_ts_us))

    def _order(self, ev: Event) -> None:
        k = (ev.table, ev.key)
        if ev.op == "u" and k in self.last_after and self.last_after[k] != ev.before:
            self.out_of_order += 1
            if len(self.examples["out_of_order"]) < MAX_EXAMPLES:
                self.examples["out_of_order"].append(f"{ev.table} {ev.key}")
        self.last_after[k] = ev.after

    def _lag_by_second(self) -> dict[int, dict[str, Any] | None]:
        seconds: dict[int, list[int]] = {}
        for second, lag in self.lag_us:
            seconds.setdefault(second, []).append(lag)
        return {s: histogram.samples_summary_ms(lags) for s, lags in sorted(seconds.items())}

    def result(self) -> dict[str, Any]:
        from loadengine.verify.audit import compare

        audit = compare(self.observed, self.tables, {}, None)
        lag = histogram.samples_summary_ms([x for _, x in self.lag_us])
        lost = audit["missing"] + audit["setup"]["missing"]
        return {
            "events": sum(self.observed.values()),
            "by_table": self.by_table,
            "lost": lost,
            "duplicated": self.redelivered + audit["duplicates"],
            "redelivered": self.redelivered,
            "missing": audit["missing"],
            "setup_missing": audit["setup"]["missing"],
            "extra": audit["extra"],
            "duplicates": audit["duplicates"],
            "out_of_order": self.out_of_order,
            "snapshot_reads": self.snapshot_reads,
            "undecodable": self.undecodable,
            "changes_by_table": audit["changes_by_table"],
            "lag_ms": lag or {"p50": None, "p99": None, "max": None, "samples": 0},
            "lag_ms_by_second": self._lag_by_second(),
            "examples": {**audit["examples"], **{k: v for k, v in self.examples.items() if v}},
            "clean": lost == 0
            and audit["extra"] == 0
            and audit["duplicates"] == 0
            and self.out_of_order == 0,
        }
