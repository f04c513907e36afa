"""Deletes in the change ledger and the binary-log audit. Pure, no server."""

from __future__ import annotations

import dataclasses
from array import array
from collections import Counter
from types import SimpleNamespace
from typing import Any

import orjson

from loadengine.core.messages import ShardDelta
from loadengine.core.plan import KeySpace
from loadengine.verify import audit, ledger
from tests.unit.test_ledger import delta, u32

KEY_COLUMNS = {"accounts": "account_id", "payments": "payment_id"}


def _plans(shards: int = 2, seeded: int = 4) -> dict[int, Any]:
    """What ``LedgerBook`` reads of a shard's plan: its key space (a spec workload's)."""
    return {
        i: SimpleNamespace(
            index=i,
            keys=KeySpace(
                1, 1, i, shards, 0, 0,
                spec_tables=(("accounts", 1, seeded), ("payments", 100, 0)),
            ),
        )
        for i in range(shards)
    }  # fmt: skip


def _delta(
    shard: int,
    changes: dict[str, dict[str, int]],
    deleted: dict[str, list[int]],
    updated: dict[str, list[int]] | None = None,
) -> ShardDelta:
    """``test_ledger.delta`` with deleted keys."""
    d = delta(shard, changes, updated or {})
    return dataclasses.replace(d, deleted_keys={t: u32(ks) for t, ks in deleted.items()})


def _book() -> list[tuple[str, ledger.TableLedger]]:
    book = ledger.LedgerBook(_plans())
    book.add(_delta(0, {"accounts": {"insert": 3, "delete": 2}}, {"accounts": [1, 5]}))
    book.add(
        _delta(
            0,
            {"payments": {"insert": 2, "delete": 1, "update": 1}},
            {"payments": [0]},
            {"payments": [1]},
        )
    )
    book.add(_delta(1, {"accounts": {"insert": 1, "delete": 1}}, {"accounts": [0]}))
    return list(book.tables())


def _get(tables: list[tuple[str, ledger.TableLedger]], name: str, shard: int) -> Any:
    return next(t for n, t in tables if n == name and t.shard == shard)


def test_ledger_book_records_deleted_keys_per_shard_and_table() -> None:
    tables = _book()
    a0, a1, p0 = (
        _get(tables, "accounts", 0),
        _get(tables, "accounts", 1),
        _get(tables, "payments", 0),
    )
    assert (a0.seeded, a0.inserted, a0.delete_total) == (4, 3, 2)
    assert [a0.expected("delete", k) for k in range(7)] == [
        ("load", 0), ("load", 1), ("load", 0), ("load", 0), ("load", 0), ("load", 1), ("load", 0)
    ]  # fmt: skip
    assert a0.expected("delete", 7) == ("none", 0)
    assert (a1.delete_total, a1.expected("delete", 0), a1.expected("delete", 1)) == (
        1, ("load", 1), ("load", 0)
    )  # fmt: skip
    assert p0.expected("delete", 0) == ("load", 1) and p0.expected("update", 1) == ("load", 1)
    assert _get(tables, "payments", 1).delete_total == 0
    load, _ = ledger.totals(tables)
    assert load["accounts"] == {"insert": 4, "delete": 3}
    assert load["payments"] == {"insert": 2, "update": 1, "delete": 1}


def test_a_deleted_key_of_another_shard_is_not_this_shards() -> None:
    tables = _book()
    a0 = _get(tables, "accounts", 0)
    assert a0.key(5) == 11 and a0.index_of(11) == 5 and a0.index_of(12) is None


def test_document_round_trips_deletes() -> None:
    tables = _book()
    doc = orjson.loads(orjson.dumps(ledger.document("r1", tables, KEY_COLUMNS)))
    assert doc["version"] == 2
    shard0 = doc["tables"]["accounts"]["shards"][0]
    assert shard0["deleted"] == 2 and "deletes" in shard0
    assert "deletes" not in doc["tables"]["payments"]["shards"][1]  # none: not written
    back = ledger.from_document(doc)
    assert sorted((n, t.shard, list(t.deletes), list(t.updates)) for n, t in back) == sorted(
        (n, t.shard, list(t.deletes) if t.delete_total else [], list(t.updates)) for n, t in tables
    )
    assert _get(back, "accounts", 0).expected("delete", 5) == ("load", 1)
    assert ledger.totals(back) == ledger.totals(tables)


def test_a_version_1_document_without_deletes_still_reads() -> None:
    tables = [("customers", ledger.TableLedger(0, 1001, 1, 2, 3, array("I", [0, 2, 0, 0, 1])))]
    doc = ledger.document("r0", tables)
    doc["version"] = 1
    for shard in doc["tables"]["customers"]["shards"]:
        del shard["deleted"]
    ((name, t),) = ledger.from_document(orjson.loads(orjson.dumps(doc)))
    assert name == "customers" and list(t.updates) == [0, 2, 0, 0, 1]
    assert t.delete_total == 0 and t.expected("delete", 1) == ("none", 0)
    assert t.expected("update", 1) == ("load", 2)


def _audit_tables() -> list[tuple[str, ledger.TableLedger]]:
    """One shard, keys 1..5: 1..3 seeded, 4 and 5 inserted; 2 and 5 deleted."""
    deletes = array("I", [0, 1, 0, 0, 1])
    return [("accounts", ledger.TableLedger(0, 1, 1, 3, 2, array("I", [0] * 5), deletes))]


def _audit_rows() -> Counter:
    rows: Counter = Counter()
    for key in range(1, 6):
        rows[("accounts", "insert", str(key))] += 1
    rows[("accounts", "delete", "2")] += 1
    rows[("accounts", "delete", "5")] += 1
    return rows


ENGINE = {"accounts": {"insert": 2, "delete": 2}}


def test_audit_of_deletes_the_ledger_holds_is_clean() -> None:
    a = audit.compare(_audit_rows(), _audit_tables(), ENGINE, None)
    assert (a["missing"], a["extra"], a["duplicates"], a["clean"]) == (0, 0, 0, True)
    assert a["changes_by_table"] == ENGINE and a["setup"]["observed"] == 3


def test_audit_counts_a_delete_missing_from_the_binlog() -> None:
    rows = _audit_rows()
    del rows[("accounts", "delete", "5")]
    a = audit.compare(rows, _audit_tables(), ENGINE, None)
    assert (a["missing"], a["extra"], a["duplicates"], a["clean"]) == (1, 0, 0, False)
    assert a["examples"]["missing"] == ["accounts delete 5"]


def test_audit_counts_an_unledgered_delete_as_extra() -> None:
    rows = _audit_rows()
    rows[("accounts", "delete", "3")] += 1
    rows[("accounts", "delete", "9")] += 1  # a key beyond the shard's rows
    a = audit.compare(rows, _audit_tables(), {"accounts": {"insert": 2, "delete": 4}}, None)
    assert (a["missing"], a["extra"], a["duplicates"], a["clean"]) == (0, 2, 0, False)
    assert a["examples"]["extra"] == ["accounts delete 3", "accounts delete 9"]


def test_audit_counts_a_delete_seen_twice_as_a_duplicate() -> None:
    rows = _audit_rows()
    rows[("accounts", "delete", "2")] += 1
    a = audit.compare(rows, _audit_tables(), {"accounts": {"insert": 2, "delete": 3}}, None)
    assert (a["missing"], a["extra"], a["duplicates"]) == (0, 0, 1)
    assert a["examples"]["duplicates"] == ["accounts delete 2"]
