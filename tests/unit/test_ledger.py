"""loadengine.ledger: gathering committed keys per shard, the compact document, key maths."""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np
import orjson
import pytest

from loadengine.core.messages import ChangeCounts, ShardDelta
from loadengine.core.plan import DEFAULT_MIX, RunPlan, ShardPlan, seed_rows_per_shard, shard_plans
from loadengine.verify import ledger
from loadengine.verify.ledger import SPOOL_BYTES, SPOOL_CHUNKS, LedgerBook, TableLedger

DSN = "mysql://app:pw@127.0.0.1:3306/inventory"
CUSTOMER_FIRST = 1001
ORDER_FIRST = 10001


def make_plans(workers: int = 3, batch_size: int = 10) -> dict[int, ShardPlan]:
    plan = RunPlan(
        steps=((300, 5),),
        duration_s=5,
        warmup_s=0,
        workers=workers,
        batch_size=batch_size,
        log_interval_s=1.0,
        mix=DEFAULT_MIX,
        seed=1,
        on_overload="catch-up",
        dsn=None,
        output=None,
        keep_server=False,
    )
    plans = shard_plans(plan, DSN, CUSTOMER_FIRST, ORDER_FIRST, "tok")
    return {p.index: p for p in plans}


def u32(ks: list[int]) -> bytes:
    a = array("I", ks)
    assert a.itemsize == 4
    return a.tobytes()


def delta(
    shard: int, changes: ChangeCounts, updated: dict[str, list[int]], second: int = 0
) -> ShardDelta:
    return ShardDelta(
        shard=shard,
        second=second,
        changes=changes,
        statements=1,
        transactions=1,
        errors={},
        late_batches=0,
        missed_changes=0,
        backlog_changes=0,
        reconnects=0,
        updated_keys={t: u32(ks) for t, ks in updated.items()},
    )


def counts_of(size: int, hits: dict[int, int]) -> array[int]:
    a = array("I", [0] * size)
    for k, n in hits.items():
        a[k] = n
    return a


def by_shard(tables: list[tuple[str, TableLedger]]) -> dict[tuple[str, int], TableLedger]:
    return {(name, t.shard): t for name, t in tables}


def fill(book: LedgerBook) -> None:
    book.add(
        delta(
            0,
            {"customers": {"insert": 4, "update": 4}, "orders": {"insert": 2, "update": 1}},
            {"customers": [0, 0, 5, 52], "orders": [49]},
        )
    )
    book.add(delta(0, {"customers": {"insert": 3}}, {}, second=1))
    book.add(delta(2, {"customers": {"insert": 1, "update": 0}}, {"orders": [1, 1, 1]}))
    book.add(delta(2, {"orders": {"update": 1}}, {"orders": [7]}, second=1))


# --- LedgerBook ---------------------------------------------------------------------------


def test_book_gathers_inserts_and_updates_per_shard_and_table() -> None:
    plans = make_plans()
    book = LedgerBook(plans)
    fill(book)
    tables = list(book.tables())
    assert [(name, t.shard) for name, t in tables] == [
        ("customers", 0),
        ("orders", 0),
        ("customers", 1),
        ("orders", 1),
        ("customers", 2),
        ("orders", 2),
    ]
    got = by_shard(tables)
    s = seed_rows_per_shard(10)  # every shard seeds s rows per table with the default mix
    assert got[("customers", 0)] == TableLedger(
        0, CUSTOMER_FIRST, 3, s, 7, counts_of(s + 7, {0: 2, 5: 1, 52: 1})
    )
    assert got[("orders", 0)] == TableLedger(0, ORDER_FIRST, 3, s, 2, counts_of(s + 2, {49: 1}))
    assert got[("customers", 1)] == TableLedger(1, CUSTOMER_FIRST, 3, s, 0, counts_of(s, {}))
    assert got[("orders", 1)] == TableLedger(1, ORDER_FIRST, 3, s, 0, counts_of(s, {}))
    assert got[("customers", 2)] == TableLedger(2, CUSTOMER_FIRST, 3, s, 1, counts_of(s + 1, {}))
    assert got[("orders", 2)] == TableLedger(2, ORDER_FIRST, 3, s, 0, counts_of(s, {1: 3, 7: 1}))
    assert [t.update_total for _, t in tables] == [4, 1, 0, 0, 0, 4]
    assert book.update_counts == {(0, "customers"): 4, (0, "orders"): 1, (2, "orders"): 4}


def test_book_keys_agree_with_the_shard_key_space() -> None:
    plans = make_plans(workers=4)
    book = LedgerBook(plans)
    for name, t in book.tables():
        keys = plans[t.shard].keys
        own = keys.customer_id if name == "customers" else keys.order_number
        assert [t.key(k) for k in range(60)] == [own(k) for k in range(60)]


