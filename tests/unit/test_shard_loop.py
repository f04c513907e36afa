"""loadengine.shard.loop.ShardLoop pacing on a FakeClock, with an executor that only records.

No database: ``RecordingExecutor`` acknowledges every statement with its intended row
count and notes the fake time of each call; a slow server is simulated by advancing the
fake clock inside the call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from loadengine.core import histogram
from loadengine.core.clock import FakeClock
from loadengine.core.messages import ShardDelta, ShardDone, ShardMessage
from loadengine.core.plan import DEFAULT_MIX, RunPlan, ShardPlan, shard_plans
from loadengine.core.schedule import NS_PER_S, Schedule
from loadengine.core.workload import Statement
from loadengine.shard import journal
from loadengine.shard.loop import ShardLoop

MS = 1_000_000
START_NS = 5 * NS_PER_S
PER_SECOND_MIX = {"customers": {"insert": 20, "update": 20}, "orders": {"insert": 30, "update": 30}}


class RecordingExecutor:
    """Returns ``[stmt.rows for stmt in stmts]``; records (fake time, rows) per call."""

    def __init__(self, clock: FakeClock, delay_ns: int = 0) -> None:
        self.clock = clock
        self.delay_ns = delay_ns
        self.calls: list[tuple[int, int]] = []

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        self.calls.append((self.clock.now_ns(), sum(s.rows for s in stmts)))
        self.clock.sleep_ns(self.delay_ns)
        return [stmt.rows for stmt in stmts]

    def reconnect(self) -> None:
        raise AssertionError("a recording executor never loses its connection")

    @property
    def offsets_ms(self) -> list[float]:
        return [(t - START_NS) / MS for t, _ in self.calls]

    @property
    def rows(self) -> list[int]:
        return [n for _, n in self.calls]


def shard_plan(
    steps: tuple[tuple[int, int], ...],
    *,
    batch_size: int = 10,
    policy: str = "catch-up",
    workers: int = 1,
    warmup_s: int = 0,
    duration_s: int | None = None,
    index: int = 0,
) -> ShardPlan:
    plan = RunPlan(
        steps=steps,
        duration_s=sum(d for _, d in steps) if duration_s is None else duration_s,
        warmup_s=warmup_s,
        workers=workers,
        batch_size=batch_size,
        log_interval_s=1.0,
        mix=DEFAULT_MIX,
        seed=3,
        on_overload=policy,
        dsn=None,
        output=None,
        keep_server=False,
    )
    return shard_plans(plan, "mysql://u@127.0.0.1/db", 1001, 10001, "tok")[index]


def run_loop(
    plan: ShardPlan,
    *,
    delay_ns: int = 0,
    clock_start_ns: int = START_NS,
    stop: Callable[[RecordingExecutor], bool] = lambda _ex: False,
) -> tuple[RecordingExecutor, list[ShardDelta], ShardDone]:
    clock = FakeClock(start_ns=clock_start_ns)
    executor = RecordingExecutor(clock, delay_ns)
    sent: list[ShardMessage] = []
    ShardLoop(plan, executor, sent.append, lambda: stop(executor), clock).run(START_NS)
    assert isinstance(sent[-1], ShardDone)
    assert sum(isinstance(m, ShardDone) for m in sent) == 1
    deltas = [m for m in sent if isinstance(m, ShardDelta)]
    assert len(deltas) == len(sent) - 1
    return executor, deltas, sent[-1]


def change_counts(deltas: list[ShardDelta]) -> list[int]:
    return [sum(n for kinds in d.changes.values() for n in kinds.values()) for d in deltas]


# --- on time ------------------------------------------------------------------------------


def test_batches_are_sent_at_their_absolute_intended_times() -> None:
    ex, _, _ = run_loop(shard_plan(((100, 3),)))
    assert ex.offsets_ms == [100.0 * k for k in range(30)]
    assert ex.rows == [10] * 30


def test_shard_waits_for_the_common_start() -> None:
    ex, _, _ = run_loop(shard_plan(((100, 1),)), clock_start_ns=START_NS - 730 * MS)
    assert ex.offsets_ms == [100.0 * k for k in range(10)]


def test_batches_for_a_rate_that_does_not_divide_a_second() -> None:
    ex, deltas, done = run_loop(shard_plan(((7, 2),), batch_size=3))
    assert [t - START_NS for t, _ in ex.calls] == [
        0,
        428_571_428,
        857_142_857,
        1_285_714_285,
        1_714_285_714,
    ]
    assert ex.rows == [3, 3, 3, 3, 2]
    assert change_counts(deltas) == [9, 5]
    assert done == ShardDone(0, stopped_early=False, unsent_changes=0)


def test_every_second_carries_exactly_the_rate() -> None:
    _, deltas, done = run_loop(shard_plan(((100, 3),)))
    assert [d.second for d in deltas] == [0, 1, 2]
    assert all(d.shard == 0 for d in deltas)
    assert [d.changes for d in deltas] == [PER_SECOND_MIX] * 3
    assert [d.transactions for d in deltas] == [10, 10, 10]
    assert [d.statements for d in deltas] == [40, 40, 40]
    assert [d.late_batches for d in deltas] == [0, 0, 0]
    assert [d.missed_changes for d in deltas] == [0, 0, 0]
    assert [d.backlog_changes for d in deltas] == [0, 0, 0]
    assert [d.errors for d in deltas] == [{}, {}, {}]
    assert [d.reconnects for d in deltas] == [0, 0, 0]
    # an instant executor: latency and service time 0, i.e. bucket 0, once per batch
    assert [d.latency_us for d in deltas] == [{0: 10}] * 3
    assert [d.service_us for d in deltas] == [{0: 10}] * 3
    assert done == ShardDone(0, stopped_early=False, unsent_changes=0)


def test_ramp_shard_with_warmup_follows_each_step() -> None:
    # plan: 30 CPS warmup 1 s, then 30 CPS for 1 s, then 60 CPS for 1 s, over 3 shards
    plan = shard_plan(((30, 1), (60, 1)), batch_size=5, workers=3, warmup_s=1, index=1)
    assert plan.steps == ((10, 1), (10, 1), (20, 1))
    ex, deltas, done = run_loop(plan)
    # shard 1 of 3 is staggered by a third of its batch interval (500 ms, then 250 ms)
    expected = [0, 500, 1000, 1500, 2000, 2250, 2500, 2750]
    shifts = [500 / 3] * 4 + [250 / 3] * 4
    assert ex.offsets_ms == pytest.approx([e + d for e, d in zip(expected, shifts, strict=True)])
    assert ex.rows == [5] * 8
    assert change_counts(deltas) == [10, 10, 20]
    assert done == ShardDone(1, stopped_early=False, unsent_changes=0)


def test_all_shards_together_send_the_plan_rate_every_second() -> None:
    totals = [0, 0]
    for index in range(3):
        # shares 34/33/33; batch 1 so that no batch straddles a second boundary
        plan = shard_plan(((100, 2),), batch_size=1, workers=3, index=index)
        _, deltas, done = run_loop(plan)
        assert done.unsent_changes == 0
        for d in deltas:
            totals[d.second] += change_counts([d])[0]
    assert totals == [100, 100]


def test_slow_but_sufficient_executor_is_never_late() -> None:
    ex, deltas, done = run_loop(shard_plan(((100, 2),)), delay_ns=60 * MS)
    assert ex.offsets_ms == [100.0 * k for k in range(20)]
    assert [d.late_batches for d in deltas] == [0, 0]
    assert [d.backlog_changes for d in deltas] == [0, 0]
    assert done.unsent_changes == 0


# --- overload -----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["catch-up", "abort"])
def test_catch_up_sends_every_batch_late_and_reports_backlog(policy: str) -> None:
    # 100 ms per batch of work, but each call takes 150 ms: sent back to back, late
    ex, deltas, done = run_loop(shard_plan(((100, 3),), policy=policy), delay_ns=150 * MS)
    assert ex.offsets_ms == [150.0 * k for k in range(20)]
    assert ex.rows == [10] * 20
    assert change_counts(deltas) == [70, 70, 60]
    assert [d.late_batches for d in deltas] == [6, 7, 6]
    assert [d.backlog_changes for d in deltas] == [30, 60, 100]
    assert [d.missed_changes for d in deltas] == [0, 0, 0]
    assert all(d.backlog_changes > 0 and d.late_batches > 0 for d in deltas)
    assert done == ShardDone(0, stopped_early=False, unsent_changes=100)
    assert sum(ex.rows) + done.unsent_changes == 300


def test_drop_skips_passed_batches_and_counts_them_as_missed() -> None:
    plan = shard_plan(((100, 3),), policy="drop")
    ex, deltas, done = run_loop(plan, delay_ns=150 * MS)
    assert ex.offsets_ms == [150.0 * k for k in range(20)]
    assert change_counts(deltas) == [70, 70, 60]
    assert [d.missed_changes for d in deltas] == [30, 30, 30]
    assert [d.late_batches for d in deltas] == [3, 4, 3]
    assert [d.backlog_changes for d in deltas] == [0, 0, 10]
    assert done == ShardDone(0, stopped_early=False, unsent_changes=10)
    missed = sum(d.missed_changes for d in deltas)
    assert sum(ex.rows) + missed + done.unsent_changes == Schedule(plan.steps, 10).total_changes


@pytest.mark.parametrize("delay_ms", [101, 150, 333, 999, 1300])
def test_drop_never_sends_more_than_the_schedule(delay_ms: int) -> None:
    plan = shard_plan(((100, 3),), policy="drop", batch_size=7)
    ex, deltas, done = run_loop(plan, delay_ns=delay_ms * MS)
    schedule = Schedule(plan.steps, plan.batch_size)
    missed = sum(d.missed_changes for d in deltas)
    assert missed > 0
    assert sum(ex.rows) <= schedule.total_changes
    assert len(ex.calls) <= schedule.batch_count
    assert sum(ex.rows) + missed + done.unsent_changes == schedule.total_changes
    assert_never_early(deltas, delay_ms)


def assert_never_early(deltas: list[ShardDelta], delay_ms: int) -> None:
    """Latency (from the intended time) >= service time (from the send) for every batch."""
    service_bucket = histogram.bucket_of_us(delay_ms * 1000)
    for d in deltas:
        assert set(d.service_us) <= {service_bucket}
        assert all(b >= service_bucket for b in d.latency_us), d.latency_us


def test_drop_never_sends_early_around_a_rate_zero_step() -> None:
    plan = shard_plan(((10, 1), (0, 1), (10, 1)), policy="drop", batch_size=4)
    ex, deltas, _ = run_loop(plan, delay_ns=550 * MS)
    assert_never_early(deltas, 550)
    # batch 2 (due 0.8 s) goes out late at 1.1 s; batch 3 waits for its time, 2.0 s
    assert ex.offsets_ms == [0, 550, 1100, 2000, 2550]
    assert [d.missed_changes for d in deltas] == [0, 0, 0]


# --- stopping -----------------------------------------------------------------------------


def test_stop_ends_the_loop_with_stopped_early() -> None:
    ex, deltas, done = run_loop(shard_plan(((100, 3),)), stop=lambda e: len(e.calls) >= 5)
    assert ex.offsets_ms == [0, 100, 200, 300, 400]
    assert [d.second for d in deltas] == [0]  # the partial second is still reported
    assert change_counts(deltas) == [50]
    assert done == ShardDone(0, stopped_early=True, unsent_changes=250)


def test_stop_after_a_few_seconds_reports_the_partial_second() -> None:
    ex, deltas, done = run_loop(shard_plan(((100, 3),)), stop=lambda e: len(e.calls) >= 15)
    assert len(ex.calls) == 15
    assert [d.second for d in deltas] == [0, 1]
    assert change_counts(deltas) == [100, 50]
    assert done == ShardDone(0, stopped_early=True, unsent_changes=150)


def test_stop_before_the_start_sends_nothing() -> None:
    ex, deltas, done = run_loop(shard_plan(((100, 3),)), stop=lambda _e: True)
    assert ex.calls == []
    assert change_counts(deltas) == [0]
    assert done == ShardDone(0, stopped_early=True, unsent_changes=300)


# --- unthrottled ----------------------------------------------------------------------------


def test_unthrottled_sends_back_to_back_until_the_end() -> None:
    plan = shard_plan((), duration_s=2, batch_size=4)
    ex, deltas, done = run_loop(plan, delay_ns=250 * MS)
    assert ex.offsets_ms == [250.0 * k for k in range(8)]
    assert ex.rows == [4] * 8
    assert change_counts(deltas) == [16, 16]
    assert [d.backlog_changes for d in deltas] == [0, 0]
    assert done == ShardDone(0, stopped_early=False, unsent_changes=0)


def test_unthrottled_waits_for_the_common_start_too() -> None:
    """Found sending 300 ms early (every ``max`` rate overstated): not one batch before it."""
    plan = shard_plan((), duration_s=1, batch_size=4)
    ex, deltas, _ = run_loop(plan, delay_ns=250 * MS, clock_start_ns=START_NS - 300 * MS)
    assert ex.offsets_ms == [0.0, 250.0, 500.0, 750.0]
    assert change_counts(deltas) == [16]


# --- built ahead ----------------------------------------------------------------------------


class CountingJournal(journal.Journal):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writes: list[int] = []

    def intents(self, txns: Iterable[tuple[int, str, list[Statement]]]) -> None:
        listed = list(txns)
        self.writes.append(len(listed))
        super().intents(listed)


@pytest.mark.parametrize(("steps", "burst"), [((), 32), (((100, 2),), 1)])
def test_small_batches_are_built_ahead_only_when_back_to_back(
    tmp_path: Path, steps: tuple[tuple[int, int], ...], burst: int
) -> None:
    """Unthrottled: 32 single-row transactions per build and journal write, in order and
    in the exact mix. Paced and on time: one at a time (nothing unsent is journaled)."""
    plan = shard_plan(steps, batch_size=1, duration_s=2)
    jr = CountingJournal(str(tmp_path / "j.jsonl"))
    clock = FakeClock(start_ns=START_NS)
    sent: list[ShardMessage] = []
    ShardLoop(plan, RecordingExecutor(clock, 10 * MS), sent.append, lambda: False, clock, jr).run(
        START_NS
    )
    assert max(jr.writes) == burst
    deltas = [m for m in sent if isinstance(m, ShardDelta)]
    assert change_counts(deltas) == [100, 100]
    assert [d.changes for d in deltas] == [PER_SECOND_MIX, PER_SECOND_MIX]
    rep = journal.read([str(tmp_path / "j.jsonl")])
    assert rep.changes == {
        "customers": {"insert": 40, "update": 40},
        "orders": {"insert": 60, "update": 60},
    }


class OversleepingClock(FakeClock):
    """Every sleep lasts 2 ms longer than asked, like a loaded machine's."""

    def sleep_ns(self, duration_ns: int) -> None:
        super().sleep_ns(duration_ns + 2 * MS)


