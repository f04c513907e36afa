"""loadengine.schedule: absolute batch offsets, batch sizes, due counts and overload policies."""

from __future__ import annotations

import random

import pytest

from loadengine.core.schedule import NS_PER_S, Schedule, next_batch

MS = 1_000_000
S = 1_000_000_000


# --- offsets and batch sizes -------------------------------------------------------------


def test_offsets_are_absolute_and_exact() -> None:
    s = Schedule(((1000, 1),), 10)
    assert s.batch_count == 100
    assert s.total_changes == 1000
    assert s.total_s == 1
    assert [s.offset_ns(k) for k in range(100)] == [k * 10 * MS for k in range(100)]
    assert [s.changes_in(k) for k in range(100)] == [10] * 100


def test_offsets_do_not_drift_over_a_long_run() -> None:
    s = Schedule(((1000, 3600),), 10)
    assert s.batch_count == 360_000
    assert s.offset_ns(359_999) == 3_599_990 * MS
    # a rate that does not divide a second: computed from the index, floored to the ns
    s = Schedule(((3, 100_000),), 1)
    assert s.offset_ns(299_999) == 99_999_666_666_666
    assert s.offset_ns(300_000 - 3) == 99_999 * NS_PER_S


def test_offsets_for_a_rate_that_does_not_divide_a_second() -> None:
    s = Schedule(((7, 2),), 3)
    assert s.total_changes == 14
    assert s.batch_count == 5
    assert [s.offset_ns(k) for k in range(5)] == [
        0,
        428_571_428,
        857_142_857,
        1_285_714_285,
        1_714_285_714,
    ]
    assert [s.changes_in(k) for k in range(5)] == [3, 3, 3, 3, 2]


def test_last_batch_of_each_step_may_be_short() -> None:
    s = Schedule(((25, 1), (10, 1)), 10)
    assert s.batch_count == 4
    assert s.total_changes == 35
    assert [s.changes_in(k) for k in range(4)] == [10, 10, 5, 10]
    assert [s.offset_ns(k) for k in range(4)] == [0, 400 * MS, 800 * MS, 1000 * MS]


@pytest.mark.parametrize("batch", [-1, -100, 4, 5, 1000])
def test_changes_in_outside_the_schedule_is_zero(batch: int) -> None:
    s = Schedule(((25, 1), (10, 1)), 10)
    assert s.changes_in(batch) == 0


def test_ramp_schedule() -> None:
    s = Schedule(((10, 1), (20, 1), (40, 1)), 5)
    assert s.total_changes == 70
    assert s.batch_count == 2 + 4 + 8
    assert s.total_s == 3
    assert [s.offset_ns(k) // MS for k in range(14)] == [
        0,
        500,
        1000,
        1250,
        1500,
        1750,
        2000,
        2125,
        2250,
        2375,
        2500,
        2625,
        2750,
        2875,
    ]
    assert [s.changes_in(k) for k in range(14)] == [5] * 14


def test_step_with_rate_zero_sends_nothing_during_that_step() -> None:
    s = Schedule(((10, 1), (0, 1), (10, 1)), 4)
    assert s.total_changes == 20
    assert s.batch_count == 6
    assert s.total_s == 3
    assert [s.changes_in(k) for k in range(6)] == [4, 4, 2, 4, 4, 2]
    assert [s.offset_ns(k) // MS for k in range(6)] == [0, 400, 800, 2000, 2400, 2800]
    # nothing becomes due while the rate is 0
    assert [s.due_changes(t * MS) for t in (999, 1000, 1500, 1999, 2000)] == [10, 10, 10, 10, 11]


def test_leading_rate_zero_step() -> None:
    s = Schedule(((0, 2), (5, 1)), 5)
    assert s.batch_count == 1
    assert s.offset_ns(0) == 2 * NS_PER_S
    assert s.due_changes(1999 * MS) == 0
    assert s.due_changes(2000 * MS) == 1
    assert s.batch_due_at(500 * MS) == 0


def test_empty_schedule() -> None:
    s = Schedule((), 10)
    assert (s.total_changes, s.batch_count, s.total_s) == (0, 0, 0)
    assert s.due_changes(NS_PER_S) == 0
    assert s.batch_due_at(NS_PER_S) == 0


# --- due_changes and batch_due_at ------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed_ns", "due"),
    [
        (-1, 0),
        (-NS_PER_S, 0),
        (0, 1),
        (999_999, 1),
        (1_000_000, 2),
        (9_999_999, 10),
        (500 * MS, 501),
        (999_999_999, 1000),
        (NS_PER_S, 1000),
        (5 * NS_PER_S, 1000),
    ],
)
def test_due_changes(elapsed_ns: int, due: int) -> None:
    assert Schedule(((1000, 1),), 10).due_changes(elapsed_ns) == due


