"""Statements generated from a workload spec (core.generic): determinism, keys, version
stamps, deletes, transactions, the carry, key distributions, commit probes and the
journal round trip. Pure, no server."""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

from loadengine.core import spec
from loadengine.core.generic import GenericBuilder, GenericCursor, KeyPool, pick_keys
from loadengine.core.plan import KeySpace
from loadengine.core.spec import KeyChoice, WorkloadSpec
from loadengine.core.workload import CommitProbe, OpSequence, Statement
from loadengine.shard import journal

SEEDED = {"accounts": 20, "payments": 40}
FIRST = {"accounts": 1, "payments": 1000}


def _spec(*ops: dict[str, Any]) -> WorkloadSpec:
    """Accounts and their payments (like the built-in ``payments``, with small values)."""
    default_ops = [
        {"name": "insert_payment", "kind": "insert", "table": "payments", "weight": 5},
        {"name": "settle", "kind": "update", "table": "payments", "weight": 3,
         "set": ["status", "amount"], "keys": {"dist": "latest", "s": 1.1}},
        {"name": "delete_payment", "kind": "delete", "table": "payments", "weight": 2},
        {"name": "update_account", "kind": "update", "table": "accounts", "weight": 1,
         "set": ["owner"], "keys": {"dist": "hotset", "hot_keys": 0.2, "hot_ops": 0.8}},
        {"name": "delete_account", "kind": "delete", "table": "accounts", "weight": 2,
         "unreferenced": True},
        {"name": "open_account", "kind": "transaction", "weight": 1,
         "steps": ["insert_account", "insert_first_payment"]},
        {"name": "insert_account", "kind": "insert", "table": "accounts", "weight": 0},
        {"name": "insert_first_payment", "kind": "insert", "table": "payments", "weight": 0,
         "parent": "latest"},
    ]  # fmt: skip
    return spec.parse(
        "t",
        {
            "tables": [
                {"name": "accounts", "key": "account_id", "version": "v", "columns": [
                    {"name": "owner", "type": "VARCHAR(8)",
                     "gen": {"kind": "choice", "values": ["ada", "o'hara"]}},
                    {"name": "opened", "type": "DATETIME(3)", "gen": "datetime"},
                ]},
                {"name": "payments", "key": "payment_id", "version": "v", "columns": [
                    {"name": "account_id", "type": "BIGINT",
                     "gen": {"kind": "ref", "table": "accounts"}},
                    {"name": "amount", "type": "DECIMAL(8,2)",
                     "gen": {"kind": "decimal", "min": 1, "max": 500}},
                    {"name": "status", "type": "ENUM('pending','settled')",
                     "gen": {"kind": "choice", "values": ["pending", "settled"]}},
                    {"name": "meta", "type": "JSON",
                     "gen": {"kind": "json", "size": {"uniform": [20, 40]}}},
                ]},
            ],
            "operations": list(ops) or default_ops,
        },
    )  # fmt: skip


def _keys(index: int = 0, stride: int = 1, seeded: dict[str, int] | None = None) -> KeySpace:
    seeded = SEEDED if seeded is None else seeded
    tables = tuple((t, FIRST[t], seeded[t]) for t in ("accounts", "payments"))
    return KeySpace(1, 1, index, stride, 0, 0, spec_tables=tables)


class Shard:
    """One shard's builder, RNG, sequence, cursor and pool, building batch after batch."""

    def __init__(self, s: WorkloadSpec, keys: KeySpace, seed: int = 7) -> None:
        self.spec = s
        self.builder = GenericBuilder(s, keys, seed)
        self.rng = random.Random(seed)
        self.sequence = OpSequence(s.mix)
        self.cursor: GenericCursor = self.builder.initial_cursor()
        self.pool = KeyPool.empty(len(s.tables))
        self.batch = 0

    def build(self, n: int = 10) -> list[Statement]:
        stmts, self.cursor = self.builder.build(
            self.sequence, n, self.rng, self.cursor, self.pool, self.batch
        )
        self.batch += 1
        return stmts


def _row_keys(text: str) -> list[int]:
    """The first value (the key) of each row of a multi-row INSERT."""
    return [int(k) for k in re.findall(r"(?:VALUES |\),)\((\d+),", text)]


