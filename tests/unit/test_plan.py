"""loadengine.plan: exact rate split, disjoint shard keys, seeds, and RunPlan arithmetic."""

from __future__ import annotations

import pytest

from loadengine.core.plan import (
    DEFAULT_MIX,
    KeySpace,
    RunPlan,
    needs_seed,
    process_groups,
    seed_rows_per_shard,
    shard_plans,
    split_rate,
)

DSN = "mysql://app:pw@127.0.0.1:3306/inventory"


def make_plan(
    steps: tuple[tuple[int, int], ...],
    *,
    duration_s: int | None = None,
    warmup_s: int = 0,
    workers: int = 1,
    batch_size: int = 10,
    mix: tuple[tuple[str, int], ...] = DEFAULT_MIX,
    seed: int = 1,
) -> RunPlan:
    return RunPlan(
        steps=steps,
        duration_s=sum(d for _, d in steps) if duration_s is None else duration_s,
        warmup_s=warmup_s,
        workers=workers,
        batch_size=batch_size,
        log_interval_s=1.0,
        mix=mix,
        seed=seed,
        on_overload="catch-up",
        dsn=None,
        output=None,
        keep_server=False,
    )


# --- split_rate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "shards", "expected"),
    [
        (10, 3, [4, 3, 3]),
        (9, 3, [3, 3, 3]),
        (11, 4, [3, 3, 3, 2]),
        (7, 4, [2, 2, 2, 1]),
        (1, 1, [1]),
        (5, 1, [5]),
        (8, 8, [1, 1, 1, 1, 1, 1, 1, 1]),
        (2, 5, [1, 1, 0, 0, 0]),
        (0, 2, [0, 0]),
        (10_000, 8, [1250] * 8),
        (10_001, 8, [1251] + [1250] * 7),
        (10_007, 8, [1251] * 7 + [1250]),
        (2500, 3, [834, 833, 833]),
    ],
)
def test_split_rate_shares(target: int, shards: int, expected: list[int]) -> None:
    shares = split_rate(target, shards)
    assert shares == expected
    assert sum(shares) == target
    assert max(shares) - min(shares) <= 1


@pytest.mark.parametrize("shards", [0, -1])
def test_split_rate_rejects_fewer_than_one_shard(shards: int) -> None:
    with pytest.raises(ValueError, match="shards must be >= 1"):
        split_rate(10, shards)


def test_split_rate_sums_exactly_for_many_combinations() -> None:
    for target in range(0, 400, 7):
        for shards in range(1, 13):
            shares = split_rate(target, shards)
            assert len(shares) == shards
            assert sum(shares) == target, (target, shards)
            assert shares == sorted(shares, reverse=True)


# --- seeding helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "rows"),
    [(1, 1_000), (50, 1_000), (51, 1_020), (100, 2_000), (1_000, 20_000), (20_000, 40_000)],
)
def test_seed_rows_per_shard(batch: int, rows: int) -> None:
    assert seed_rows_per_shard(batch) == rows


@pytest.mark.parametrize(
    ("mix", "expected"),
    [
        (DEFAULT_MIX, (True, True)),
        ((("insert_customer", 1),), (False, False)),
        ((("insert_customer", 1), ("update_customer", 0)), (False, False)),
        ((("update_customer", 1),), (True, False)),
        ((("insert_order", 1),), (True, False)),
        ((("update_order", 1),), (True, True)),
    ],
)
def test_needs_seed(mix: tuple[tuple[str, int], ...], expected: tuple[bool, bool]) -> None:
    assert needs_seed(mix) == expected


# --- shard_plans ------------------------------------------------------------------------


def test_shard_plans_split_every_step_including_warmup() -> None:
    plan = make_plan(((10, 5), (25, 3)), warmup_s=2, workers=3, batch_size=4)
    shards = shard_plans(plan, DSN, 1001, 10001, "tok")
    assert [s.steps for s in shards] == [
        ((4, 2), (4, 5), (9, 3)),
        ((3, 2), (3, 5), (8, 3)),
        ((3, 2), (3, 5), (8, 3)),
    ]
    for step_index, (rate, dur) in enumerate(plan.schedule_steps()):
        assert sum(s.steps[step_index][0] for s in shards) == rate
        assert all(s.steps[step_index][1] == dur for s in shards)


def test_shard_plans_carry_the_plan() -> None:
    plan = make_plan(((100, 10),), warmup_s=3, workers=2, batch_size=7)
    shards = shard_plans(plan, DSN, 1001, 10001, "run42")
    assert [s.index for s in shards] == [0, 1]
    assert all(s.count == 2 for s in shards)
    assert all(s.total_s == 13 for s in shards)
    assert all(s.batch_size == 7 for s in shards)
    assert all(s.mix == DEFAULT_MIX for s in shards)
    assert all(s.run_token == "run42" for s in shards)
    assert all(s.on_overload == "catch-up" for s in shards)
    assert all(s.dsn == DSN for s in shards)
    assert [s.keys.index for s in shards] == [0, 1]
    assert all(s.keys.stride == 2 for s in shards)
    assert all(s.keys.seeded_customers == 1_000 and s.keys.seeded_orders == 1_000 for s in shards)