def test_book_extends_the_counts_for_an_update_beyond_the_known_keys() -> None:
    book = LedgerBook(make_plans(workers=1))
    big = 1_500_000
    book.add(delta(0, {"customers": {"update": 3}}, {"customers": [big, 3, big]}))
    c = by_shard(list(book.tables()))[("customers", 0)]
    assert len(c.updates) == big + 1
    assert (c.updates[big], c.updates[3], c.update_total) == (2, 1, 3)
    assert (c.seeded, c.inserted) == (seed_rows_per_shard(10), 0)


def test_spooled_book_gives_the_same_tables_as_in_memory(tmp_path: Path) -> None:
    plans = make_plans()
    memory, spooled = LedgerBook(plans), LedgerBook(plans, spool_dir=str(tmp_path))
    fill(memory)
    fill(spooled)
    assert list(spooled.tables()) == list(memory.tables())  # reading appends what is held
    assert spooled.updated == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ledger-0-customers.u32",
        "ledger-0-orders.u32",
        "ledger-2-orders.u32",
    ]
    assert (tmp_path / "ledger-2-orders.u32").read_bytes() == u32([1, 1, 1, 7])


def test_spooled_book_holds_at_most_a_few_deltas_per_shard_and_table(tmp_path: Path) -> None:
    book = LedgerBook(make_plans(workers=1), spool_dir=str(tmp_path))
    spool = tmp_path / "ledger-0-customers.u32"
    for i in range(SPOOL_CHUNKS - 1):
        book.add(delta(0, {"customers": {"update": 1}}, {"customers": [i]}))
    assert not spool.exists() and len(book.updated[(0, "customers")]) == SPOOL_CHUNKS - 1
    book.add(delta(0, {"customers": {"update": 1}}, {"customers": [99]}))
    assert (0, "customers") not in book.updated  # appended in one go
    assert spool.read_bytes() == u32([*range(SPOOL_CHUNKS - 1), 99])
    assert book.update_counts[(0, "customers")] == SPOOL_CHUNKS


def test_spooled_book_holds_at_most_spool_bytes_per_shard_and_table(tmp_path: Path) -> None:
    book = LedgerBook(make_plans(workers=1), spool_dir=str(tmp_path))
    spool = tmp_path / "ledger-0-orders.u32"
    per_delta = 1000  # keys, 4 bytes each
    n = SPOOL_BYTES // (4 * per_delta)
    keys = [list(range(i * per_delta, (i + 1) * per_delta)) for i in range(n + 1)]
    for ks in keys[:n]:
        book.add(delta(0, {"orders": {"update": per_delta}}, {"orders": ks}))
    assert not spool.exists() and book.pending_bytes[(0, "orders")] == 4 * per_delta * n
    book.add(delta(0, {"orders": {"update": per_delta}}, {"orders": keys[n]}))
    assert (0, "orders") not in book.updated and (0, "orders") not in book.pending_bytes
    assert spool.read_bytes() == u32([k for ks in keys for k in ks])


# --- document / from_document -------------------------------------------------------------


def test_document_round_trips_exactly_with_large_indices_and_counts() -> None:
    plans = make_plans(workers=2)
    book = LedgerBook(plans)
    book.add(delta(0, {"customers": {"insert": 9}}, {"customers": [0, 58, 58]}))
    book.add(delta(1, {"orders": {"insert": 1}}, {"orders": [2, 2]}))
    tables = list(book.tables())
    big = array("I", [0] * 2_000_001)
    big[0], big[7], big[1_234_567], big[2_000_000] = 1, 70_000, 65_536, 2**32 - 1
    tables.append(("orders", TableLedger(2, ORDER_FIRST, 3, 10, 2_000_000, big)))

    doc = ledger.document("run-7", tables)
    assert doc["format"] == "loadengine-ledger" and doc["version"] == 2
    assert doc["run_id"] == "run-7"
    assert doc["tables"]["customers"]["key_column"] == "id"
    assert doc["tables"]["orders"]["key_column"] == "order_number"
    shards = doc["tables"]["orders"]["shards"]
    assert [s["shard"] for s in shards] == [0, 1, 2]
    assert shards[2]["updated"] == 1 + 70_000 + 65_536 + 2**32 - 1
    assert [s["inserted"] for s in doc["tables"]["customers"]["shards"]] == [9, 0]

    back = ledger.from_document(orjson.loads(orjson.dumps(doc)))
    assert sorted(back, key=lambda x: (x[0], x[1].shard)) == sorted(
        tables, key=lambda x: (x[0], x[1].shard)
    )
    restored = by_shard(back)[("orders", 2)]
    assert restored.updates[7] == 70_000 and restored.updates[2_000_000] == 2**32 - 1
    assert restored.updates.typecode == "I"