@pytest.mark.parametrize(
    ("elapsed_ns", "batch"),
    [
        (-1, 0),
        (0, 0),
        (9_999_999, 0),
        (10 * MS, 1),
        (55 * MS, 5),
        (995 * MS, 99),
        (NS_PER_S, 99),
        (10**12, 99),
    ],
)
def test_batch_due_at(elapsed_ns: int, batch: int) -> None:
    assert Schedule(((1000, 1),), 10).batch_due_at(elapsed_ns) == batch


def test_due_counts_across_ramp_steps() -> None:
    s = Schedule(((10, 1), (20, 1)), 5)
    times_ms = [0, 499, 500, 999, 1000, 1249, 1250, 1999, 2000, 9000]
    assert [s.batch_due_at(t * MS) for t in times_ms] == [0, 0, 1, 1, 2, 2, 3, 5, 5, 5]
    assert [s.due_changes(t * MS) for t in times_ms] == [1, 5, 6, 10, 11, 15, 16, 30, 30, 30]


# --- next_batch ------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["catch-up", "abort"])
@pytest.mark.parametrize("elapsed_ns", [0, 55 * MS, NS_PER_S, 10**12])
def test_catch_up_never_skips(policy: str, elapsed_ns: int) -> None:
    s = Schedule(((1000, 1),), 10)
    for batch in (0, 3, 50, 99):
        assert next_batch(s, batch, elapsed_ns, policy) == (batch, 0)


@pytest.mark.parametrize(
    ("batch", "elapsed_ns", "expected"),
    [
        (0, 0, (0, 0)),
        (5, 55 * MS, (5, 0)),  # on time
        (5, 59_999_999, (5, 0)),  # late, but batch 6 is not yet due
        (3, 55 * MS, (5, 2)),  # batches 3 and 4 fully passed
        (4, 50 * MS, (5, 1)),
        (6, 55 * MS, (6, 0)),  # ahead of time: never goes back
        (0, 995 * MS, (99, 99)),
        (3, 10**12, (99, 96)),  # after the end: only the last batch is still sent
    ],
)
def test_drop_skips_batches_whose_slot_passed(
    batch: int, elapsed_ns: int, expected: tuple[int, int]
) -> None:
    assert next_batch(Schedule(((1000, 1),), 10), batch, elapsed_ns, "drop") == expected


def test_drop_across_steps() -> None:
    s = Schedule(((10, 1), (20, 1)), 5)
    assert next_batch(s, 1, 1250 * MS, "drop") == (3, 2)
    assert next_batch(s, 3, 1250 * MS, "drop") == (3, 0)


def test_drop_inside_rate_zero_step_does_not_send_early() -> None:
    s = Schedule(((10, 1), (0, 1), (10, 1)), 4)
    # at 1.1 s only batches 0..2 are due; batch 3 is due at 2.0 s
    assert s.batch_due_at(1100 * MS) == 2
    assert next_batch(s, 2, 1100 * MS, "drop") == (2, 0)


