"""The default ``inventory`` workload is byte for byte what it was before workloads became
data: the statements (text and parameters), their keys and the commit probes of 1,200
batches in four shapes hash to the digest the engine produced at commit 7934b9b (the last
commit before workload specs), computed there with this same code."""

from __future__ import annotations

import hashlib
import random

from loadengine.core.plan import DEFAULT_MIX, KeySpace
from loadengine.core.workload import KeyCursor, OpSequence, build_batch, commit_probe

DIGEST_AT_7934B9B = "8086f90cb5336a63173ab90878aa6eecbda2df0472cd18dc3800ecf85f0a77c2"


def inventory_digest() -> str:
    h = hashlib.sha256()
    for batch_size, with_params in ((1, False), (10, False), (10, True), (100, False)):
        keys = KeySpace(1001, 10001, 1, 4, 1000, 1000)
        rng, ops, cursor = random.Random(7), OpSequence(DEFAULT_MIX), KeyCursor(1000, 1000)
        for b in range(300):
            counts = ops.next_counts(batch_size)
            stmts, cursor = build_batch(counts, rng, keys, cursor, f"t.1.{b}", with_params)
            for st in stmts:
                shape = (st.op, st.table, st.kind, st.sql, st.params, st.rows, st.key_indices,
                         st.first_k, st.text)  # fmt: skip
                h.update(repr(shape).encode())
            p = commit_probe(stmts, keys)
            h.update(repr(None if p is None else (p.sql, p.params, p.expect)).encode())
    return h.hexdigest()


def test_inventory_statements_are_byte_for_byte_unchanged() -> None:
    assert inventory_digest() == DIGEST_AT_7934B9B
