"""ShardLoop under faults, on a fake clock with a scripted executor: retries, in-doubt
commits resolved by probing, failures never counted, and the write-ahead journal."""

from __future__ import annotations

from pathlib import Path

from loadengine.core.clock import FakeClock
from loadengine.core.messages import ShardDelta, ShardMessage
from loadengine.core.schedule import NS_PER_S
from loadengine.core.workload import CommitProbe, Statement
from loadengine.server.database import DatabaseError
from loadengine.shard import journal
from loadengine.shard.loop import ShardLoop
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
        self.first_keys: list[int | None] = []

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        keys = (s.first_k for s in stmts if s.op == "insert_customer")
        self.first_keys.append(next(keys, None))
        return super().run_transaction(stmts)


def test_a_batch_given_up_discards_what_was_built_after_it() -> None:
    """Batches are built ahead assuming the ones before commit; after a failure the next
    batch takes the failed one's keys again (no gap, so updates only pick real rows)."""
    ex = KeyRecordingExecutor({2: DatabaseError("duplicate_key", "1062")})
    t = _run(ex)
    k = ex.first_keys[0]  # after the seeded customers; 2 new ones per batch of 10 (20 %)
    assert ex.first_keys[:4] == [k, k + 2, k + 2, k + 4]
    assert t["changes"] == 190 and t["faults"] == {"failed_changes": 10}


class TimedExecutor(KeyRecordingExecutor):
    """Each call takes 10 ms of fake time, so an unthrottled loop advances."""

    def __init__(self, clock: FakeClock, failures: dict[int, DatabaseError], probe: bool) -> None:
        super().__init__(failures)
        self.clock, self.probe_answer = clock, probe

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        self.clock.sleep_ns(10_000_000)
        return super().run_transaction(stmts)


def test_faults_inside_a_burst_are_handled_and_booked_as_one_at_a_time(tmp_path: Path) -> None:
    """Unthrottled single-change transactions are sent in bursts; a duplicate key, a
    deadlock and an in-doubt COMMIT in the middle of one are handled as ever, and the
    per-second counts equal what the journal says was committed."""
    plan = shard_plan((), duration_s=2, batch_size=1)
    clock = FakeClock(start_ns=START_NS)
    failures = {
        5: DatabaseError("duplicate_key", "1062"),
        9: DatabaseError("deadlock", "1213"),
        14: DatabaseError("connection_lost", "2013", in_commit=True),
    }
    ex = TimedExecutor(clock, failures, probe=True)
    sent: list[ShardMessage] = []
    jr = journal.Journal(str(tmp_path / "j.jsonl"))
    loop = ShardLoop(plan, ex, sent.append, lambda: False, clock, jr)
    assert loop.ahead_max == 32
    loop.run(START_NS)
    deltas = [m for m in sent if isinstance(m, ShardDelta)]
    counted = [sum(n for k in d.changes.values() for n in k.values()) for d in deltas]
    faults: dict[str, int] = {}
    for d in deltas:
        for k, v in d.faults.items():
            faults[k] = faults.get(k, 0) + v
    assert faults == {"failed_changes": 1, "retries": 1, "ambiguous_committed": 1}
    assert len(counted) == 2 and all(90 <= c <= 100 for c in counted)
    rep = journal.read([str(tmp_path / "j.jsonl")])
    assert sum(n for k in rep.changes.values() for n in k.values()) == sum(counted)
    customers = [k for k in ex.first_keys if k is not None]
    reused = 1 if ex.first_keys[4] is not None else 0  # call 5 failed for good
    assert len(customers) == len(set(customers)) + reused  # only its key is used again