def _row_values(text: str, position: int) -> list[int]:
    """An integer column's value in each row of a multi-row INSERT (0: the key)."""
    rows = text.split(" VALUES (", 1)[1][:-1].split("),(")
    return [int(r.split(",")[position]) for r in rows]


def _in_ids(text: str) -> list[int]:
    m = re.search(r"IN \(([\d,]+)\)$", text)
    assert m is not None, text
    return [int(x) for x in m.group(1).split(",")]


def test_same_spec_seed_and_keys_give_byte_identical_statements() -> None:
    s = _spec()

    def texts(seed: int) -> list[str]:
        shard = Shard(s, _keys(), seed)
        return [st.text for _ in range(20) for st in shard.build()]

    first = texts(7)
    assert len(first) > 40
    assert first == texts(7)
    assert first != texts(8)


def test_inserted_keys_are_the_shards_consecutive_and_never_reused() -> None:
    s = _spec()
    seen: dict[int, set[tuple[str, int]]] = {0: set(), 1: set()}
    for index in (0, 1):
        shard = Shard(s, _keys(index, 2), seed=3)
        next_k = dict(SEEDED)
        for _ in range(30):
            for st in shard.build():
                if st.kind != "insert":
                    continue
                assert st.first_k == next_k[st.table]
                next_k[st.table] += st.rows
                ks = range(st.first_k, st.first_k + st.rows)
                want = [FIRST[st.table] + index + k * 2 for k in ks]
                assert _row_keys(st.text) == want
                assert not seen[index] & {(st.table, key) for key in want}
                seen[index] |= {(st.table, key) for key in want}
        assert next_k["payments"] > SEEDED["payments"] + 50
    assert seen[0] and seen[1] and not seen[0] & seen[1]


def test_updates_pick_distinct_live_keys_and_stamp_the_version_column() -> None:
    shard = Shard(_spec(), _keys(seeded={"accounts": 20, "payments": 8}), seed=5)
    gone: dict[str, set[int]] = {"accounts": set(), "payments": set()}
    updates = 0
    for batch in range(60):
        for i, st in enumerate(shard.build()):
            stamp = batch * 64 + i
            assert st.stamp == stamp
            ks = st.key_indices
            if st.kind == "update":
                updates += 1
                assert len(set(ks)) == len(ks) == st.rows > 0
                assert not set(ks) & gone[st.table], (batch, st.text)
                assert f" SET v = {stamp}, " in st.text
                t = shard.spec.table(st.table)
                assert _in_ids(st.text) == [FIRST[st.table] + k for k in ks]
                assert st.text.startswith(f"UPDATE {t.name} SET ")
            elif st.kind == "delete":
                gone[st.table] |= set(ks)
    assert updates > 50 and len(gone["payments"]) > 20


def test_unreferenced_deletes_leave_referenced_rows_and_deleted_keys_are_gone() -> None:
    shard = Shard(_spec(), _keys(seeded={"accounts": 300, "payments": 40}), seed=11)
    deleted: set[int] = set()
    for _ in range(80):
        for st in shard.build():
            if st.kind == "delete":
                ti = 0 if st.table == "accounts" else 1
                assert set(st.key_indices) <= shard.pool.gone[ti]
                assert st.text.startswith(f"DELETE FROM {st.table} WHERE ")
                if st.table == "accounts":
                    deleted |= set(st.key_indices)
    referenced = shard.pool.referenced[0]
    assert len(referenced) > 50 and len(deleted) > 50
    assert not deleted & referenced
    assert shard.pool.gone[0] == deleted


def test_a_transaction_pairs_each_child_row_with_its_parent_in_the_same_commit() -> None:
    ops = [
        {"name": "open_account", "kind": "transaction", "weight": 1,
         "steps": ["insert_account", "insert_first_payment"]},
        {"name": "insert_account", "kind": "insert", "table": "accounts", "weight": 0},
        {"name": "insert_first_payment", "kind": "insert", "table": "payments", "weight": 0,
         "parent": "latest"},
    ]  # fmt: skip
    shard = Shard(_spec(*ops), _keys(1, 3), seed=2)
    for _ in range(5):
        acc, pay = shard.build(10)
        assert (acc.table, pay.table) == ("accounts", "payments")
        assert acc.rows == pay.rows == 5
        assert _row_values(pay.text, 2) == _row_keys(acc.text)  # key, version, account_id