def test_final_batch_due_in_the_runs_last_moment_is_still_sent() -> None:
    """3,000 CPS over 4 shards in batches of 20 for 5 s: shard 2's phase puts its short
    last batch 1 ns before the run's end. Woken 2 ms late, it used to stop with those 10
    changes unsent (seen in the audit test: 14,980 of 15,000)."""
    plan = shard_plan(((3000, 5),), batch_size=20, workers=4, index=2)
    schedule = Schedule(plan.steps, plan.batch_size, plan.phase)
    assert schedule.offset_ns(schedule.batch_count - 1) == 5 * NS_PER_S - 1
    clock = OversleepingClock(start_ns=START_NS)
    executor = RecordingExecutor(clock)
    sent: list[ShardMessage] = []
    ShardLoop(plan, executor, sent.append, lambda: False, clock).run(START_NS)
    done, deltas = sent[-1], [m for m in sent if isinstance(m, ShardDelta)]
    assert done == ShardDone(2, stopped_early=False, unsent_changes=0)
    assert sum(executor.rows) == 3750 and executor.rows[-1] == 10
    assert [d.second for d in deltas] == [0, 1, 2, 3, 4]
    assert sum(change_counts(deltas)) == 3750


def test_a_shard_behind_at_the_end_still_stops_there() -> None:
    """Only the final batch gets sent after the end; a shard further behind stops."""
    plan = shard_plan(((3000, 5),), batch_size=20, workers=4, index=2)
    _, deltas, done = run_loop(plan, delay_ns=40 * MS)  # 26.7 ms per batch is due
    assert done.unsent_changes > 10
    assert [d.second for d in deltas] == [0, 1, 2, 3, 4]
