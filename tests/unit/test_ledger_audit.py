"""Change ledger, binary-log text scanning and the audit comparison: pure, no server."""

from __future__ import annotations

import random
from array import array
from collections import Counter

import orjson

from loadengine.core.messages import ShardDelta
from loadengine.core.plan import DEFAULT_MIX, KeySpace, RunPlan, shard_plans
from loadengine.core.workload import Statement, commit_probe
from loadengine.server import binlog
from loadengine.shard import journal
from loadengine.verify import audit, ledger

DB = "inventory"


def _plans(workers: int = 2) -> list:
    plan = RunPlan(
        steps=((100, 5),),
        duration_s=5,
        warmup_s=0,
        workers=workers,
        batch_size=10,
        log_interval_s=1.0,
        mix=DEFAULT_MIX,
        seed=1,
        on_overload="catch-up",
        dsn=None,
        output=None,
        keep_server=False,
    )
    return shard_plans(plan, "mysql://u@h/db", 1001, 10001, "tok")


def _delta(shard: int, inserts: int, updated: list[int]) -> ShardDelta:
    return ShardDelta(
        shard=shard,
        second=0,
        changes={"customers": {"insert": inserts, "update": len(updated)}},
        statements=2,
        transactions=1,
        errors={},
        late_batches=0,
        missed_changes=0,
        backlog_changes=0,
        reconnects=0,
        updated_keys={"customers": array("I", updated).tobytes()} if updated else {},
    )


def test_ledger_book_counts_inserts_and_updates_per_key_and_round_trips() -> None:
    plans = _plans()
    book = ledger.LedgerBook({p.index: p for p in plans})
    book.add(_delta(0, 10, [0, 3, 3, 55]))
    book.add(_delta(0, 5, [3]))
    book.add(_delta(1, 2, []))
    tables = list(book.tables())
    c0 = next(t for n, t in tables if n == "customers" and t.shard == 0)
    seeded = plans[0].keys.seeded_customers
    assert (c0.first_key, c0.stride, c0.seeded, c0.inserted) == (1001, 2, seeded, 15)
    assert (c0.updates[0], c0.updates[3], c0.updates[55], c0.update_total) == (1, 3, 1, 5)
    assert len(c0.updates) == seeded + 15
    doc = orjson.loads(orjson.dumps(ledger.document("r1", tables)))
    back = ledger.from_document(doc)
    assert sorted((n, t.shard, t.inserted, list(t.updates)) for n, t in back) == sorted(
        (n, t.shard, t.inserted, list(t.updates)) for n, t in tables
    )
    load, setup = ledger.totals(back)
    assert load["customers"] == {"insert": 17, "update": 5}
    assert setup["customers"]["insert"] == 2 * seeded  # two shards


def test_key_and_index_are_inverse_and_other_shards_keys_are_refused() -> None:
    t = ledger.TableLedger(1, 1001, 4, 50, 10, array("I", [0] * 60))
    for k in (0, 1, 59):
        assert t.index_of(t.key(k)) == k
    assert t.index_of(1001) is None and t.index_of(1003) is None and t.index_of(5) is None
    assert t.expected("insert", 3) == ("setup", 1)
    assert t.expected("insert", 55) == ("load", 1)
    assert t.expected("insert", 60) == ("none", 0)
    assert ledger.path_for("out/r.json") == "out/r.ledger.json"


def test_large_counts_survive_and_a_big_ledger_stays_small() -> None:
    rng = random.Random(3)
    counts = array("I", [0] * 1_000_000)
    for _ in range(3_000_000):
        counts[rng.randrange(1_000_000)] += 1
    counts[7] = 70_000  # beyond uint16
    t = ledger.TableLedger(0, 1, 1, 0, 1_000_000, counts)
    text = orjson.dumps(ledger.document("r", [("customers", t)]))
    assert len(text) < 5_000_000
    ((_, back),) = ledger.from_document(orjson.loads(text))
    assert back.updates == counts