def test_transactions_pair_parents_in_a_mixed_spec_too() -> None:
    shard = Shard(_spec(), _keys(), seed=4)
    pairs = 0
    for _ in range(50):
        stmts = shard.build(20)
        ops = [st.op for st in stmts]
        if "insert_account" in ops:
            acc = stmts[ops.index("insert_account")]
            pay = stmts[ops.index("insert_first_payment")]
            assert _row_values(pay.text, 2) == _row_keys(acc.text)
            pairs += acc.rows
    assert pairs >= 10


def test_the_carry_keeps_the_rows_exact_over_many_batches() -> None:
    ops = [
        {"name": "pair", "kind": "insert", "table": "accounts", "weight": 1, "rows": 2},
        {"name": "single", "kind": "insert", "table": "payments", "weight": 1},
    ]
    shard = Shard(_spec(*ops), _keys(), seed=1)
    total, carries = 0, set()
    for _ in range(200):
        total += sum(st.rows for st in shard.build(10))
        carries.add(shard.cursor.carry)
    assert abs(total - 2000) <= 2
    assert carries == {0, 1}  # batches did overshoot, and the next one paid it back


def _draws(choice: KeyChoice, count: int = 1000, n: int = 4000) -> Counter[int]:
    rng = random.Random(9)
    out: Counter[int] = Counter()
    for _ in range(n):
        out.update(pick_keys(rng, choice, count, 1, set(), None))
    return out


def test_zipfian_picks_the_oldest_key_far_more_than_a_middle_one() -> None:
    c = _draws(KeyChoice("zipfian", 0.99))
    assert c[0] > 250 and c[500] < 15
    assert c[0] > c[1] > c[10]


def test_latest_prefers_the_newest_keys() -> None:
    c = _draws(KeyChoice("latest", 0.99))
    assert c[999] > 250 and c[0] < 15 and c[500] < 15
    assert c[999] > c[998] > c[989]


def test_hotset_gives_the_hot_fraction_about_hot_ops_of_the_picks() -> None:
    c = _draws(KeyChoice("hotset", hot_keys=0.1, hot_ops=0.8))
    hot = sum(n for k, n in c.items() if k < 100)
    assert 0.76 < hot / 4000 < 0.86
    assert max(c) >= 900  # the cold picks spread over all keys


def test_pick_keys_skips_gone_and_avoided_keys_and_settles_for_fewer() -> None:
    rng = random.Random(1)
    ks = pick_keys(rng, KeyChoice(), 10, 5, {0, 1, 2, 3}, {4, 5})
    assert sorted(ks) == [6, 7, 8, 9]
    assert pick_keys(rng, KeyChoice(), 0, 3, set(), None) == []
    ks = pick_keys(rng, KeyChoice(), 100, 30, set(), None)
    assert len(set(ks)) == 30 and all(0 <= k < 100 for k in ks)


def _stmt(kind: str, table: str, rows: int, ks: tuple[int, ...] = (), **kw: Any) -> Statement:
    return Statement(f"{kind}_{table}", table, kind, "", (), rows, ks, **kw)


def _probe(stmts: list[Statement]) -> CommitProbe | None:
    return GenericBuilder(_spec(), _keys(1, 2), 1).commit_probe(stmts)


def test_commit_probe_of_an_insert_counts_its_new_keys() -> None:
    upd = _stmt("update", "accounts", 1, (3,), stamp=64)
    ins = _stmt("insert", "payments", 3, first_k=40, stamp=65)
    probe = _probe([upd, ins])
    assert probe == CommitProbe(
        "SELECT COUNT(*) FROM payments WHERE payment_id IN (?,?,?)", (1081, 1083, 1085), 3, 0
    )


