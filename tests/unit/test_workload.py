"""loadengine.workload: exact operation mix, deterministic batches, valid SQL parameters."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from loadengine.core import workload
from loadengine.core.plan import DEFAULT_MIX, KeySpace
from loadengine.core.workload import (
    ORDER_DATES,
    ORDER_ORDER,
    KeyCursor,
    OpSequence,
    Statement,
    build_batch,
    distinct_indices,
    insert_orders,
)

KEYS = KeySpace(
    customer_first=1001,
    order_first=10001,
    index=1,
    stride=3,
    seeded_customers=50,
    seeded_orders=50,
)
ALL_OPS = {"insert_customer": 3, "insert_order": 4, "update_customer": 2, "update_order": 5}


def is_customer_of(keys: KeySpace, cid: int) -> bool:
    k, r = divmod(cid - keys.customer_first - keys.index, keys.stride)
    return r == 0 and k >= 0


def is_order_of(keys: KeySpace, number: int) -> bool:
    k, r = divmod(number - keys.order_first - keys.index, keys.stride)
    return r == 0 and k >= 0


def customer_k(keys: KeySpace, cid: int) -> int:
    return (cid - keys.customer_first - keys.index) // keys.stride


def order_k(keys: KeySpace, number: int) -> int:
    return (number - keys.order_first - keys.index) // keys.stride


def sequence(mix: tuple[tuple[str, int], ...], n: int) -> list[str]:
    ops = OpSequence(mix)
    return [next(iter(ops.next_counts(1))) for _ in range(n)]


# --- OpSequence --------------------------------------------------------------------------


def test_default_mix_exact_per_cycle() -> None:
    ops = OpSequence(DEFAULT_MIX)
    for _ in range(5):
        assert ops.next_counts(100) == {
            "insert_customer": 20,
            "insert_order": 30,
            "update_customer": 20,
            "update_order": 30,
        }


@pytest.mark.parametrize(
    "mix",
    [
        DEFAULT_MIX,
        (("insert_customer", 1), ("update_order", 2)),
        (("insert_customer", 7), ("insert_order", 3), ("update_customer", 1)),
        (("insert_order", 5),),
        (("insert_customer", 2), ("insert_order", 0), ("update_order", 3)),
    ],
)
def test_every_window_of_one_cycle_has_exact_proportions(
    mix: tuple[tuple[str, int], ...],
) -> None:
    cycle = sum(w for _, w in mix)
    seq = sequence(mix, 3 * cycle)
    expected = {op: w for op, w in mix if w > 0}
    for start in range(2 * cycle + 1):
        window = seq[start : start + cycle]
        assert {op: window.count(op) for op in expected} == expected
        assert len(window) == cycle


def test_smooth_interleaving_literal() -> None:
    one_cycle = ["update_order", "insert_customer", "update_order"]
    assert sequence((("insert_customer", 1), ("update_order", 2)), 6) == one_cycle * 2
    assert sequence((("insert_customer", 5), ("update_order", 1)), 6) == [
        "insert_customer",
        "insert_customer",
        "insert_customer",
        "update_order",
        "insert_customer",
        "insert_customer",
    ]


def test_zero_weight_operation_never_appears() -> None:
    counts = OpSequence((("insert_customer", 1), ("update_customer", 0))).next_counts(50)
    assert counts == {"insert_customer": 50}


def test_op_sequence_is_deterministic_and_split_independent() -> None:
    one = OpSequence(DEFAULT_MIX)
    two = OpSequence(DEFAULT_MIX)
    assert [one.next_counts(7) for _ in range(30)] == [two.next_counts(7) for _ in range(30)]
    whole = OpSequence(DEFAULT_MIX).next_counts(100)
    parts = OpSequence(DEFAULT_MIX)
    a, b = parts.next_counts(37), parts.next_counts(63)
    assert {op: a.get(op, 0) + b.get(op, 0) for op in whole} == whole
    assert OpSequence(DEFAULT_MIX).next_counts(0) == {}


# --- build_batch -------------------------------------------------------------------------


def build(
    seed: int, counts: dict[str, int], cursor: KeyCursor | None = None
) -> tuple[list[Statement], KeyCursor]:
    start = KeyCursor(50, 50) if cursor is None else cursor
    return build_batch(counts, random.Random(seed), KEYS, start, "run.1.7")


def test_same_seed_gives_identical_statements() -> None:
    rng_a, rng_b = random.Random(42), random.Random(42)
    cursor_a = cursor_b = KeyCursor(50, 50)
    for _ in range(20):
        stmts_a, cursor_a = build_batch(ALL_OPS, rng_a, KEYS, cursor_a, "t")
        stmts_b, cursor_b = build_batch(ALL_OPS, rng_b, KEYS, cursor_b, "t")
        assert stmts_a == stmts_b
    assert cursor_a == cursor_b == KeyCursor(50 + 20 * 3, 50 + 20 * 4)


def test_different_seeds_give_different_rows() -> None:
    assert build(1, ALL_OPS)[0] != build(2, ALL_OPS)[0]


def test_statements_follow_the_fixed_order_inserts_first() -> None:
    stmts, after = build(3, ALL_OPS)
    assert [s.op for s in stmts] == list(ORDER_ORDER)
    assert [(s.table, s.kind, s.rows) for s in stmts] == [
        ("customers", "insert", 3),
        ("orders", "insert", 4),
        ("customers", "update", 2),
        ("orders", "update", 5),
    ]
    assert after == KeyCursor(53, 54)
    assert ORDER_ORDER == ("insert_customer", "insert_order", "update_customer", "update_order")


def test_param_counts_match_placeholders() -> None:
    for seed in range(20):
        counts = {"insert_customer": 7, "insert_order": 9, "update_customer": 4, "update_order": 11}
        stmts, _ = build(seed, counts)
        for s in stmts:
            assert s.sql.count("?") == len(s.params), s.op
    stmts, _ = build(0, ALL_OPS)
    assert [len(s.params) for s in stmts] == [3 * 4, 4 * 5, 1 + 2, 5]


def test_inserted_keys_continue_from_the_cursor() -> None:
    stmts, _ = build(5, {"insert_customer": 3, "insert_order": 2}, KeyCursor(10, 20))
    customers, orders = stmts
    assert customers.params[0::4] == tuple(KEYS.customer_id(k) for k in (10, 11, 12))
    assert customers.params[0::4] == (1032, 1035, 1038)
    assert customers.params[3::4] == tuple(f"c{c}@loadengine.test" for c in (1032, 1035, 1038))
    assert orders.params[0::5] == (10062, 10065)


def ints(values: tuple[object, ...]) -> list[int]:
    assert all(isinstance(v, int) for v in values), values
    return [v for v in values if isinstance(v, int)]


def test_ids_belong_to_the_shard_keyspace() -> None:
    rng = random.Random(11)
    cursor = KeyCursor(50, 50)
    counts = {"insert_customer": 4, "insert_order": 6, "update_customer": 8, "update_order": 9}
    for _ in range(30):
        stmts, after = build_batch(counts, rng, KEYS, cursor, "tag")
        ins_c, ins_o, upd_c, upd_o = stmts
        new_c = ints(ins_c.params[0::4])
        assert new_c == [KEYS.customer_id(k) for k in range(cursor.customers, after.customers)]
        new_o = ints(ins_o.params[0::5])
        assert new_o == [KEYS.order_number(k) for k in range(cursor.orders, after.orders)]
        # purchasers exist already or are inserted in this same batch
        purchasers = ints(ins_o.params[2::5])
        assert len(purchasers) == 6
        assert all(
            is_customer_of(KEYS, p) and customer_k(KEYS, p) < after.customers for p in purchasers
        )
        # updates touch only rows committed before this batch
        updated_c = ints(upd_c.params[1:])
        assert len(updated_c) == 8
        assert all(
            is_customer_of(KEYS, c) and customer_k(KEYS, c) < cursor.customers for c in updated_c
        )
        updated_o = ints(upd_o.params)
        assert len(updated_o) == 9
        assert all(is_order_of(KEYS, o) and order_k(KEYS, o) < cursor.orders for o in updated_o)
        cursor = after


def test_update_statements_list_distinct_existing_ids() -> None:
    for seed in range(30):
        stmts, _ = build(seed, {"update_customer": 25, "update_order": 40}, KeyCursor(25, 60))
        upd_c, upd_o = stmts
        assert upd_c.params[0] == "run.1.7"
        cids = upd_c.params[1:]
        assert len(cids) == len(set(cids)) == 25
        assert set(cids) == {KEYS.customer_id(k) for k in range(25)}  # all 25 that exist
        assert len(upd_o.params) == len(set(upd_o.params)) == 40


def test_updates_are_shortened_to_rows_that_exist() -> None:
    stmts, after = build(1, {"update_customer": 10, "update_order": 10}, KeyCursor(3, 0))
    assert [(s.op, s.rows) for s in stmts] == [("update_customer", 3)]
    assert after == KeyCursor(3, 0)


def test_updates_only_see_rows_committed_before_the_batch() -> None:
    stmts, after = build(4, {"insert_customer": 5, "update_customer": 10}, KeyCursor(2, 0))
    ins, upd = stmts
    assert (ins.op, ins.rows, upd.op, upd.rows) == ("insert_customer", 5, "update_customer", 2)
    assert set(upd.params[1:]) == {KEYS.customer_id(0), KEYS.customer_id(1)}
    assert after == KeyCursor(7, 0)


def test_orders_need_a_customer() -> None:
    stmts, after = build(1, {"insert_order": 5}, KeyCursor(0, 0))
    assert stmts == []
    assert after == KeyCursor(0, 0)
    stmts, after = build(1, {"insert_customer": 1, "insert_order": 5}, KeyCursor(0, 0))
    assert [s.op for s in stmts] == ["insert_customer", "insert_order"]
    assert stmts[1].params[2::5] == (KEYS.customer_id(0),) * 5
    assert after == KeyCursor(1, 5)


def test_empty_counts_build_nothing() -> None:
    stmts, after = build(1, {})
    assert stmts == []
    assert after == KeyCursor(50, 50)


def _literal(v: object) -> str:
    if isinstance(v, int):
        return str(v)
    text = str(v)
    assert "'" not in text and "\\" not in text  # the workload's values need no escaping
    return f"'{text}'"


@pytest.mark.parametrize("seed", range(10))
def test_text_is_the_sql_with_its_params_as_literals(seed: int) -> None:
    counts = {"insert_customer": 5, "insert_order": 3, "update_customer": 4, "update_order": 1}
    stmts, _ = build(seed, counts)
    for s in stmts:
        pieces = s.sql.split("?")
        rendered = pieces[0] + "".join(
            _literal(p) + rest for p, rest in zip(s.params, pieces[1:], strict=True)
        )
        assert s.text == rendered, s.op


@pytest.mark.parametrize("chunk", [1, 3, 7, 10, 25, 100])
def test_op_counts_in_chunks_equal_the_counts_one_by_one(chunk: int) -> None:
    mix = (("insert_customer", 3), ("insert_order", 2), ("update_customer", 4), ("update_order", 1))
    by_chunk, one_by_one = OpSequence(mix), OpSequence(mix)
    for _ in range(20):
        got = by_chunk.next_counts(chunk)
        want: dict[str, int] = {}
        for _ in range(chunk):
            for op, n in one_by_one.next_counts(1).items():
                want[op] = want.get(op, 0) + n
        assert {k: v for k, v in got.items() if v} == want


@pytest.mark.parametrize(("population", "n"), [(10, 10), (10, 3), (1000, 100), (100_000, 100)])
def test_distinct_indices_are_distinct_and_in_range(population: int, n: int) -> None:
    rng = random.Random(population + n)
    for _ in range(50):
        ks = distinct_indices(rng, population, n)
        assert len(ks) == n == len(set(ks))
        assert all(0 <= k < population for k in ks)


def test_distinct_indices_cover_the_population_evenly() -> None:
    rng = random.Random(5)
    hits = [0] * 20
    for _ in range(20_000):
        for k in distinct_indices(rng, 20, 2):
            hits[k] += 1
    assert min(hits) > 0.85 * 2000 and max(hits) < 1.15 * 2000  # 2,000 expected each


def test_order_dates_are_the_336_days_uniformly_drawn() -> None:
    assert len(ORDER_DATES) == 12 * 28 == len(set(ORDER_DATES))
    stmt = insert_orders(random.Random(1), KeySpace(1, 10_001, 0, 1, 0, 0), 0, 3000, 50)
    dates = stmt.params[1::5]
    assert set(dates) <= set(ORDER_DATES) and len(set(dates)) > 300


@pytest.mark.parametrize("seed", range(5))
def test_text_only_statements_are_the_same_changes_without_params(seed: int) -> None:
    counts = {"insert_customer": 7, "insert_order": 3, "update_customer": 2, "update_order": 1}
    full, after = build(seed, counts)
    rng = random.Random(seed)
    lean, lean_after = build_batch(counts, rng, KEYS, KeyCursor(50, 50), "run.1.7", False)
    assert [s.text for s in lean] == [s.text for s in full] and lean_after == after
    assert [s.op for s in lean[:2]] == ["insert_customer", "insert_order"]
    assert lean[0].params == lean[1].params == () and full[0].params and full[1].params


@pytest.mark.parametrize("population", [("a", "b", "c"), range(7), tuple(range(1000))])
def test_draws_are_exactly_random_choices(population: Sequence[object]) -> None:
    for seed in range(20):
        a, b = random.Random(seed), random.Random(seed)
        assert workload.draws(a, population, 25) == b.choices(population, k=25)
        assert a.random() == b.random()  # the generators stay in step


def test_single_row_customer_text_is_the_general_paths_with_the_same_draws() -> None:
    """The text protocol's one-row fast path (no params) makes exactly the statement the
    general path makes, from the same random draws."""
    fast_rng, general_rng = random.Random(11), random.Random(11)
    for k in range(500):
        fast = workload.insert_customers(fast_rng, KEYS, k, 1, with_params=False)
        general = workload.insert_customers(general_rng, KEYS, k, 1, with_params=True)
        assert fast.text == general.text
        assert (fast.sql, fast.rows, fast.first_k, fast.params) == (general.sql, 1, k, ())
    assert fast_rng.getstate() == general_rng.getstate()
    assert (
        len({workload.insert_customers(fast_rng, KEYS, 0, 1, False).text for _ in range(300)}) > 40
    )


@pytest.mark.parametrize("op", list(ALL_OPS))
@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_max_transaction_bytes_bounds_every_operations_text(op: str, rows: int) -> None:
    """The bound the run checks against max_allowed_packet holds for the widest keys."""
    keys = KeySpace(
        customer_first=10**15,
        order_first=10**15,
        index=1023,
        stride=1024,
        seeded_customers=10**6,
        seeded_orders=10**6,
    )
    stmts, _ = build_batch(
        {op: rows}, random.Random(3), keys, KeyCursor(10**6, 10**6), "run-ffffffff.1023.99999999"
    )
    sent = sum(len((s.text or s.sql).encode()) for s in stmts) + len("BEGIN;COMMIT")
    assert sent <= workload.max_transaction_bytes(rows)
    assert sent * 0.3 < workload.max_transaction_bytes(rows)  # not a vacuous bound