@pytest.mark.parametrize("patch", [{"format": "something-else"}, {"version": 3}, {"format": None}])
def test_from_document_refuses_other_formats(patch: dict[str, object]) -> None:
    doc = ledger.document("r", list(LedgerBook(make_plans(workers=1)).tables()))
    doc.update(patch)
    with pytest.raises(ValueError, match="not a loadengine-ledger v1 or v2 file"):
        ledger.from_document(doc)


def test_a_million_keys_with_three_million_updates_stay_under_5_mb() -> None:
    rng = np.random.default_rng(20261128)
    ks = rng.integers(0, 1_000_000, size=3_000_000, dtype=np.uint32)
    counts = array("I")
    counts.frombytes(np.bincount(ks, minlength=1_000_000).astype("<u4").tobytes())
    counts[999_999] = 100_000  # one hot key beyond uint16
    table = TableLedger(0, CUSTOMER_FIRST, 1, 0, 1_000_000, counts)
    text = orjson.dumps(ledger.document("big", [("customers", table)]))
    assert len(text) < 5_000_000
    ((name, back),) = ledger.from_document(orjson.loads(text))
    assert name == "customers"
    assert back == table
    assert back.update_total == sum(counts) > 3_000_000


# --- TableLedger --------------------------------------------------------------------------


@pytest.mark.parametrize(("shard", "stride"), [(0, 1), (0, 3), (2, 3), (5, 8), (7, 8)])
def test_key_and_index_of_are_inverse(shard: int, stride: int) -> None:
    t = TableLedger(shard, 1001, stride, 50, 10, array("I"))
    for k in (0, 1, 2, 49, 50, 59, 10_000, 4_000_000):
        assert t.index_of(t.key(k)) == k
    assert t.key(0) == 1001 + shard
    assert t.key(1) - t.key(0) == stride


def test_index_of_refuses_keys_of_other_shards_and_below_the_range() -> None:
    shards = [TableLedger(i, 1001, 4, 50, 10, array("I")) for i in range(4)]
    for key in range(1001, 1101):
        owners = [t.shard for t in shards if t.index_of(key) is not None]
        assert owners == [(key - 1001) % 4], key
    t = shards[1]
    assert [t.index_of(key) for key in (1002, 1006, 1010)] == [0, 1, 2]
    assert [t.index_of(key) for key in (1001, 1003, 1004, 1005, 1007)] == [None] * 5
    assert [t.index_of(key) for key in (998, 1000, 5, 0, -3)] == [None] * 5


def test_expected_classifies_setup_load_and_none() -> None:
    t = TableLedger(1, 1001, 2, 3, 2, counts_of(5, {0: 2, 3: 1}))
    assert [t.expected("insert", k) for k in range(7)] == [
        ("setup", 1),
        ("setup", 1),
        ("setup", 1),
        ("load", 1),
        ("load", 1),
        ("none", 0),
        ("none", 0),
    ]
    assert [t.expected("update", k) for k in range(6)] == [
        ("load", 2),
        ("load", 0),
        ("load", 0),
        ("load", 1),
        ("load", 0),
        ("none", 0),
    ]
    assert t.expected("delete", 0) == ("none", 0)
    assert t.expected("delete", 3) == ("none", 0)


def test_expected_without_seed() -> None:
    t = TableLedger(0, 1, 1, 0, 1, counts_of(1, {}))
    assert (t.expected("insert", 0), t.expected("insert", 1)) == (("load", 1), ("none", 0))


# --- totals / path_for --------------------------------------------------------------------


def test_totals_split_load_and_setup_by_table_and_kind() -> None:
    book = LedgerBook(make_plans())
    fill(book)
    load, setup = ledger.totals(list(book.tables()))
    assert load == {"customers": {"insert": 8, "update": 4}, "orders": {"insert": 2, "update": 5}}
    s = 3 * seed_rows_per_shard(10)  # three shards
    assert setup == {"customers": {"insert": s}, "orders": {"insert": s}}


def test_totals_leave_out_tables_and_kinds_without_changes() -> None:
    tables = [
        ("customers", TableLedger(0, 1, 2, 0, 3, counts_of(3, {}))),
        ("customers", TableLedger(1, 1, 2, 0, 0, counts_of(3, {1: 4}))),
        ("orders", TableLedger(0, 9, 2, 0, 0, counts_of(0, {}))),
    ]
    assert ledger.totals(tables) == ({"customers": {"insert": 3, "update": 4}}, {})
    assert ledger.totals([]) == ({}, {})


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ("out/r.json", "out/r.ledger.json"),
        ("results/run-20261128T175526Z.json", "results/run-20261128T175526Z.ledger.json"),
        ("r", "r.ledger.json"),
        ("/tmp/x.json.json", "/tmp/x.json.ledger.json"),
        ("data.results", "data.results.ledger.json"),
    ],
)
def test_path_for(results: str, expected: str) -> None:
    assert ledger.path_for(results) == expected
