"""loadengine.verify.sink.SinkCheck on raw message bodies: each change once by its place
in the binary log, per-key order, redeliveries, heartbeats, tombstones, schema changes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from loadengine.verify.sink import SinkCheck

T0 = 1_800_000_000_000_000  # µs


def event(
    op: str,
    key: int,
    pos: int,
    row: int = 0,
    table: str = "customers",
    file: str = "binlog.000001",
    before: Any = None,
    after: Any = None,
) -> bytes:
    column = "id" if table == "customers" else "order_number"
    image = {column: key, "v": pos}
    return orjson.dumps(
        {
            "before": before if before is not None else (None if op == "c" else image),
            "after": after if after is not None else (None if op == "d" else image),
            "op": op,
            "source": {"table": table, "file": file, "pos": pos, "row": row, "ts_us": T0},
        }
    )


def test_changes_are_counted_once_by_place_and_repeats_are_redeliveries() -> None:
    c = SinkCheck()
    for body in (event("c", 7, 100), event("u", 7, 200), event("u", 7, 200)):
        c.add(body, T0 + 5_000)
    assert c.changes == 2 and c.redelivered == 1
    assert c.observed == {("customers", "insert", "7"): 1, ("customers", "update", "7"): 1}
    assert c.examples["redelivered"] == ["customers update 7"]
    assert c.age_us == [5_000, 5_000]


def test_the_same_key_changed_twice_at_two_places_is_two_changes() -> None:
    c = SinkCheck()
    c.add(event("u", 7, 200, row=0), T0)
    c.add(event("u", 7, 200, row=1), T0)
    assert c.observed == {("customers", "update", "7"): 2} and c.redelivered == 0


def test_a_change_behind_a_later_change_of_its_key_is_out_of_order() -> None:
    c = SinkCheck()
    for pos in (100, 300, 200):
        c.add(event("u", 7, pos), T0)
    c.add(event("u", 8, 150), T0)  # another key: its own order
    assert c.out_of_order == 1 and c.examples["out_of_order"] == ["customers 7"]


def test_order_across_binlog_files() -> None:
    c = SinkCheck()
    c.add(event("u", 7, 900, file="binlog.000001"), T0)
    c.add(event("u", 7, 4, file="binlog.000002"), T0)  # a later file, a smaller position
    c.add(event("u", 7, 950, file="binlog.000001"), T0)
    assert c.out_of_order == 1 and c.changes == 3


def test_heartbeats_give_lag_by_run_second_and_are_not_changes() -> None:
    c = SinkCheck(origin_us=T0)
    body = orjson.dumps(
        {
            "before": {"id": 1, "ts_us": T0},
            "after": {"id": 1, "ts_us": T0 + 1_000_000},
            "op": "u",
            "source": {"table": "loadengine_heartbeat", "file": "b.1", "pos": 5, "row": 0},
        }
    )
    c.add(body, T0 + 1_250_000)
    assert c.heartbeats == 1 and c.changes == 0 and c.lag_us == [(1, 250_000)]


def test_changes_by_run_second_with_setup_before_the_start() -> None:
    c = SinkCheck(origin_us=2**62)
    c.add(event("c", 1, 10), T0)  # before the run started: second -1
    c.set_origin(T0 + 1_000_000)
    c.add(event("c", 2, 20), T0 + 1_500_000)
    c.add(event("c", 3, 30), T0 + 3_100_000)
    assert c.changes_by_second == {-1: 1, 0: 1, 2: 1}


def test_tombstones_schema_changes_snapshot_reads_and_junk_are_apart() -> None:
    c = SinkCheck()
    c.add(b"default", T0)  # Debezium Server's null.value for a tombstone
    c.add(b"null", T0)
    c.add(orjson.dumps({"ddl": "ALTER TABLE x", "tableChanges": []}), T0)
    c.add(event("r", 5, 1), T0)
    c.add(b"{not json", T0)
    c.add(orjson.dumps([1, 2]), T0)
    assert (c.tombstones, c.schema_changes, c.snapshot_reads, c.undecodable) == (2, 1, 1, 2)
    assert c.changes == 0 and c.messages == 6


def test_the_schema_payload_wrapper_is_unwrapped() -> None:
    c = SinkCheck()
    c.add(orjson.dumps({"schema": {}, "payload": orjson.loads(event("c", 9, 10))}), T0)
    assert c.observed == {("customers", "insert", "9"): 1} and c.messages == 1


def test_events_without_coordinates_are_ordered_by_their_images() -> None:
    c = SinkCheck()
    body = orjson.loads(event("u", 7, 1, before={"id": 7, "v": 1}, after={"id": 7, "v": 2}))
    for source in (body["source"],):
        source.pop("pos")
    c.add(orjson.dumps(body), T0)
    body["before"], body["after"] = {"id": 7, "v": 5}, {"id": 7, "v": 6}  # chain broken
    c.add(orjson.dumps(body), T0)
    assert c.changes == 2 and c.out_of_order == 1


def test_a_delete_counts_by_its_before_image_key_and_its_tombstone_apart() -> None:
    """Debezium's delete: ``op: d`` with the row in ``before`` and a null ``after``, then a
    tombstone (null body). The delete is a change of its key, in binary-log order with the
    key's other changes; the tombstone is not a change. Against a ledger that holds the
    insert, the update and the delete, the verdict is clean; without the delete in the
    ledger, it is extra; the delete missing from the sink is lost."""
    from array import array

    from loadengine.verify.ledger import TableLedger
    from loadengine.verify.sink import verdict

    c = SinkCheck()
    for body in (event("c", 1001, 100), event("u", 1001, 200), event("d", 1001, 300)):
        c.add(body, T0)
    c.add(b"", T0)  # the tombstone that follows a delete
    c.add(event("u", 1001, 250), T0)  # arrives after the delete, from before it
    assert c.observed == {
        ("customers", "insert", "1001"): 1,
        ("customers", "update", "1001"): 2,
        ("customers", "delete", "1001"): 1,
    }
    assert (c.tombstones, c.changes, c.out_of_order) == (1, 4, 1)

    def ledger(deleted: int) -> list[tuple[str, TableLedger]]:
        return [("customers", TableLedger(0, 1001, 1, 0, 1, array("I", [2]),
                                          array("I", [deleted])))]  # fmt: skip

    assert verdict(c.observed, ledger(1), 0, 0)["clean"]
    extra = verdict(c.observed, ledger(0), 0, 0)
    assert extra["extra"] == 1 and extra["examples"]["extra"] == ["customers delete 1001"]
    lost = Counter(c.observed)
    del lost[("customers", "delete", "1001")]
    assert verdict(lost, ledger(1), 0, 0)["lost"] == 1