ROWS = (
    b"# at 1234\n#261128 17:55:26 server id 1  end_log_pos 1300 CRC32 0x1 \tTable_map\n"
    b"# at 1300\n#261128 17:55:26 server id 1  end_log_pos 1400 CRC32 0x1 \tWrite_rows\n"
    b"### INSERT INTO `inventory`.`customers`\n### SET\n###   @1=1001\n###   @2='A'\n"
    b"### INSERT INTO `other`.`customers`\n### SET\n###   @1=5\n"
    b"# at 1400\n#261128 17:55:26 server id 1  end_log_pos 1500 CRC32 0x1 \tUpdate_rows\n"
    b"### UPDATE `inventory`.`customers`\n### WHERE\n###   @1=1001\n###   @2='A'\n"
    b"### SET\n###   @1=1001\n###   @2='B'\n"
    b"# at 1500\n#261128 17:55:26 server id 1  end_log_pos 1600 CRC32 0x1 \tUpdate_rows\n"
    b"### UPDATE `inventory`.`loadengine_heartbeat`\n### WHERE\n###   @1=1\n###   @2=100\n"
    b"### SET\n###   @1=1\n###   @2=1795888581000000\n"
    b"# at 1600\n#261128 17:55:26 server id 1  end_log_pos 1700 CRC32 0x1 \tXid\nCOMMIT/*!*/;\n"
)


def test_row_events_are_counted_per_key_and_database() -> None:
    rows: Counter = Counter()
    assert binlog.count_rows(ROWS, DB, rows) == 4
    assert rows == Counter(
        {
            ("customers", "insert", "1001"): 1,
            ("customers", "update", "1001"): 1,
            ("loadengine_heartbeat", "update", "1"): 1,
        }
    )
    assert binlog.count_lines([ROWS], DB)["customers"] == {"insert": 1, "update": 1}


def test_recutting_a_stream_at_any_byte_gives_the_same_counts() -> None:
    whole: Counter = Counter()
    binlog.count_rows(ROWS, DB, whole)
    for cut in range(1, len(ROWS), 7):
        got: Counter = Counter()
        for piece in binlog.chunks_at_events([ROWS[:cut], ROWS[cut:]]):
            binlog.count_rows(piece, DB, got)
        assert got == whole, cut


def test_follow_scan_measures_lag_rows_and_bytes_idempotently() -> None:
    state = binlog.FollowState(file="binlog.000001", position=1234)
    pattern = binlog.heartbeat_pattern(DB)
    binlog.scan_follow_text(ROWS, pattern, 1795888581002500, 3, state)
    assert state.lag_us == [(3, 2500)]
    assert state.rows_by_second == {3: 4}
    assert (state.position, state.bytes_by_second) == (1700, {3: 466})
    binlog.scan_positions(ROWS, 3, state)  # the same events again: nothing new
    assert state.bytes_by_second == {3: 466}
    rotate = b"#261128 server id 1  end_log_pos 0 \tRotate to binlog.000002  pos: 4\n"
    binlog.scan_positions(rotate + b"# at 4\n#26 end_log_pos 256 \tFormat\n", 4, state)
    assert (state.file, state.position, state.bytes_by_second[4]) == ("binlog.000002", 256, 252)


def _tables() -> list[tuple[str, ledger.TableLedger]]:
    ups = array("I", [0] * 52)
    ups[0], ups[51] = 2, 1
    return [("customers", ledger.TableLedger(0, 1001, 1, 50, 2, ups))]


def _clean_rows() -> Counter:
    rows: Counter = Counter()
    for k in range(52):
        rows[("customers", "insert", str(1001 + k))] += 1
    rows[("customers", "update", "1001")] += 2
    rows[("customers", "update", "1052")] += 1
    rows[("loadengine_heartbeat", "update", "1")] += 7
    return rows


def test_clean_window_audits_to_zero() -> None:
    engine = {"customers": {"insert": 2, "update": 3}}
    a = audit.compare(_clean_rows(), _tables(), engine, 7)
    assert (a["missing"], a["extra"], a["duplicates"], a["clean"]) == (0, 0, 0, True)
    assert a["changes_by_table"] == engine and a["binlog_changes"] == 5
    assert a["setup"]["observed"] == 50 and a["heartbeat"] == {"written": 7, "observed": 7}


def test_missing_duplicate_and_extra_are_told_apart() -> None:
    rows = _clean_rows()
    del rows[("customers", "insert", "1052")]  # a load insert lost
    rows[("customers", "update", "1001")] += 1  # delivered twice
    rows[("customers", "delete", "1010")] += 1  # nobody deleted that
    rows[("customers", "insert", "999999")] += 1  # not a key any shard owns
    rows[("addresses", "insert", "1")] += 1  # another table
    a = audit.compare(rows, _tables(), {"customers": {"insert": 2, "update": 3}}, 7)
    assert (a["missing"], a["duplicates"], a["extra"]) == (1, 1, 3)
    assert "customers insert 1052" in a["examples"]["missing"]
    assert a["clean"] is False