def test_commit_probe_of_an_update_looks_for_its_version_stamp() -> None:
    probe = _probe([_stmt("update", "accounts", 2, (3, 5), stamp=70)])
    assert probe is not None and probe.params == (8, 12) and probe.expect == 2
    assert probe.sql.endswith("WHERE account_id IN (?,?) AND v = 70")
    assert probe.absent == 0


def test_commit_probe_of_a_delete_expects_the_rows_gone() -> None:
    probe = _probe([_stmt("delete", "payments", 2, (0, 9), stamp=64)])
    assert probe is not None and probe.params == (1001, 1019)
    assert (probe.expect, probe.absent) == (0, 2)
    assert _probe([]) is None


def test_journal_round_trip_of_a_spec_transaction() -> None:
    keys = _keys()
    shard = Shard(_spec(), keys, seed=6)
    for _ in range(5):
        shard.build(20)
    stmts = shard.build(30)
    kinds = {st.kind for st in stmts}
    assert kinds == {"insert", "update", "delete"}
    line = journal.intent_line(shard.batch - 1, "tok.0.5", stmts)
    ack = b'{"a":%d,"r":[%s]}' % (shard.batch - 1, ",".join(str(st.rows) for st in stmts).encode())
    rep = journal.replay([line, ack])
    want: dict[str, dict[str, int]] = {}
    for st in stmts:
        want.setdefault(st.table, {}).setdefault(st.kind, 0)
        want[st.table][st.kind] += st.rows
    assert rep.changes == want
    deletes: dict[str, list[int]] = {}
    for st in stmts:
        if st.kind == "delete":
            deletes.setdefault(st.table, []).extend(st.key_indices)
    assert rep.delete_keys == deletes and deletes
    assert rep.pending is None

    rep = journal.replay([line])
    assert rep.pending is not None and rep.changes == {}
    back = journal.pending_statements(rep.pending, keys)
    assert [(b.op, b.table, b.kind, b.stamp, b.rows) for b in back] == [
        (st.op, st.table, st.kind, st.stamp, st.rows) for st in stmts
    ]
    builder = shard.builder
    assert builder.commit_probe(back) == builder.commit_probe(stmts) is not None
    for kind in ("update", "delete"):  # each kind's probe survives the journal too
        mine = [st for st in stmts if st.kind == kind]
        theirs = [b for b in back if b.kind == kind]
        assert builder.commit_probe(theirs) == builder.commit_probe(mine)


def test_an_insert_never_references_a_deleted_parent_row() -> None:
    """With one live account far back (out of the bounded search's reach), an insert
    either finds it or holds no row: it never names a deleted parent (the foreign key
    would refuse it)."""
    ops = [{"name": "insert_payment", "kind": "insert", "table": "payments", "weight": 1}]
    shard = Shard(_spec(*ops), _keys(seeded={"accounts": 3000, "payments": 0}), seed=1)
    shard.pool.gone[0] = set(range(3000)) - {10}  # one live account, old and far back
    stmts = shard.build(1)
    refs = [v for st in stmts for v in _row_values(st.text, 2)]
    assert refs in ([], [FIRST["accounts"] + 10])
    shard.pool.gone[0] = set(range(3000)) - {2990}  # one live account, near the newest
    (st,) = shard.build(1)
    assert _row_values(st.text, 2) == [FIRST["accounts"] + 2990]


def test_generated_decimals_fit_their_column() -> None:
    doc = {
        "tables": [
            {"name": "t", "columns": [
                {"name": "a", "type": "DECIMAL(5,2)",
                 "gen": {"kind": "decimal", "min": 999, "max": 999.999}},
            ]},
        ],
        "operations": [{"name": "i", "kind": "insert", "table": "t", "rows": 500}],
    }  # fmt: skip
    try:
        s = spec.parse("t", doc)
    except spec.SpecError:
        return  # refusing a range that rounds past the column is a fix too
    keys = KeySpace(1, 1, 0, 1, 0, 0, spec_tables=(("t", 1, 0),))
    shard = Shard(s, keys, seed=1)
    rows = [r for st in shard.build(2000) for r in st.text.split(" VALUES (")[1][:-1].split("),(")]
    values = [float(r.split(",")[1]) for r in rows]
    assert len(values) == 2000
    assert max(values) <= 999.99
