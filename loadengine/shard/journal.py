"""The shard journal: a write-ahead record of every transaction, so a shard that dies
(SIGKILL, OOM) leaves behind exactly what it committed.

Each shard process appends an ``intent`` line for a transaction before sending it
(batch, tag and, per statement, operation, rows and keys; a shard may write the intents
of its next few transactions in one go, see ``shard.ShardLoop``), an ``ack`` line after
its COMMIT was acknowledged, and an ``abandon`` line when it gave the transaction up
(failed for good: nothing of it counts). Transactions of one shard run one at a time,
in batch order. Lines go straight to the file with ``os.write`` (no user-space buffer),
so they survive the process. ``replay`` (pure) turns a journal back into committed
changes, update keys in commit order, key cursors and the one transaction that may be
in doubt (the first intent after the last finished one): the caller resolves that with
``workload.commit_probe`` against the server. Never guessed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadengine.core.messages import ChangeCounts
from loadengine.core.plan import KeySpace
from loadengine.core.workload import Statement

TABLE_OF = {
    "insert_customer": ("customers", "insert"),
    "insert_order": ("orders", "insert"),
    "update_customer": ("customers", "update"),
    "update_order": ("orders", "update"),
}


def path_for(directory: str, shard: int, generation: int) -> str:
    return os.path.join(directory, f"shard-{shard}.g{generation}.jsonl")


class Journal:
    """Shard side: append-only, unbuffered."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def intents(self, txns: Iterable[tuple[int, str, list[Statement]]]) -> None:
        """Intents of the next transactions, ``(batch, tag, statements)``, in one write."""
        os.write(self._fd, b"".join(intent_line(*t) for t in txns))

    def ack(self, batch: int, rows: list[int]) -> None:
        os.write(self._fd, b'{"a":%d,"r":[%b]}\n' % (batch, ",".join(map(str, rows)).encode()))

    def abandon(self, batch: int) -> None:
        os.write(self._fd, b'{"x":%d}\n' % batch)

    def close(self) -> None:
        os.close(self._fd)


@dataclass(slots=True)
class Replay:
    """What a journal says was committed."""

    changes: ChangeCounts = field(default_factory=dict)
    update_keys: dict[str, list[int]] = field(default_factory=dict)  # commit order
    delete_keys: dict[str, list[int]] = field(default_factory=dict)  # commit order
    inserted: dict[str, int] = field(default_factory=dict)  # rows inserted per table
    last_batch: int = -1
    pending: dict[str, Any] | None = None  # the intent without an ack, if any

    def commit(self, intent: dict[str, Any], rows: list[int]) -> None:
        for part, n in zip(intent["s"], rows, strict=True):
            op, keys = part[0], part[2]
            table, kind = TABLE_OF[op] if len(part) == 3 else (part[3], part[4])
            kinds = self.changes.setdefault(table, {})
            kinds[kind] = kinds.get(kind, 0) + n
            if kind == "insert":
                self.inserted[table] = self.inserted.get(table, 0) + n
            elif kind == "update":
                self.update_keys.setdefault(table, []).extend(keys)
            else:
                self.delete_keys.setdefault(table, []).extend(keys)


def intent_line(batch: int, tag: str, stmts: list[Statement]) -> bytes:
    """Per statement ``[op, rows, first_k or key indices]``; a spec workload's statements
    add ``table, kind, stamp`` (its operations are not the inventory's)."""
    parts: list[list[Any]] = [
        [st.op, st.rows, st.first_k if st.first_k >= 0 else list(st.key_indices)] for st in stmts
    ]
    if stmts and stmts[0].stamp >= 0:
        for part, st in zip(parts, stmts, strict=True):
            part.extend((st.table, st.kind, st.stamp))
    return orjson.dumps({"b": batch, "t": tag, "s": parts}) + b"\n"


def replay(lines: Iterable[bytes]) -> Replay:
    """Pure: committed = every intent with an ack (the latest intent of a batch number
    counts: a shard rewrites the intents it wrote ahead after giving one up). In doubt:
    the first intent after the last acked or abandoned batch; intents after it were
    written ahead and never sent. A torn last line is ignored."""
    out = Replay()
    intents: dict[int, dict[str, Any]] = {}
    finished = -1  # the last batch acked or abandoned
    for line in lines:
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the process died mid-write: that line never finished
        if "b" in rec:
            intents[int(rec["b"])] = rec
        elif "a" in rec:
            intent = intents.pop(int(rec["a"]), None)
            if intent is not None:
                out.commit(intent, rec["r"])
            finished = max(finished, int(rec["a"]))
        elif "x" in rec:
            intents.pop(int(rec["x"]), None)
            finished = max(finished, int(rec["x"]))
    unfinished = [b for b in intents if b > finished]
    out.pending = intents[min(unfinished)] if unfinished else None
    out.last_batch = min(unfinished) if unfinished else finished
    return out


def read(paths: Iterable[str]) -> Replay:
    """Replay a shard's journals (one per generation, in order) as one history."""
    lines: list[bytes] = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                lines.extend(fh.read().splitlines())
        except FileNotFoundError:
            continue
    return replay(lines)


def pending_statements(pending: dict[str, Any], keys: KeySpace) -> list[Statement]:
    """Rebuild enough of an in-doubt transaction's statements for ``commit_probe``."""
    out = []
    if pending["s"] and len(pending["s"][0]) > 3:  # a spec workload's
        for op, rows, ks, table, kind, stamp in pending["s"]:
            first, picked = (ks, ()) if kind == "insert" else (-1, tuple(ks))
            out.append(Statement(op, table, kind, "", (), rows, picked, first, stamp=stamp))
        return out
    for op, rows, ks in pending["s"]:
        table, kind = TABLE_OF[op]
        if kind == "insert":
            out.append(Statement(op, table, kind, "", (), rows, first_k=ks))
            continue
        key_of = keys.customer_id if table == "customers" else keys.order_number
        ids = tuple(key_of(k) for k in ks)
        params = (pending["t"], *ids) if op == "update_customer" else ids
        out.append(Statement(op, table, kind, "", params, rows, tuple(ks)))
    return out