def test_drop_inside_trailing_rate_zero_step_stays_in_range() -> None:
    s = Schedule(((10, 1), (0, 1)), 4)
    batch, _ = next_batch(s, 2, 1100 * MS, "drop")
    assert batch < s.batch_count
    s.offset_ns(batch)


# --- properties over many schedules ----------------------------------------------------


def _random_schedules(count: int, seed: int, allow_zero: bool) -> list[Schedule]:
    rng = random.Random(seed)
    rates = [1, 2, 3, 7, 10, 13, 40, 97, 1000] + ([0] if allow_zero else [])
    out = []
    for _ in range(count):
        steps = tuple((rng.choice(rates), rng.randint(1, 4)) for _ in range(rng.randint(1, 4)))
        phase = rng.choice([0.0, rng.random(), 0.999999])
        out.append(Schedule(steps, rng.randint(1, 12), phase))
    return out


def test_property_batches_carry_every_change_once() -> None:
    for s in _random_schedules(250, seed=2024, allow_zero=True):
        sizes = [s.changes_in(b) for b in range(s.batch_count)]
        assert sum(sizes) == s.total_changes, (s.steps, s.batch_size)
        assert s.total_changes == sum(r * d for r, d in s.steps)
        assert all(1 <= n <= s.batch_size for n in sizes), (s.steps, s.batch_size)


def test_property_offsets_are_non_decreasing_and_inside_their_step() -> None:
    for s in _random_schedules(250, seed=7, allow_zero=True):
        offsets = [s.offset_ns(b) for b in range(s.batch_count)]
        assert offsets == sorted(offsets), (s.steps, s.batch_size)
        assert all(0 <= o < s.total_s * NS_PER_S for o in offsets)


def test_property_each_batch_is_due_from_its_offset() -> None:
    # offset_ns floors the exact intended time to the ns, so 1 ns later the batch is due
    for s in _random_schedules(150, seed=99, allow_zero=False):
        changes_before = 0
        for b in range(s.batch_count):
            o = s.offset_ns(b)
            assert s.batch_due_at(o + 1) == b, (s.steps, s.batch_size, b)
            if b:
                assert s.batch_due_at(o - 1) == b - 1, (s.steps, s.batch_size, b)
            assert s.due_changes(o - 1) <= changes_before < s.due_changes(o + 1)
            changes_before += s.changes_in(b)
        assert s.due_changes(s.total_s * NS_PER_S) == s.total_changes


def test_phase_shifts_every_batch_by_a_fraction_of_its_interval() -> None:
    plain, shifted = Schedule(((10, 2),), 5), Schedule(((10, 2),), 5, 0.25)
    assert [shifted.offset_ns(b) - plain.offset_ns(b) for b in range(4)] == [125 * MS] * 4
    assert shifted.due_changes(124 * MS) == 0 and shifted.due_changes(125 * MS) == 1
    assert shifted.batch_due_at(1 * S - 1) == 1 and shifted.batch_due_at(625 * MS) == 1


def test_phase_never_pushes_a_short_last_batch_out_of_its_step() -> None:
    # 7 changes in batches of 5: the short last batch is due at 5/7 s; a phase of 0.9 of
    # the 5/7 s interval would put it at 1.36 s, past the step
    s = Schedule(((7, 1), (10, 1)), 5, 0.9)
    assert s.offset_ns(1) < 1 * S <= s.offset_ns(2)


def test_staggered_shards_put_the_same_number_of_batches_in_every_second() -> None:
    # 4 shards at 25 CPS in batches of 10: 2.5 batches a second each
    same = [Schedule(((25, 4),), 10) for _ in range(4)]
    staggered = [Schedule(((25, 4),), 10, i / 4) for i in range(4)]

    def per_second(scheds: list[Schedule]) -> list[int]:
        out = [0] * 4
        for sc in scheds:
            for b in range(sc.batch_count):
                out[sc.offset_ns(b) // S] += sc.changes_in(b)
        return out

    assert per_second(same) == [120, 80, 120, 80]
    assert per_second(staggered) == [100, 100, 100, 100]
