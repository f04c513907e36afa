"""``database.Session`` on the text protocol against the real server: a transaction of
several statements is one multi-statement round trip ending in COMMIT."""

from __future__ import annotations

import random

import pytest

from loadengine.core.dsn import Dsn
from loadengine.core.plan import KeySpace
from loadengine.core.workload import KeyCursor, build_batch, insert_customers
from loadengine.server import database

from .conftest import table_counts


def _keys(d: Dsn) -> KeySpace:
    conn = database.connect(d)
    try:
        first = int(database.query(conn, "SELECT COALESCE(MAX(id), 0) + 1 FROM customers")[0][0])
    finally:
        conn.close()
    return KeySpace(first, 10**9, 0, 1, 0, 0)


def test_multi_statement_transaction_counts_each_statement(dsn: Dsn) -> None:
    keys, rng = _keys(dsn), random.Random(3)
    first, cursor = build_batch(
        {"insert_customer": 5, "insert_order": 4}, rng, keys, KeyCursor(0, 0), "t1"
    )
    counts = {"insert_customer": 1, "update_customer": 3, "update_order": 2}
    second, _ = build_batch(counts, rng, keys, cursor, "t2")
    before = table_counts(dsn)
    session = database.Session(dsn)
    try:
        assert session.run_transaction(first) == [5, 4]
        assert session.run_transaction(second) == [1, 3, 2]
    finally:
        session.close()
    after = table_counts(dsn)
    added = (after["customers"] - before["customers"], after["orders"] - before["orders"])
    assert added == (6, 4)


def test_a_failing_statement_rolls_the_whole_transaction_back(dsn: Dsn) -> None:
    keys, rng = _keys(dsn), random.Random(4)
    fresh = insert_customers(rng, keys, 0, 3)
    clash = insert_customers(rng, keys, 2, 1)  # key index 2 again: duplicate key
    before = table_counts(dsn)
    session = database.Session(dsn)
    try:
        with pytest.raises(database.DatabaseError) as exc:
            session.run_transaction([fresh, clash])
        assert exc.value.error_class == "duplicate_key"
        assert session.run_transaction([fresh]) == [3]  # the connection is usable after
    finally:
        session.close()
    assert table_counts(dsn)["customers"] - before["customers"] == 3