def test_shard_plans_seed_only_what_the_mix_needs() -> None:
    plan = make_plan(((10, 1),), batch_size=40, mix=(("update_customer", 1),))
    (shard,) = shard_plans(plan, DSN, 1, 1, "t")
    assert (shard.keys.seeded_customers, shard.keys.seeded_orders) == (1_000, 0)


def test_shard_plans_unthrottled_have_no_steps() -> None:
    plan = make_plan((), duration_s=5, warmup_s=1, workers=3)
    shards = shard_plans(plan, DSN, 1, 1, "t")
    assert [s.steps for s in shards] == [(), (), ()]
    assert all(s.total_s == 6 for s in shards)


@pytest.mark.parametrize("workers", [1, 2, 3, 5, 8])
def test_shard_keys_are_disjoint(workers: int) -> None:
    plan = make_plan(((100, 1),), workers=workers)
    shards = shard_plans(plan, DSN, 1001, 10001, "t")
    customers: set[int] = set()
    orders: set[int] = set()
    for s in shards:
        mine_c = {s.keys.customer_id(k) for k in range(500)}
        mine_o = {s.keys.order_number(k) for k in range(500)}
        assert len(mine_c) == len(mine_o) == 500
        assert not customers & mine_c
        assert not orders & mine_o
        customers |= mine_c
        orders |= mine_o
    # together the shards tile the key range from the first free key, without gaps
    assert customers == set(range(1001, 1001 + 500 * workers))
    assert orders == set(range(10001, 10001 + 500 * workers))


def test_keyspace_formula() -> None:
    keys = KeySpace(
        customer_first=1001,
        order_first=10001,
        index=2,
        stride=4,
        seeded_customers=0,
        seeded_orders=0,
    )
    assert [keys.customer_id(k) for k in range(4)] == [1003, 1007, 1011, 1015]
    assert [keys.order_number(k) for k in range(4)] == [10003, 10007, 10011, 10015]


def test_shard_seeds_differ_per_shard_and_are_deterministic() -> None:
    plan = make_plan(((80, 1),), workers=8, seed=7)
    first = [s.seed for s in shard_plans(plan, DSN, 1, 1, "a")]
    again = [s.seed for s in shard_plans(plan, DSN, 500, 900, "other-token")]
    assert first == again
    assert first == [7 * 1_000_003 + i for i in range(8)]
    assert len(set(first)) == 8
    other_run = [
        s.seed for s in shard_plans(make_plan(((80, 1),), workers=8, seed=8), DSN, 1, 1, "a")
    ]
    assert not set(first) & set(other_run)


# --- RunPlan ----------------------------------------------------------------------------


def test_single_step_plan() -> None:
    plan = make_plan(((100, 3),), warmup_s=2)
    assert plan.total_s == 5
    assert plan.schedule_steps() == ((100, 2), (100, 3))
    assert [plan.target_at(s) for s in range(7)] == [100, 100, 100, 100, 100, None, None]
    assert plan.planned_changes == 300
    assert plan.target_cps == 100


def test_single_step_plan_without_warmup() -> None:
    plan = make_plan(((250, 2),))
    assert plan.schedule_steps() == ((250, 2),)
    assert [plan.target_at(s) for s in range(3)] == [250, 250, None]
    assert plan.planned_changes == 500
    assert plan.target_cps == 250


def test_ramp_plan() -> None:
    plan = make_plan(((10, 2), (20, 3), (40, 1)), warmup_s=1)
    assert plan.duration_s == 6
    assert plan.total_s == 7
    assert plan.schedule_steps() == ((10, 1), (10, 2), (20, 3), (40, 1))
    assert [plan.target_at(s) for s in range(8)] == [10, 10, 10, 20, 20, 20, 40, None]
    assert plan.planned_changes == 10 * 2 + 20 * 3 + 40
    assert plan.target_cps == pytest.approx(120 / 6)


def test_ramp_profile_shape_target_cps_is_time_weighted_mean() -> None:
    plan = make_plan(((1000, 15), (2500, 15), (5000, 15), (10000, 15)))
    assert plan.planned_changes == 277_500
    assert plan.target_cps == 4625.0


def test_unthrottled_plan() -> None:
    plan = make_plan((), duration_s=10, warmup_s=2)
    assert plan.total_s == 12
    assert plan.schedule_steps() == ()
    assert plan.target_at(0) is None
    assert plan.planned_changes is None
    assert plan.target_cps is None


@pytest.mark.parametrize(
    ("shards", "processes", "expected"),
    [
        (4, 4, [[0], [1], [2], [3]]),
        (4, 2, [[0, 1], [2, 3]]),
        (5, 2, [[0, 1, 2], [3, 4]]),
        (16, 3, [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]),
        (3, 1, [[0, 1, 2]]),
        (2, 5, [[0], [1]]),
    ],
)
def test_process_groups_deal_shards_in_contiguous_even_runs(
    shards: int, processes: int, expected: list[list[int]]
) -> None:
    assert process_groups(shards, processes) == expected


def test_process_groups_cover_every_shard_once() -> None:
    for shards in range(1, 40):
        for processes in range(1, shards + 1):
            groups = process_groups(shards, processes)
            assert [i for g in groups for i in g] == list(range(shards))
            sizes = {len(g) for g in groups}
            assert len(groups) == processes and max(sizes) - min(sizes) <= 1
