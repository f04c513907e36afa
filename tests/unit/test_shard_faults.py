"""ShardLoop under faults, on a fake clock with a scripted executor: retries, in-doubt
commits resolved by probing, failures never counted, and the write-ahead journal."""

from __future__ import annotations

from pathlib import Path

from loadengine import journal
from loadengine.clock import FakeClock
from loadengine.database import DatabaseError
from loadengine.messages import ShardDelta, ShardMessage
from loadengine.schedule import NS_PER_S
from loadengine.shard import ShardLoop
from loadengine.workload import CommitProbe, Statement
from tests.unit.test_shard_loop import shard_plan

START_NS = 5 * NS_PER_S


class ScriptedExecutor:
    """Fails the n-th transaction call as scripted; ``committed`` answers probes."""

    def __init__(self, failures: dict[int, DatabaseError], probe_answer: bool = False) -> None:
        self.failures, self.probe_answer = failures, probe_answer
        self.calls = 0
        self.committed_calls: list[CommitProbe] = []
        self.reconnects = 0

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        self.calls += 1
        if self.calls in self.failures:
            raise self.failures[self.calls]
        return [s.rows for s in stmts]

    def reconnect(self) -> None:
        self.reconnects += 1

    def committed(self, probe: CommitProbe) -> bool:
        self.committed_calls.append(probe)
        return self.probe_answer


def _run(executor: ScriptedExecutor, tmp_path: Path | None = None) -> dict:
    plan = shard_plan(((100, 2),), batch_size=10)
    clock = FakeClock(start_ns=START_NS)
    sent: list[ShardMessage] = []
    jr = journal.Journal(str(tmp_path / "j.jsonl")) if tmp_path else None
    ShardLoop(plan, executor, sent.append, lambda: False, clock, jr).run(START_NS)
    deltas = [m for m in sent if isinstance(m, ShardDelta)]
    totals = {"changes": 0, "errors": {}, "faults": {}, "reconnects": 0}
    for d in deltas:
        totals["changes"] += sum(n for k in d.changes.values() for n in k.values())
        totals["reconnects"] += d.reconnects
        for src, dst in ((d.errors, totals["errors"]), (d.faults, totals["faults"])):
            for k, v in src.items():
                dst[k] = dst.get(k, 0) + v
    return totals


def test_deadlock_is_retried_and_counted_once() -> None:
    ex = ScriptedExecutor({3: DatabaseError("deadlock", "1213"), 4: DatabaseError("deadlock", "x")})
    t = _run(ex)
    assert t["changes"] == 200  # every planned change, once
    assert t["errors"] == {"deadlock": 2} and t["faults"] == {"retries": 2}


def test_duplicate_key_fails_at_once_and_is_not_counted() -> None:
    t = _run(ScriptedExecutor({2: DatabaseError("duplicate_key", "1062")}))
    assert t["changes"] == 190
    assert t["faults"] == {"failed_changes": 10} and t["errors"] == {"duplicate_key": 1}


def test_retries_run_out() -> None:
    fails = {n: DatabaseError("lock_wait_timeout", "1205") for n in range(2, 6)}
    t = _run(ScriptedExecutor(fails))  # first try + 3 retries all fail
    assert t["changes"] == 190 and t["faults"]["failed_changes"] == 10
    assert t["faults"]["retries"] == 3


def test_lost_connection_before_commit_reconnects_and_retries() -> None:
    ex = ScriptedExecutor({2: DatabaseError("connection_lost", "2013", in_commit=False)})
    t = _run(ex)
    assert t["changes"] == 200 and t["reconnects"] == 1 and ex.committed_calls == []


def test_in_doubt_commit_that_happened_is_counted_not_retried() -> None:
    ex = ScriptedExecutor(
        {2: DatabaseError("connection_lost", "2013", in_commit=True)}, probe_answer=True
    )
    t = _run(ex)
    assert t["changes"] == 200 and len(ex.committed_calls) == 1
    assert t["faults"] == {"ambiguous_committed": 1}
    assert ex.calls == 20  # the in-doubt batch was not sent again


def test_in_doubt_commit_that_did_not_happen_is_retried() -> None:
    ex = ScriptedExecutor(
        {2: DatabaseError("connection_lost", "2013", in_commit=True)}, probe_answer=False
    )
    t = _run(ex)
    assert t["changes"] == 200 and ex.calls == 21
    assert t["faults"] == {"ambiguous_rolled_back": 1, "retries": 1}


def test_journal_replays_to_exactly_what_was_counted(tmp_path: Path) -> None:
    ex = ScriptedExecutor(
        {2: DatabaseError("duplicate_key", "1062"), 5: DatabaseError("deadlock", "1213")}
    )
    t = _run(ex, tmp_path)
    rep = journal.read([str(tmp_path / "j.jsonl")])
    assert sum(n for k in rep.changes.values() for n in k.values()) == t["changes"] == 190
    assert rep.pending is None  # failed batches' intents were superseded, never counted
    ups = sum(k.get("update", 0) for k in rep.changes.values())
    assert ups > 0 and ups == sum(len(v) for v in rep.update_keys.values())


class KeyRecordingExecutor(ScriptedExecutor):
    """Also records the first inserted customer key of every call."""

    def __init__(self, failures: dict[int, DatabaseError]) -> None:
        super().__init__(failures)
        self.first_keys: list[int] = []

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        self.first_keys.append(next(s.first_k for s in stmts if s.op == "insert_customer"))
        return super().run_transaction(stmts)


def test_a_batch_given_up_discards_what_was_built_after_it() -> None:
    """Batches are built ahead assuming the ones before commit; after a failure the next
    batch takes the failed one's keys again (no gap, so updates only pick real rows)."""
    ex = KeyRecordingExecutor({2: DatabaseError("duplicate_key", "1062")})
    t = _run(ex)
    k = ex.first_keys[0]  # after the seeded customers; 2 new ones per batch of 10 (20 %)
    assert ex.first_keys[:4] == [k, k + 2, k + 2, k + 4]
    assert t["changes"] == 190 and t["faults"] == {"failed_changes": 10}
