"""loadengine.verify.audit.compare: the binary-log window's rows, key by key, against the ledger.

Two shards (stride 2). Customers: each shard seeded k=0..2 and inserted k=3..4; orders:
seeded k=0..2, shard 0 inserted k=3. Keys are ``first + shard + 2k``.
"""

from __future__ import annotations

from array import array
from collections import Counter

import pytest

from loadengine.core.messages import ChangeCounts
from loadengine.server.binlog import RowKey
from loadengine.verify import audit
from loadengine.verify.audit import Owners, Tally
from loadengine.verify.ledger import TableLedger

HB = "loadengine_heartbeat"


def counts_of(size: int, hits: dict[int, int]) -> array[int]:
    a = array("I", [0] * size)
    for k, n in hits.items():
        a[k] = n
    return a


def tables() -> list[tuple[str, TableLedger]]:
    return [
        # customers 1001 1003 1005 (seed), 1007 1009 (load); 1001 updated once, 1007 twice
        ("customers", TableLedger(0, 1001, 2, 3, 2, counts_of(5, {0: 1, 3: 2}))),
        ("orders", TableLedger(0, 10001, 2, 3, 1, counts_of(4, {1: 1}))),
        # customers 1002 1004 1006 (seed), 1008 1010 (load); 1010 updated once
        ("customers", TableLedger(1, 1001, 2, 3, 2, counts_of(5, {4: 1}))),
        ("orders", TableLedger(1, 10001, 2, 3, 0, counts_of(3, {}))),
    ]


ENGINE: ChangeCounts = {
    "customers": {"insert": 4, "update": 4},
    "orders": {"insert": 1, "update": 1},
}
SETUP: ChangeCounts = {"customers": {"insert": 6}, "orders": {"insert": 6}}


def clean_rows(heartbeats: int = 5) -> Counter[RowKey]:
    rows: Counter[RowKey] = Counter()
    for key in range(1001, 1011):
        rows[("customers", "insert", str(key))] += 1
    for key in (10001, 10002, 10003, 10004, 10005, 10006, 10007):
        rows[("orders", "insert", str(key))] += 1
    rows[("customers", "update", "1001")] += 1
    rows[("customers", "update", "1007")] += 2
    rows[("customers", "update", "1010")] += 1
    rows[("orders", "update", "10003")] += 1
    if heartbeats:
        rows[(HB, "update", "1")] += heartbeats
    return rows


# --- clean ----------------------------------------------------------------------------------


def test_a_clean_window() -> None:
    a = audit.compare(clean_rows(), tables(), ENGINE, 5)
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 0)
    assert a["clean"] is True
    assert a["changes_by_table"] == ENGINE
    assert (a["binlog_changes"], a["engine_changes"], a["matches_engine"]) == (10, 10, True)
    assert a["setup"] == {"expected": 12, "observed": 12, "missing": 0, "by_table": SETUP}
    assert a["heartbeat"] == {"written": 5, "observed": 5}
    assert HB not in a["changes_by_table"]
    assert a["examples"] == {}


def test_heartbeat_rows_are_counted_apart_whatever_their_kind() -> None:
    rows = clean_rows(heartbeats=0)
    rows[(HB, "update", "1")] += 40
    rows[(HB, "insert", "1")] += 1
    a = audit.compare(rows, tables(), ENGINE, 41)
    assert a["heartbeat"] == {"written": 41, "observed": 41}
    assert a["changes_by_table"] == ENGINE and a["extra"] == 0 and a["clean"] is True


def test_without_heartbeats_written_the_heartbeat_check_is_off() -> None:
    a = audit.compare(clean_rows(heartbeats=0), tables(), ENGINE, None)
    assert a["heartbeat"] == {"written": None, "observed": 0}
    assert a["clean"] is True


def test_engine_changes_with_zero_entries_still_match() -> None:
    engine = {**ENGINE, "customers": {**ENGINE["customers"], "delete": 0}, "other": {"x": 0}}
    a = audit.compare(clean_rows(), tables(), engine, 5)
    assert a["matches_engine"] is True and a["clean"] is True


# --- missing ----------------------------------------------------------------------------------


def test_a_missing_insert_and_a_missing_update() -> None:
    rows = clean_rows()
    del rows[("customers", "insert", "1009")]  # shard 0, k=4: a load insert lost
    rows[("customers", "update", "1007")] -= 1  # expected 2, observed 1
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert (a["missing"], a["extra"], a["duplicates"]) == (2, 0, 0)
    assert a["examples"] == {"missing": ["customers update 1007", "customers insert 1009"]}
    assert a["changes_by_table"] == {
        "customers": {"insert": 3, "update": 3},
        "orders": {"insert": 1, "update": 1},
    }
    assert (a["binlog_changes"], a["engine_changes"]) == (8, 10)
    assert a["matches_engine"] is False and a["clean"] is False
    assert a["setup"]["missing"] == 0


def test_a_missing_setup_insert_is_counted_apart_from_the_load() -> None:
    rows = clean_rows()
    del rows[("orders", "insert", "10004")]  # shard 1, seeded k=1
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 0)
    assert a["setup"] == {
        "expected": 12,
        "observed": 11,
        "missing": 1,
        "by_table": {"customers": {"insert": 6}, "orders": {"insert": 5}},
    }
    assert a["examples"] == {"missing": ["orders insert 10004"]}
    assert a["matches_engine"] is True and a["clean"] is False


def test_an_update_never_seen_at_all_is_missing() -> None:
    rows = clean_rows()
    del rows[("orders", "update", "10003")]
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert a["missing"] == 1 and a["examples"]["missing"] == ["orders update 10003"]