def test_heartbeats_missing_from_the_log_make_the_audit_unclean() -> None:
    a = audit.compare(_clean_rows(), _tables(), {"customers": {"insert": 2, "update": 3}}, 9)
    assert a["clean"] is False


def _stmt(op: str, table: str, kind: str, params: tuple, rows: int, **kw) -> Statement:
    return Statement(op, table, kind, "", params, rows, **kw)


def test_commit_probe_uses_inserted_keys_then_customer_tags_else_gives_up() -> None:
    keys = KeySpace(
        customer_first=7, order_first=10001, index=0, stride=2, seeded_customers=0, seeded_orders=0
    )  # k=0 -> 7, k=1 -> 9
    ins = _stmt(
        "insert_customer", "customers", "insert", (7, "a", "b", "e", 9, "a", "b", "e"), 2, first_k=0
    )
    probe = commit_probe([_stmt("update_order", "orders", "update", (1,), 1), ins], keys)
    assert probe is not None and probe.params == (7, 9) and probe.expect == 2
    upd = _stmt("update_customer", "customers", "update", ("tok.0.5", 11, 12), 2)
    probe = commit_probe([upd], keys)
    assert probe is not None and probe.params == (11, 12, "tok.0.5") and "email" in probe.sql
    assert commit_probe([_stmt("update_order", "orders", "update", (1, 2), 2)], keys) is None


def test_journal_replay_counts_acked_work_and_keeps_the_one_in_doubt() -> None:
    plans = _plans(1)
    keys = plans[0].keys
    lines = [
        orjson.dumps(
            {"b": 1, "t": "tok.0.1", "s": [["insert_customer", 2, 50], ["update_order", 2, [3, 4]]]}
        ),
        orjson.dumps({"a": 1, "r": [2, 2]}),
        orjson.dumps({"b": 2, "t": "tok.0.2", "s": [["insert_customer", 2, 52]]}),  # no ack
        orjson.dumps({"b": 3, "t": "tok.0.3", "s": [["insert_customer", 2, 52]]}),
        orjson.dumps({"a": 3, "r": [2]}),
        orjson.dumps({"b": 4, "t": "tok.0.4", "s": [["update_customer", 1, [9]]]})[:-5],  # torn
    ]
    rep = journal.replay(lines)
    assert rep.changes == {"customers": {"insert": 4}, "orders": {"update": 2}}
    assert rep.update_keys == {"orders": [3, 4]} and rep.inserted == {"customers": 4}
    assert rep.last_batch == 3 and rep.pending is None
    rep = journal.replay(lines[:3])
    assert rep.pending is not None and rep.pending["b"] == 2
    stmts = journal.pending_statements(rep.pending, keys)
    probe = commit_probe(stmts, keys)
    assert probe is not None and probe.params == (keys.customer_id(52), keys.customer_id(53))


def test_journal_replay_with_intents_written_ahead_and_a_batch_given_up() -> None:
    def intent(b: int, k: int) -> bytes:
        return orjson.dumps({"b": b, "t": f"tok.0.{b}", "s": [["insert_customer", 1, k]]})

    lines = [
        intent(1, 0), intent(2, 1), intent(3, 2),  # written ahead in one go
        orjson.dumps({"a": 1, "r": [1]}),
        orjson.dumps({"x": 2}),  # failed for good: what was built after it is rebuilt
        intent(3, 1), intent(4, 2),
        orjson.dumps({"a": 3, "r": [1]}),
    ]  # fmt: skip
    rep = journal.replay(lines)
    assert rep.changes == {"customers": {"insert": 2}} and rep.inserted == {"customers": 2}
    assert rep.pending is not None and rep.pending["s"] == [["insert_customer", 1, 2]]
    assert rep.last_batch == 4  # the one that may be in flight
    rep = journal.replay([*lines, orjson.dumps({"a": 4, "r": [1]})])
    assert rep.pending is None and rep.last_batch == 4
    rep = journal.replay(lines[:5])  # died after giving up 2: 3 was written, never sent
    assert rep.pending is not None and rep.pending["b"] == 3 and rep.last_batch == 3
