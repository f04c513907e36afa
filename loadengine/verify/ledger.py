"""The change ledger: which keys the run committed, and how often each was updated.

Written next to the results file as ``<results>.ledger.json`` (format in docs/results.md "Change
ledger"). A downstream check (the binary-log audit, ``sink-check``) compares what it saw
with it, key by key: loss, duplication and (from the update counts) per-key order.

Compact by construction. Shard ``i`` of ``n`` owns keys ``first + i + k*n``; it seeds
``k < seeded`` during setup and inserts ``seeded <= k < seeded + inserted`` in order, so
inserts are two integers per shard and table. Updates are a count per ``k`` (uint32,
zlib-compressed, base64): a 60 s run at 100K CPS stays in the low megabytes.
"""

from __future__ import annotations

import base64
import os
import sys
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from loadengine.core.messages import ChangeCounts, ShardDelta
from loadengine.core.plan import ShardPlan
from loadengine.core.spec import WorkloadSpec

FORMAT = "loadengine-ledger"
VERSION = 2  # 2 added deletes; version 1 files (no deletes) are still read
KEY_COLUMNS = {"customers": "id", "orders": "order_number"}
ENCODING = "base64(zlib(uint32 little-endian update count per key index k))"


@dataclass(frozen=True, slots=True)
class TableLedger:
    """One shard's keys in one table."""

    shard: int
    first_key: int  # key of k = 0 is first_key + shard
    stride: int
    seeded: int
    inserted: int
    updates: array[int]  # updates[k] = committed updates of key k
    deletes: array[int] = field(default_factory=lambda: array("I"))  # deletes[k]: 0 or 1

    def key(self, k: int) -> int:
        return self.first_key + self.shard + k * self.stride

    def index_of(self, key: int) -> int | None:
        """``k`` for a key this shard owns, else None."""
        off = key - self.first_key - self.shard
        if off < 0 or off % self.stride:
            return None
        return off // self.stride

    def expected(self, kind: str, k: int) -> tuple[str, int]:
        """(category, expected row events) for key index ``k``: setup, load or none."""
        if kind == "insert":
            if k < self.seeded:
                return "setup", 1
            return ("load", 1) if k < self.seeded + self.inserted else ("none", 0)
        if kind == "update" and k < len(self.updates):
            return "load", self.updates[k]
        if kind == "delete" and k < len(self.deletes):
            return "load", self.deletes[k]
        return "none", 0

    @property
    def update_total(self) -> int:
        return sum(self.updates)

    @property
    def delete_total(self) -> int:
        return sum(self.deletes)


SPOOL_BYTES = 1 << 16  # with a spool: update keys held per shard and table before one append
SPOOL_CHUNKS = 256  # ... or this many deltas, whichever comes first


@dataclass(slots=True)
class LedgerBook:
    """Coordinator side: gathers committed keys from ``ShardDelta``s as they arrive.

    With ``spool_dir`` the update keys go to one append-only file per shard and table
    instead of memory, so a long run's coordinator does not grow with them. They are
    appended ``SPOOL_BYTES`` (or ``SPOOL_CHUNKS`` deltas) at a time, not one file opened
    per shard and table every second (``add`` was 18 % of the coordinator's active time
    in a profile with 64 shards; appending every 16 deltas, still 8 %), and whatever is
    pending is appended before a file is read. Memory held: at most ``SPOOL_BYTES`` (plus
    one delta) per shard and table.
    """

    plans: dict[int, ShardPlan]
    spool_dir: str | None = None
    inserted: dict[tuple[int, str], int] = field(default_factory=dict)
    updated: dict[tuple[int, str], list[bytes]] = field(default_factory=dict)
    update_counts: dict[tuple[int, str], int] = field(default_factory=dict)
    pending_bytes: dict[tuple[int, str], int] = field(default_factory=dict)  # not yet spooled
    deleted: dict[tuple[int, str], list[bytes]] = field(default_factory=dict)  # held, not spooled
    delete_counts: dict[tuple[int, str], int] = field(default_factory=dict)

    def add(self, d: ShardDelta) -> None:
        for table, kinds in d.changes.items():
            if kinds.get("insert"):
                key = (d.shard, table)
                self.inserted[key] = self.inserted.get(key, 0) + kinds["insert"]
        for table, raw in d.updated_keys.items():
            key = (d.shard, table)
            self.update_counts[key] = self.update_counts.get(key, 0) + len(raw) // 4
            chunks = self.updated.setdefault(key, [])
            chunks.append(raw)
            if self.spool_dir is None:
                continue
            held = self.pending_bytes[key] = self.pending_bytes.get(key, 0) + len(raw)
            if held >= SPOOL_BYTES or len(chunks) >= SPOOL_CHUNKS:
                self._spill(key)
        for table, raw in d.deleted_keys.items():
            key = (d.shard, table)
            self.delete_counts[key] = self.delete_counts.get(key, 0) + len(raw) // 4
            self.deleted.setdefault(key, []).append(raw)

    def _spill(self, key: tuple[int, str]) -> None:
        """Append ``key``'s pending chunks to its spool file (``spool_dir`` only)."""
        chunks = self.updated.pop(key, None)
        self.pending_bytes.pop(key, None)
        if chunks:
            with open(self._spool(key), "ab") as fh:
                fh.write(b"".join(chunks))

    def _spool(self, key: tuple[int, str]) -> str:
        return os.path.join(self.spool_dir or "", f"ledger-{key[0]}-{key[1]}.u32")

    def _chunks(self, key: tuple[int, str]) -> list[bytes]:
        if self.spool_dir is None:
            return self.updated.get(key, [])
        self._spill(key)
        try:
            with open(self._spool(key), "rb") as fh:
                return [fh.read()]
        except FileNotFoundError:
            return []

    def tables(self) -> Iterator[tuple[str, TableLedger]]:
        for index in sorted(self.plans):
            keys = self.plans[index].keys
            for table, first, seeded in keys.tables():
                inserted = self.inserted.get((index, table), 0)
                counts = _counts(self._chunks((index, table)), seeded + inserted)
                chunks = self.deleted.get((index, table))
                deletes = _counts(chunks, seeded + inserted) if chunks else array("I")
                yield (
                    table,
                    TableLedger(index, first, keys.stride, seeded, inserted, counts, deletes),
                )


