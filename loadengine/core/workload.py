"""The inventory workload: which operations a batch holds, and the SQL that carries them.

Pure: statements are built from a seeded ``random.Random`` and the shard's key space, and
nothing here touches the database. A batch becomes at most one multi-row statement per
operation, in a fixed order (inserts before the updates and orders that reference them).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TypeVar

from loadengine.core.plan import KeySpace
from loadengine.core.schema import PRODUCT_IDS

T = TypeVar("T")

FIRST_NAMES = ("Sally", "George", "Edward", "Anne", "Maria", "Ken", "Priya", "Omar", "Lena", "Tom")
LAST_NAMES = ("Thomas", "Bailey", "Walker", "Kretchmar", "Garcia", "Ito", "Rao", "Haddad", "Berg")
EMAIL_DOMAIN = "loadengine.test"
ORDER_ORDER = ("insert_customer", "insert_order", "update_customer", "update_order")
ORDER_DATES = tuple(f"2026-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29))


@dataclass(slots=True)
class Statement:
    """One multi-row statement. ``rows`` is the number of row changes it should make.
    ``sql`` with ``params`` is what the prepared protocol sends, ``text`` what the text
    protocol sends (customer inserts built for it have no ``params``). Never changed once
    built; not ``frozen`` only because a frozen dataclass's ``__init__`` costs four times
    as much (one ``object.__setattr__`` per field), and single-row runs build one per
    change."""

    op: str
    table: str
    kind: str
    sql: str
    params: tuple[object, ...]
    rows: int
    key_indices: tuple[int, ...] = ()  # updates: the shard's key indices k (for the ledger)
    first_k: int = -1  # inserts: key index of the first row (rows are first_k, first_k+1...)
    text: str = ""  # the same statement with its values as SQL literals (text protocol)
    stamp: int = -1  # spec workloads: the statement's version stamp (``core.generic``)


class OpSequence:
    """Smooth weighted round-robin over operations: exact proportions in every cycle.

    Over any ``sum(weights)`` consecutive changes each operation appears exactly
    ``weight`` times, interleaved as evenly as possible (nginx's algorithm).
    """

    def __init__(self, mix: tuple[tuple[str, int], ...]) -> None:
        self._ops = [(op, w) for op, w in mix if w > 0]
        self._total = sum(w for _, w in self._ops)
        self._current = [0] * len(self._ops)

    def next_counts(self, n: int) -> dict[str, int]:
        """Operation counts for the next ``n`` changes.

        A whole cycle picks each operation exactly ``weight`` times and leaves the state as
        it found it, so whole cycles are counted at once and only the rest is stepped.
        """
        cycles, rest = divmod(n, self._total)
        counts = {op: w * cycles for op, w in self._ops if cycles}
        for _ in range(rest):
            best = 0
            for i, (_, w) in enumerate(self._ops):
                self._current[i] += w
                if self._current[i] > self._current[best]:
                    best = i
            self._current[best] -= self._total
            op = self._ops[best][0]
            counts[op] = counts.get(op, 0) + 1
        return counts

    def position(self) -> tuple[int, ...]:
        """Where the sequence is; ``rewind`` goes back there (batches built but unsent)."""
        return tuple(self._current)

    def rewind(self, position: tuple[int, ...]) -> None:
        self._current = list(position)


@dataclass(slots=True)
class KeyCursor:
    """How many of the shard's customers/orders exist (committed), by key index ``k``."""

    customers: int
    orders: int


_SQL_HEADS = {
    "insert_customer": ("INSERT INTO customers (id, first_name, last_name, email) VALUES ", 4),
    "insert_order": (
        "INSERT INTO orders (order_number, order_date, purchaser, quantity, product_id) VALUES ",
        5,
    ),
    "update_customer": (
        f"UPDATE customers SET email = CONCAT('c', id, '.', ?, '@{EMAIL_DOMAIN}') WHERE id IN (",
        0,
    ),
    "update_order": (
        "UPDATE orders SET quantity = quantity % 100 + 1 WHERE order_number IN (",
        0,
    ),
}


@functools.cache  # pure memo: one string per (operation, rows) shape, not rebuilt per batch
def statement_sql(op: str, rows: int) -> str:
    """SQL text for ``rows`` rows of ``op``: a multi-row VALUES list or an ``IN`` list."""
    head, columns = _SQL_HEADS[op]
    if columns:
        one = "(" + ",".join("?" * columns) + ")"
        return head + ",".join([one] * rows)
    return head + ",".join("?" * rows) + ")"


# Text rendering: every value is an integer, or a string built here from integers and the
# fixed ASCII words above (no quote or backslash or percent sign can occur), so literals
# need no escaping. That is what makes the text protocol cheap: no per-parameter conversion
# in the driver. A statement's text is its parameters %-formatted into a cached template
# of ``rows`` value tuples: one C-level call per statement, not one string per row.
_ROW_FORMATS = {
    "insert_customer": f"(%d,%s,'c%d@{EMAIL_DOMAIN}')",  # id, 'first','last' and id again
    "insert_order": "(%d,%s,%d,%s)",  # number, 'date', purchaser, quantity,product
}
# Each uniform pair drawn with one random number (first and last name; quantity and
# product): the pairs are equally likely, so each member is uniform and independent.
NAME_PAIRS = tuple((f, last) for f in FIRST_NAMES for last in LAST_NAMES)
NAME_LITERALS = tuple(f"'{f}','{last}'" for f, last in NAME_PAIRS)  # the same, as SQL text
PAIR_OF_LITERAL = dict(zip(NAME_LITERALS, NAME_PAIRS, strict=True))
QUANTITY_PRODUCTS = tuple((q, p) for q in range(1, 11) for p in PRODUCT_IDS)
QUANTITY_PRODUCT_LITERALS = tuple(f"{q},{p}" for q, p in QUANTITY_PRODUCTS)
QUANTITY_PRODUCT_OF_LITERAL = dict(zip(QUANTITY_PRODUCT_LITERALS, QUANTITY_PRODUCTS, strict=True))
DATE_LITERALS = tuple(f"'{d}'" for d in ORDER_DATES)


@functools.lru_cache(maxsize=256)  # pure memo: one template per (operation, rows) shape
def values_format(op: str, rows: int) -> str:
    return _SQL_HEADS[op][0] + ",".join([_ROW_FORMATS[op]] * rows)


_ONE_CUSTOMER_SQL = statement_sql("insert_customer", 1)
_ONE_CUSTOMER_TEXT = values_format("insert_customer", 1)  # id, names, id


def draws(rng: random.Random, population: Sequence[T], k: int) -> list[T]:
    """``k`` uniform draws with replacement: exactly ``rng.choices(population, k=k)``
    (the same ``floor(random() * len)`` per draw, so the same values), without its
    argument handling, which at one row per statement cost more than the draw."""
    random_, size = rng.random, len(population)
    return [population[int(random_() * size)] for _ in range(k)]


def insert_customers(
    rng: random.Random, keys: KeySpace, first_k: int, n: int, with_params: bool = True
) -> Statement:
    """New customers with uniform names. The text is made without a Python step per row
    (``draws``, ``zip`` and one %-format); ``params`` (what the prepared protocol
    sends) only ``with_params``: the text protocol never reads them."""
    first_id = keys.customer_id(first_k)
    if n == 1 and not with_params:  # single-row: ``draws``' one draw, without its list
        name = NAME_LITERALS[int(rng.random() * len(NAME_LITERALS))]
        text = _ONE_CUSTOMER_TEXT % (first_id, name, first_id)
        return Statement(
            "insert_customer", "customers", "insert", _ONE_CUSTOMER_SQL, (), 1,
            first_k=first_k, text=text,
        )  # fmt: skip
    ids = range(first_id, first_id + n * keys.stride, keys.stride)
    names = draws(rng, NAME_LITERALS, n)
    values = chain.from_iterable(zip(ids, names, ids, strict=True))
    text = values_format("insert_customer", n) % tuple(values)
    params: tuple[object, ...] = ()
    if with_params:
        pairs = [PAIR_OF_LITERAL[name] for name in names]
        params = tuple(
            chain.from_iterable(
                (cid, first, last, f"c{cid}@{EMAIL_DOMAIN}")
                for cid, (first, last) in zip(ids, pairs, strict=True)
            )
        )
    return Statement(
        "insert_customer",
        "customers",
        "insert",
        statement_sql("insert_customer", n),
        params,
        n,
        first_k=first_k,
        text=text,
    )


def insert_orders(
    rng: random.Random,
    keys: KeySpace,
    first_k: int,
    n: int,
    customers: int,
    with_params: bool = True,
) -> Statement:
    """Orders of existing customers; dates, purchasers and (quantity, product) pairs
    uniform, each drawn for the whole statement with ``draws`` and the text made with
    ``zip`` and one %-format, as for customers."""
    stride = keys.stride
    o_first = keys.order_number(first_k)
    numbers = range(o_first, o_first + n * stride, stride)
    dates = draws(rng, DATE_LITERALS, n)
    purchasers = _ids(keys.customer_id(0), stride, draws(rng, range(customers), n))
    qps = draws(rng, QUANTITY_PRODUCT_LITERALS, n)
    values = chain.from_iterable(zip(numbers, dates, purchasers, qps, strict=True))
    text = values_format("insert_order", n) % tuple(values)
    params: tuple[object, ...] = ()
    if with_params:
        rows = zip(numbers, dates, purchasers, qps, strict=True)
        params = tuple(
            chain.from_iterable(
                (number, date[1:-1], purchaser, *QUANTITY_PRODUCT_OF_LITERAL[qp])
                for number, date, purchaser, qp in rows
            )
        )
    return Statement(
        "insert_order", "orders", "insert", statement_sql("insert_order", n), params, n,
        first_k=first_k, text=text,
    )  # fmt: skip


def distinct_indices(rng: random.Random, population: int, n: int) -> list[int]:
    """``n`` distinct indices below ``population``, uniformly, in draw order: rejection
    sampling while the sample is sparse, drawn ``n`` at a time with ``choices`` and
    deduplicated in order by ``dict.fromkeys`` (the same draws, in the same order, as
    one-by-one rejection, without a Python step per index); ``random.sample`` when dense."""
    if n * 4 > population:
        return rng.sample(range(population), n)
    span = range(population)
    out = dict.fromkeys(rng.choices(span, k=n))
    while len(out) < n:  # a repeat was drawn (rare while sparse): draw what is missing
        out.update(dict.fromkeys(k for k in rng.choices(span, k=n - len(out)) if k not in out))
    return list(out)


def _ids(first: int, stride: int, ks: list[int]) -> list[int]:
    """Keys of key indices ``ks`` (``KeySpace.customer_id``/``order_number`` in bulk)."""
    return [first + k * stride for k in ks]


def update_customers(
    rng: random.Random, keys: KeySpace, existing: int, n: int, tag: str
) -> Statement:
    """Distinct rows, each given a new email that is unique (it embeds the row id and tag)."""
    ks = distinct_indices(rng, existing, n)
    ids = _ids(keys.customer_id(0), keys.stride, ks)
    sql, text = statement_sql("update_customer", n), _in_list_text("update_customer", ids, tag)
    return Statement(
        "update_customer", "customers", "update", sql, (tag, *ids), n, tuple(ks), text=text
    )


def update_orders(rng: random.Random, keys: KeySpace, existing: int, n: int) -> Statement:
    """Distinct rows; ``quantity % 100 + 1`` always differs from ``quantity``."""
    ks = distinct_indices(rng, existing, n)
    ids = _ids(keys.order_number(0), keys.stride, ks)
    sql, text = statement_sql("update_order", n), _in_list_text("update_order", ids)
    return Statement("update_order", "orders", "update", sql, tuple(ids), n, tuple(ks), text=text)


def _in_list_text(op: str, ids: list[int], tag: str = "") -> str:
    """An update's literal text: its head (the tag as the one literal in its SET, if any)
    and its ``IN`` list of ids."""
    head = _SQL_HEADS[op][0].replace("?", f"'{tag}'")
    return head + ",".join(map(str, ids)) + ")"


# Upper bounds of a transaction's SQL text (measured: a statement's head and one row's
# values stay under these for every operation; tests/unit/test_workload.py checks them).
MAX_TEXT_BYTES_PER_STATEMENT = 256
MAX_TEXT_BYTES_PER_CHANGE = 96


def max_transaction_bytes(batch_size: int) -> int:
    """The most bytes one transaction of ``batch_size`` changes can send as one packet
    (one statement per operation, plus BEGIN/COMMIT)."""
    statements = len(ORDER_ORDER) + 2
    return statements * MAX_TEXT_BYTES_PER_STATEMENT + batch_size * MAX_TEXT_BYTES_PER_CHANGE


def build_batch(
    counts: dict[str, int],
    rng: random.Random,
    keys: KeySpace,
    cursor: KeyCursor,
    tag: str,
    with_params: bool = True,
) -> tuple[list[Statement], KeyCursor]:
    """Statements for one batch, and the key cursor as it will be once the batch commits.

    Updates only pick rows that already exist (committed before this batch) and are
    distinct within a statement, so every listed row really changes. If fewer rows exist
    than requested, the statement is shortened: the shortfall is visible as fewer changes.
    """
    stmts: list[Statement] = []
    c_new = counts.get("insert_customer", 0)
    if c_new:
        stmts.append(insert_customers(rng, keys, cursor.customers, c_new, with_params))
    o_new = counts.get("insert_order", 0)
    if o_new and cursor.customers + c_new > 0:
        customers = cursor.customers + c_new
        stmts.append(insert_orders(rng, keys, cursor.orders, o_new, customers, with_params))
    else:
        o_new = 0
    n = min(counts.get("update_customer", 0), cursor.customers)
    if n:
        stmts.append(update_customers(rng, keys, cursor.customers, n, tag))
    n = min(counts.get("update_order", 0), cursor.orders)
    if n:
        stmts.append(update_orders(rng, keys, cursor.orders, n))
    return stmts, KeyCursor(cursor.customers + c_new, cursor.orders + o_new)


@dataclass(frozen=True, slots=True)
class CommitProbe:
    """A query that tells whether a transaction committed: it returns ``expect`` if so,
    ``absent`` if not (transactions are atomic, so anything else means interference)."""

    sql: str
    params: tuple[object, ...]
    expect: int
    absent: int = 0  # what it returns if the transaction did not commit (a delete: all rows)


def commit_probe(stmts: list[Statement], keys: KeySpace) -> CommitProbe | None:
    """How to find out, after a lost connection, whether ``stmts`` committed. Pure.

    Inserted keys are the shard's own, so their existence decides; a customer update
    stamps an email unique to its batch. A transaction holding only order updates leaves
    no mark of its own, so it cannot be resolved (None): never guess.
    """
    for stmt in stmts:
        if stmt.kind == "insert":
            customers = stmt.table == "customers"
            key_of = keys.customer_id if customers else keys.order_number
            ids = tuple(key_of(k) for k in range(stmt.first_k, stmt.first_k + stmt.rows))
            column = "id" if customers else "order_number"
            return CommitProbe(_count_in(stmt.table, column, len(ids)), ids, len(ids))
    for stmt in stmts:
        if stmt.op == "update_customer":
            tag, updated = stmt.params[0], stmt.params[1:]
            sql = (
                _count_in("customers", "id", len(updated))
                + f" AND email = CONCAT('c', id, '.', ?, '@{EMAIL_DOMAIN}')"
            )
            return CommitProbe(sql, (*updated, tag), len(updated))
    return None


def _count_in(table: str, column: str, n: int) -> str:
    return f"SELECT COUNT(*) FROM {table} WHERE {column} IN ({','.join('?' * n)})"