def test_missing_examples_are_capped() -> None:
    rows = Counter({k: n for k, n in clean_rows().items() if k[1] != "insert"})
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert a["missing"] == 5  # the load inserts; the 12 seeded ones are setup
    assert a["setup"]["missing"] == 12
    assert len(a["examples"]["missing"]) == audit.MAX_EXAMPLES
    assert a["examples"]["missing"][:3] == [
        "customers insert 1001",
        "customers insert 1003",
        "customers insert 1005",
    ]


# --- duplicates -----------------------------------------------------------------------------


def test_a_duplicated_update() -> None:
    rows = clean_rows()
    rows[("customers", "update", "1010")] += 2  # expected 1, observed 3
    a = audit.compare(rows, tables(), {**ENGINE, "customers": {"insert": 4, "update": 6}}, 5)
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 2)
    assert a["examples"] == {"duplicates": ["customers update 1010"]}
    assert a["changes_by_table"]["customers"] == {"insert": 4, "update": 6}
    assert a["matches_engine"] is True  # the engine count was made to agree: still unclean
    assert a["clean"] is False


def test_a_duplicated_setup_insert_is_a_duplicate_counted_under_setup() -> None:
    rows = clean_rows()
    rows[("customers", "insert", "1003")] += 1
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 1)
    assert a["setup"]["observed"] == 13 and a["setup"]["missing"] == 0
    assert a["changes_by_table"] == ENGINE
    assert a["clean"] is False


# --- extra ----------------------------------------------------------------------------------


def test_unowned_keys_deletes_and_other_tables_are_extra() -> None:
    rows = clean_rows()
    rows[("customers", "insert", "1011")] += 1  # shard 0 k=5: beyond what it inserted
    rows[("customers", "insert", "999")] += 1  # below every shard's first key
    rows[("customers", "delete", "1003")] += 1  # nobody deletes
    rows[("customers", "update", "1002")] += 1  # owned and seeded but never updated
    rows[("addresses", "insert", "1")] += 2  # a table loadengine does not write
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 6, 0)
    assert sorted(a["examples"]["extra"]) == [
        "addresses insert 1",
        "customers delete 1003",
        "customers insert 1011",
        "customers insert 999",
        "customers update 1002",
    ]
    assert a["changes_by_table"] == {
        "customers": {"insert": 6, "update": 5, "delete": 1},
        "orders": {"insert": 1, "update": 1},
        "addresses": {"insert": 2},
    }
    assert a["binlog_changes"] == 16 and a["matches_engine"] is False
    assert a["setup"]["observed"] == 12
    assert a["clean"] is False


def test_a_non_numeric_key_is_extra() -> None:
    rows = clean_rows()
    rows[("customers", "insert", "'abc'")] += 1
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert a["extra"] == 1 and a["examples"]["extra"] == ["customers insert 'abc'"]


def test_extra_examples_are_capped() -> None:
    rows = clean_rows()
    for key in range(2001, 2031):
        rows[("customers", "delete", str(key))] += 1
    a = audit.compare(rows, tables(), ENGINE, 5)
    assert a["extra"] == 30
    assert len(a["examples"]["extra"]) == audit.MAX_EXAMPLES


# --- engine and heartbeat -------------------------------------------------------------------


def test_an_engine_count_differing_from_the_log() -> None:
    engine = {"customers": {"insert": 5, "update": 4}, "orders": {"insert": 1, "update": 1}}
    a = audit.compare(clean_rows(), tables(), engine, 5)
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 0)
    assert (a["binlog_changes"], a["engine_changes"]) == (10, 11)
    assert a["matches_engine"] is False and a["clean"] is False


def test_an_engine_count_differing_per_table_with_the_same_total_is_not_clean() -> None:
    engine = {"customers": {"insert": 5, "update": 3}, "orders": {"insert": 1, "update": 1}}
    a = audit.compare(clean_rows(), tables(), engine, 5)
    assert (a["binlog_changes"], a["engine_changes"], a["matches_engine"]) == (10, 10, False)
    assert a["clean"] is False


@pytest.mark.parametrize(("written", "clean"), [(4, True), (5, True), (6, False), (500, False)])
def test_fewer_heartbeats_observed_than_written_is_unclean(written: int, clean: bool) -> None:
    a = audit.compare(clean_rows(heartbeats=5), tables(), ENGINE, written)
    assert a["heartbeat"] == {"written": written, "observed": 5}
    assert a["clean"] is clean
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 0)


# --- Owners / Tally -------------------------------------------------------------------------


def test_owners_find_the_shard_and_index_of_a_key() -> None:
    owners = Owners(tables())
    found = owners.find("customers", "1010")
    assert found is not None and (found[0].shard, found[1]) == (1, 4)
    found = owners.find("orders", "10007")
    assert found is not None and (found[0].shard, found[1]) == (0, 3)
    found = owners.find("customers", "123457")  # owned (odd offset), far beyond the ledger
    assert found is not None and (found[0].shard, found[1]) == (0, (123457 - 1001) // 2)
    assert owners.find("customers", "1000") is None
    assert owners.find("customers", "abc") is None
    assert owners.find("addresses", "1001") is None


def test_owners_with_a_shard_missing_from_the_ledger() -> None:
    only_shard_1 = [t for t in tables() if t[1].shard == 1]
    owners = Owners(only_shard_1)
    assert owners.find("customers", "1001") is None
    found = owners.find("customers", "1002")
    assert found is not None and found[1] == 0


def test_tally_examples_stop_at_the_cap() -> None:
    tally = Tally()
    for i in range(audit.MAX_EXAMPLES + 5):
        tally.example("extra", "customers", "delete", str(i))
    assert len(tally.examples["extra"]) == audit.MAX_EXAMPLES
    assert tally.examples["extra"][0] == "customers delete 0"
    assert tally.examples["missing"] == [] and tally.examples["duplicates"] == []
