"""server_watch.per_second (heartbeats removed, gaps and counter resets), and the updated
keys a shard reports for the ledger (``Counters`` / ``ShardLoop`` with a fake executor)."""

from __future__ import annotations

import struct
import sys
from array import array

from loadengine.core.clock import FakeClock
from loadengine.core.messages import ShardDelta, ShardMessage
from loadengine.core.plan import RunPlan, ShardPlan, shard_plans
from loadengine.core.schedule import NS_PER_S
from loadengine.core.workload import CommitProbe, Statement
from loadengine.server.database import DatabaseError
from loadengine.server.watch import WatchState, per_second
from loadengine.shard.loop import Counters, ShardLoop, le_bytes

# --- per_second -------------------------------------------------------------------------------


def watch(*samples: tuple[int, dict[str, int], int]) -> WatchState:
    return WatchState(source="global_status", samples=list(samples))


def test_per_second_subtracts_heartbeat_writes_between_samples() -> None:
    state = watch(
        (0, {"inserted": 100, "updated": 50}, 0),
        (1, {"inserted": 600, "updated": 560}, 10),
        (2, {"inserted": 1100, "updated": 1066}, 16),
        (3, {"inserted": 1100, "updated": 1066}, 16),
    )
    # second 0: 1010 changes, 10 of them heartbeats; second 1: 1006, 6 heartbeats
    assert per_second(state) == {0: 1000, 1: 1000, 2: 0}


def test_per_second_with_only_heartbeats_is_zero() -> None:
    state = watch((0, {"updated": 7}, 3), (1, {"updated": 17}, 13), (2, {"updated": 27}, 23))
    assert per_second(state) == {0: 0, 1: 0}


def test_per_second_of_fewer_than_two_samples_is_empty() -> None:
    assert per_second(watch()) == {}
    assert per_second(watch((0, {"updated": 1}, 0))) == {}


def test_per_second_over_a_gap_keeps_the_total_and_leaves_the_lost_second_unknown() -> None:
    # the sample at second 2 failed (server away): the 1 -> 3 interval spans two seconds
    state = watch(
        (0, {"updated": 0}, 0),
        (1, {"updated": 510}, 10),
        (3, {"updated": 1530}, 30),
        (4, {"updated": 2040}, 40),
    )
    out = per_second(state)
    assert out.get(2) is None
    assert out == {0: 500, 1: 1000, 3: 500}
    assert sum(n for n in out.values() if n is not None) == 2040 - 40


def test_per_second_marks_a_counter_reset_unknown_and_goes_on() -> None:
    state = watch(
        (0, {"inserted": 1000, "updated": 1000}, 0),
        (1, {"inserted": 1500, "updated": 1500}, 5),
        (2, {"inserted": 40, "updated": 2000}, 8),  # restart: inserted went down
        (3, {"inserted": 540, "updated": 2003}, 11),
    )
    assert per_second(state) == {0: 995, 1: None, 2: 500}


def test_per_second_counts_a_counter_that_appears_later() -> None:
    state = watch((0, {"updated": 10}, 0), (1, {"updated": 20, "deleted": 5}, 2))
    assert per_second(state) == {0: 13}


# --- Counters: updated keys as little-endian uint32 -------------------------------------------


def stmt(table: str, kind: str, rows: int, keys: tuple[int, ...] = ()) -> Statement:
    return Statement(f"{kind}_{table}", table, kind, "", (), rows, keys)


def decode(raw: bytes) -> list[int]:
    a = array("I")
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


def test_counters_collect_update_key_indices_per_table_and_reset_on_take() -> None:
    c = Counters()
    c.add_commit(
        [
            stmt("customers", "insert", 2),
            stmt("customers", "update", 3, (4, 70_000, 2**32 - 1)),
            stmt("orders", "update", 1, (9,)),
        ],
        [2, 3, 1],
    )
    c.add_commit([stmt("customers", "update", 2, (4, 5))], [2])
    d = c.take(shard=2, second=7, backlog=0)
    assert d.updated_keys == {
        "customers": struct.pack("<5I", 4, 70_000, 2**32 - 1, 4, 5),
        "orders": struct.pack("<I", 9),
    }
    assert decode(d.updated_keys["customers"]) == [4, 70_000, 2**32 - 1, 4, 5]
    assert d.changes == {"customers": {"insert": 2, "update": 5}, "orders": {"update": 1}}
    assert (d.shard, d.second, d.transactions, d.statements) == (2, 7, 2, 4)
    after = c.take(shard=2, second=8, backlog=0)
    assert (after.updated_keys, after.changes, after.transactions) == ({}, {}, 0)