def key_columns_for(spec: WorkloadSpec | None) -> dict[str, str]:
    """Each table's key column: the inventory's, or as a spec workload names it."""
    out = dict(KEY_COLUMNS)
    if spec is not None:
        out.update((t.name, t.key) for t in spec.tables)
    return out


def _counts(chunks: list[bytes], size: int) -> array[int]:
    counts = array("I", bytes(4 * size))
    for raw in chunks:
        ks = array("I")
        ks.frombytes(raw)
        if sys.byteorder != "little":
            ks.byteswap()
        for k in ks:
            if k >= len(counts):
                counts.extend([0] * (k + 1 - len(counts)))
            counts[k] += 1
    return counts


def _encode(counts: array[int]) -> str:
    a = array("I", counts)
    if sys.byteorder != "little":
        a.byteswap()
    return base64.b64encode(zlib.compress(a.tobytes(), 6)).decode()


def _decode(text: str) -> array[int]:
    a = array("I")
    a.frombytes(zlib.decompress(base64.b64decode(text)))
    if sys.byteorder != "little":
        a.byteswap()
    return a


def document(
    run_id: str, tables: list[tuple[str, TableLedger]], key_columns: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ledger file's content (pure)."""
    key_columns = key_columns or KEY_COLUMNS
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run_id,
        "update_encoding": ENCODING,
        "tables": {},
    }
    for table, t in tables:
        entry = out["tables"].setdefault(table, {"key_column": key_columns[table], "shards": []})
        shard = {
            "shard": t.shard,
            "first_key": t.first_key,
            "stride": t.stride,
            "seeded": t.seeded,
            "inserted": t.inserted,
            "updated": t.update_total,
            "updates": _encode(t.updates),
            "deleted": t.delete_total,
        }
        if t.delete_total:
            shard["deletes"] = _encode(t.deletes)
        entry["shards"].append(shard)
    return out


def from_document(doc: dict[str, Any]) -> list[tuple[str, TableLedger]]:
    if doc.get("format") != FORMAT or doc.get("version") not in (1, VERSION):
        raise ValueError(f"not a {FORMAT} v1 or v{VERSION} file")
    return [
        (
            table,
            TableLedger(
                s["shard"],
                s["first_key"],
                s["stride"],
                s["seeded"],
                s["inserted"],
                _decode(s["updates"]),
                _decode(s["deletes"]) if s.get("deletes") else array("I"),
            ),
        )
        for table, entry in doc["tables"].items()
        for s in entry["shards"]
    ]


def totals(tables: list[tuple[str, TableLedger]]) -> tuple[ChangeCounts, ChangeCounts]:
    """(load changes, setup changes) by table and kind, as the ledger records them."""
    load: ChangeCounts = {}
    setup: ChangeCounts = {}
    for table, t in tables:
        for kind, n in (("insert", t.inserted), ("update", t.update_total),
                        ("delete", t.delete_total)):  # fmt: skip
            if n:
                kinds = load.setdefault(table, {})
                kinds[kind] = kinds.get(kind, 0) + n
        if t.seeded:
            s = setup.setdefault(table, {})
            s["insert"] = s.get("insert", 0) + t.seeded
    return load, setup


def path_for(results_path: str) -> str:
    base = results_path[:-5] if results_path.endswith(".json") else results_path
    return base + ".ledger.json"