def test_counters_without_updates_send_no_keys() -> None:
    c = Counters()
    c.add_commit([stmt("customers", "insert", 5), stmt("orders", "insert", 1)], [5, 1])
    assert c.take(0, 0, 0).updated_keys == {}


def test_le_bytes_is_little_endian_uint32() -> None:
    assert le_bytes(array("I", [1, 256, 2**32 - 1])) == (
        b"\x01\x00\x00\x00" + b"\x00\x01\x00\x00" + b"\xff\xff\xff\xff"
    )
    assert le_bytes(array("I")) == b""


# --- ShardLoop: committed update keys reach ShardDelta.updated_keys ---------------------------

START_NS = 5 * NS_PER_S
UPDATES_ONLY = (("update_customer", 1), ("update_order", 1))


def plan_for(mix: tuple[tuple[str, int], ...], seconds: int = 2) -> ShardPlan:
    plan = RunPlan(
        steps=((100, seconds),),
        duration_s=seconds,
        warmup_s=0,
        workers=2,
        batch_size=10,
        log_interval_s=1.0,
        mix=mix,
        seed=9,
        on_overload="catch-up",
        dsn=None,
        output=None,
        keep_server=False,
    )
    return shard_plans(plan, "mysql://u@127.0.0.1/db", 1001, 10001, "tok")[1]


class Executor:
    """Acknowledges every transaction except the scripted failures; keeps what committed."""

    def __init__(self, failures: dict[int, DatabaseError]) -> None:
        self.failures = failures
        self.calls = 0
        self.acked: list[Statement] = []
        self.failed: list[Statement] = []

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        self.calls += 1
        if self.calls in self.failures:
            self.failed.extend(stmts)
            raise self.failures[self.calls]
        self.acked.extend(stmts)
        return [s.rows for s in stmts]

    def reconnect(self) -> None:
        raise AssertionError("not scripted")

    def committed(self, probe: CommitProbe) -> bool:
        raise AssertionError("not scripted")


def run(plan: ShardPlan, ex: Executor) -> list[ShardDelta]:
    sent: list[ShardMessage] = []
    ShardLoop(plan, ex, sent.append, lambda: False, FakeClock(start_ns=START_NS)).run(START_NS)
    return [m for m in sent if isinstance(m, ShardDelta)]


def reported_keys(deltas: list[ShardDelta]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for d in deltas:
        for table, raw in d.updated_keys.items():
            out.setdefault(table, []).extend(decode(raw))
    return out


def keys_of(stmts: list[Statement]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in stmts:
        if s.kind == "update":
            out.setdefault(s.table, []).extend(s.key_indices)
    return out


def test_committed_update_key_indices_come_out_in_the_deltas() -> None:
    plan = plan_for(UPDATES_ONLY)
    ex = Executor({})
    deltas = run(plan, ex)
    got = reported_keys(deltas)
    assert got == keys_of(ex.acked)
    assert {t: len(ks) for t, ks in got.items()} == {"customers": 50, "orders": 50}
    seeded = plan.keys.seeded_customers
    assert all(0 <= k < seeded for ks in got.values() for k in ks)
    for d in deltas:  # per second, the keys match that second's update counts
        assert {t: len(decode(raw)) for t, raw in d.updated_keys.items()} == {
            t: kinds["update"] for t, kinds in d.changes.items()
        }


def test_inserts_report_no_keys_but_updates_do() -> None:
    plan = plan_for((("insert_customer", 1), ("update_customer", 1)), seconds=1)
    ex = Executor({})
    deltas = run(plan, ex)
    assert reported_keys(deltas) == {"customers": keys_of(ex.acked)["customers"]}
    assert sum(d.changes["customers"]["insert"] for d in deltas) == 25
    assert len(reported_keys(deltas)["customers"]) == 25


def test_failed_transactions_add_no_keys() -> None:
    ex = Executor(
        {
            2: DatabaseError("duplicate_key", "1062"),  # fails for good
            7: DatabaseError("deadlock", "1213"),  # retried, then commits once
        }
    )
    deltas = run(plan_for(UPDATES_ONLY), ex)
    got = reported_keys(deltas)
    assert got == keys_of(ex.acked)
    assert {t: len(ks) for t, ks in got.items()} == {"customers": 45, "orders": 45}
    failed = keys_of(ex.failed)
    assert {t: len(ks) for t, ks in failed.items()} == {"customers": 10, "orders": 10}
    changes = {t: sum(d.changes.get(t, {}).get("update", 0) for d in deltas) for t in got}
    assert changes == {"customers": 45, "orders": 45}
    assert sum(d.faults.get("failed_changes", 0) for d in deltas) == 10
