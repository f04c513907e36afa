"""Statements generated from a workload spec (``core.spec``, ``builder = "spec"``). Pure.

A batch of ``n`` changes picks operations by smooth weighted round-robin (``OpSequence``)
until it holds ``n`` row changes; an operation of several rows (``rows``, or a
transaction's steps) can take the batch past ``n``, and the excess is taken off the next
batch (``GenericCursor.carry``), so the rate over a run is exact. Picks of one operation
become one statement: a multi-row ``INSERT``, an ``UPDATE ... WHERE key IN (...)``, a
``DELETE ... WHERE key IN (...)``; a transaction's steps follow one another in one commit.

Keys are the engine's, as for the inventory: shard ``i`` of ``n`` owns ``first + i + k*n``
in every table, inserts them in order and never reuses one. An update stamps the table's
version column with a value unique to its statement (``stamp``): the row always changes
(a server skips the row event of an update that changes nothing) and a commit lost in
doubt is looked up by it (``commit_probe``). Updates and deletes pick among the shard's
live keys (``KeyPool``: deleted ones never come back; a delete that must leave referenced
rows alone skips any row a child row was given).

Values are SQL literals made here: numbers, dates, strings from the spec (quotes
doubled) and text from a seeded block of ``[a-z0-9]``, so nothing needs escaping.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from loadengine.core.plan import KeySpace
from loadengine.core.spec import Column, KeyChoice, Operation, Table, WorkloadSpec
from loadengine.core.workload import CommitProbe, OpSequence, Statement

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
BLOCK_CHARS = 1 << 20  # text values are slices of a seeded block this long (twice over)
EPOCH = dt.datetime(2026, 1, 1)
YEAR_S = 365 * 86_400
STAMP_SLOTS = 64  # a statement's stamp: batch * 64 + its index in the transaction
PICK_TRIES = 8  # draws per wanted key before looking back from the newest row ...
SCAN_BACK_PER_KEY = 64  # ... this many rows per wanted key (then it settles for fewer rows)


@dataclass(frozen=True, slots=True)
class GenericCursor:
    """Keys allocated per table (seed included; ``k`` below it exist or were deleted) and
    the changes a batch took beyond its size, owed by the next. Never changed in place."""

    counts: tuple[int, ...]
    carry: int = 0


@dataclass(slots=True)
class KeyPool:
    """The shard's keys that updates and deletes may no longer pick, per table index:
    ``gone`` (deleted, or picked by a delete built but not yet committed: never picked
    again either way) and ``referenced`` (a child row holds them)."""

    gone: list[set[int]]
    referenced: list[set[int]]

    @classmethod
    def empty(cls, tables: int) -> KeyPool:
        return cls([set() for _ in range(tables)], [set() for _ in range(tables)])


def literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def stamp_of(batch: int, index: int) -> int:
    return batch * STAMP_SLOTS + index


DATE_LITERALS = tuple(
    "'" + (EPOCH + dt.timedelta(days=d)).strftime("%Y-%m-%d") + "'" for d in range(365)
)


@dataclass(slots=True)
class ValueMaker:
    """Generates one column's SQL literals from the shard's RNG; ``make`` is bound once to
    the generator's own method (no dispatch per value)."""

    col: Column
    block: str
    cum: list[float] = field(default_factory=list)  # weighted sizes: cumulative weights
    literals: tuple[str, ...] = ()
    make: Callable[[random.Random], str] = field(init=False)

    def __post_init__(self) -> None:
        g = self.col.gen
        if g.size is not None and g.size.kind == "weighted":
            total = 0.0
            for _, w in g.size.points:
                total += w
                self.cum.append(total)
        if g.kind == "choice":
            self.literals = tuple(literal(v) for v in g.choices)
        if g.kind == "date":
            self.literals = DATE_LITERALS
        makers: dict[str, Callable[[random.Random], str]] = {
            "int": self._int, "decimal": self._decimal, "float": self._float,
            "choice": self._pick, "date": self._pick, "text": self._text, "json": self._json,
            "datetime": self._datetime,
        }  # fmt: skip
        self.make = makers.get(g.kind, self._none)

    def size(self, rng: random.Random) -> int:
        s = self.col.gen.size
        assert s is not None
        if s.kind == "fixed":
            return s.points[0][0]
        if s.kind == "uniform":
            lo, hi = s.points[0][0], s.points[1][0]
            return lo + int(rng.random() * (hi - lo + 1))
        i = bisect.bisect_right(self.cum, rng.random() * self.cum[-1])
        return s.points[min(i, len(s.points) - 1)][0]

    def text(self, rng: random.Random, n: int) -> str:
        at = int(rng.random() * BLOCK_CHARS)
        if n <= BLOCK_CHARS:
            return self.block[at : at + n]
        return (self.block * (n // len(self.block) + 1))[at : at + n]

    def _int(self, rng: random.Random) -> str:
        g = self.col.gen
        return str(int(g.low) + int(rng.random() * (int(g.high) - int(g.low) + 1)))

    def _decimal(self, rng: random.Random) -> str:
        g = self.col.gen
        return f"{g.low + rng.random() * (g.high - g.low):.{g.scale}f}"

    def _float(self, rng: random.Random) -> str:
        g = self.col.gen
        return repr(g.low + rng.random() * (g.high - g.low))

    def _pick(self, rng: random.Random) -> str:
        return self.literals[int(rng.random() * len(self.literals))]

    def _text(self, rng: random.Random) -> str:
        return "'" + self.text(rng, self.size(rng)) + "'"

    def _json(self, rng: random.Random) -> str:
        n = self.size(rng)
        number = int(rng.random() * 1_000_000)
        return '\'{"n":' + str(number) + ',"s":"' + self.text(rng, max(0, n - 16)) + "\"}'"

    def _datetime(self, rng: random.Random) -> str:
        at = EPOCH + dt.timedelta(microseconds=int(rng.random() * YEAR_S * 1e6))
        digits = self.col.type.high
        text = at.strftime("%Y-%m-%d %H:%M:%S")
        return f"'{text}.{at.microsecond:06d}"[: 21 + digits] + "'" if digits else f"'{text}'"

    def _none(self, rng: random.Random) -> str:
        raise ValueError(f"no literal for generator {self.col.gen.kind!r}")  # ref: the builder's


@functools.lru_cache(maxsize=2)  # pure memo: a shard's seeding and its loop share one
def text_block(seed: int) -> str:
    """The seeded ``[a-z0-9]`` text that text and JSON values are cut from, twice over (a
    value starting anywhere in the first half fits)."""
    block = "".join(random.Random(f"block:{seed}").choices(ALPHABET, k=BLOCK_CHARS))
    return block + block


class GenericBuilder:
    """Builds one shard's transactions for a spec workload (see module docstring)."""

    def __init__(self, spec: WorkloadSpec, keys: KeySpace, seed: int) -> None:
        self.spec, self.keys = spec, keys
        self.index = {t.name: i for i, t in enumerate(spec.tables)}
        texts = any(c.gen.size is not None for t in spec.tables for c in t.columns)
        block = text_block(seed) if texts else ""
        self.makers = {t.name: [ValueMaker(c, block) for c in t.columns] for t in spec.tables}
        self.maker_of = {(t.name, m.col.name): m for t in spec.tables for m in self.makers[t.name]}
        self.heads = {t.name: self._insert_head(t) for t in spec.tables}
        self.ops = {o.name: o for o in spec.operations}
        self.unit_rows = {o.name: o.rows for o in spec.operations}
        weights = sum(o.weight for o in spec.operations) or 1
        # changes per pick on average: picks for a batch are taken in one go
        self.mean_rows = sum(o.weight * o.rows for o in spec.operations) / weights or 1.0
        self.table_of = {t.name: t for t in spec.tables}
        self.base = {name: first + keys.index for name, first, _ in keys.spec_tables}

    # -- keys ------------------------------------------------------------------------

    def key(self, table: str, k: int) -> int:
        return self.base[table] + k * self.keys.stride

    def initial_cursor(self) -> GenericCursor:
        return GenericCursor(tuple(seeded for _, _, seeded in self.keys.spec_tables))

    def pool_holding(
        self, counts: tuple[int, ...], gone: tuple[tuple[int, ...], ...] = ()
    ) -> KeyPool:
        """A pool for rows that exist before this process builds anything: their
        references were made elsewhere (seeding, a dead predecessor) and are not known,
        so every such row of a referenced table counts as referenced."""
        pool = KeyPool.empty(len(self.spec.tables))
        held = self.spec.referenced_tables
        for i, t in enumerate(self.spec.tables):
            if t.name in held:
                pool.referenced[i].update(range(counts[i]))
        for i, keys in enumerate(gone):
            pool.gone[i].update(keys)
        return pool

    # -- batches ---------------------------------------------------------------------

    def picks(self, sequence: OpSequence, n: int) -> tuple[dict[str, int], int]:
        """Operation picks holding at least ``n`` changes, and how many they hold."""
        counts: dict[str, int] = {}
        done = 0
        while done < n:  # the average pick's rows: most batches take one or two calls
            step = max(1, int((n - done) / self.mean_rows))
            for op, c in sequence.next_counts(step).items():
                counts[op] = counts.get(op, 0) + c
                done += c * self.unit_rows[op]
        return counts, done

    def build(
        self,
        sequence: OpSequence,
        n: int,
        rng: random.Random,
        cursor: GenericCursor,
        pool: KeyPool,
        batch: int,
    ) -> tuple[list[Statement], GenericCursor]:
        """One transaction of about ``n`` changes (the carry evens it out; see module doc)
        and the cursor once it commits. Keys deleted here join ``pool.gone`` at once."""
        want = max(1, n - cursor.carry)
        counts, done = self.picks(sequence, want)
        counts_now = list(cursor.counts)
        stmts: list[Statement] = []
        for op in self.spec.operations:  # statements in the spec's order
            c = counts.get(op.name, 0)
            if not c:
                continue
            for step in op.steps or (op.name,):
                stmt = self._statement(self.ops[step], c, rng, counts_now, pool, batch, len(stmts))
                if stmt is not None:
                    stmts.append(stmt)
        return stmts, GenericCursor(tuple(counts_now), max(0, done - want))

    def _statement(
        self,
        op: Operation,
        units: int,
        rng: random.Random,
        counts: list[int],
        pool: KeyPool,
        batch: int,
        position: int,
    ) -> Statement | None:
        rows = units * op.rows
        t = self.table_of[op.table]
        ti = self.index[t.name]
        stamp = stamp_of(batch, position)
        if op.kind == "insert":
            first = counts[ti]
            text, rows = self._insert_text(t, first, rows, rng, counts, pool, stamp, op.parent)
            if not rows:
                return None
            counts[ti] = first + rows
            return Statement(op.name, t.name, "insert", text, (), rows, first_k=first,
                             text=text, stamp=stamp)  # fmt: skip
        avoid = pool.referenced[ti] if op.kind == "delete" and op.unreferenced else None
        ks = pick_keys(rng, op.keys, counts[ti], rows, pool.gone[ti], avoid)
        if not ks:
            return None
        base, stride = self.base[t.name], self.keys.stride
        ids = ",".join([str(base + k * stride) for k in ks])
        if op.kind == "delete":
            pool.gone[ti].update(ks)
            text = f"DELETE FROM {t.name} WHERE {t.key} IN ({ids})"
        else:
            sets = [f"{t.version} = {self._version_value(t, stamp)}"]
            for name in op.set_columns:
                sets.append(f"{name} = {self.maker_of[t.name, name].make(rng)}")
            text = f"UPDATE {t.name} SET {', '.join(sets)} WHERE {t.key} IN ({ids})"
        return Statement(op.name, t.name, op.kind, text, (), len(ks), tuple(ks), text=text,
                         stamp=stamp)  # fmt: skip

    def _insert_head(self, t: Table) -> str:
        names = [t.key, *([t.version] if t.version else []), *(c.name for c in t.columns)]
        return f"INSERT INTO {t.name} ({', '.join(names)}) VALUES "

    def _version_value(self, t: Table, stamp: int) -> str:
        """The version stamp as SQL: the number, or ``'v<key>.<stamp>'`` for a text column
        (unique per row, as a unique index on it needs)."""
        assert t.version_type is not None
        if t.version_type.family == "int":
            return str(stamp)
        return f"CONCAT('v', {t.key}, '.', {stamp})"

    def _insert_text(
        self,
        t: Table,
        first: int,
        rows: int,
        rng: random.Random,
        counts: list[int],
        pool: KeyPool,
        stamp: int,
        parent: str = "",
    ) -> tuple[str, int]:
        """The INSERT of up to ``rows`` rows from key index ``first`` on, and how many it
        holds: fewer when a row's reference finds no live parent row (all deleted)."""
        makers = self.makers[t.name]
        base, stride = self.base[t.name], self.keys.stride
        version = t.version_type.family if t.version and t.version_type else ""
        out: list[str] = []
        for j, k in enumerate(range(first, first + rows)):
            key = base + k * stride
            values = [str(key)]
            if version == "int":
                values.append(str(stamp))
            elif version:
                values.append(f"'v{key}.{stamp}'")
            for m in makers:
                g = m.col.gen
                if g.kind != "ref":
                    values.append(m.make(rng))
                    continue
                back = rows - j  # latest: row j takes the j-th of the newest ``rows``
                ref = self._parent(g.ref, parent or g.pick, back, rng, counts, pool)
                if ref is None:
                    return self.heads[t.name] + ",".join(out), len(out)
                values.append(str(ref))
            out.append("(" + ",".join(values) + ")")
        return self.heads[t.name] + ",".join(out), len(out)

    def _parent(
        self,
        table: str,
        pick: str,
        back: int,
        rng: random.Random,
        counts: list[int],
        pool: KeyPool,
    ) -> int | None:
        """A live parent row's key, marked referenced (deletes that must not break the
        foreign key leave it alone): uniform, or the ``back``-th newest (so the rows of an
        insert that follows its parents' insert in one transaction pair with them one to
        one). None if no live parent row is found."""
        pi = self.index[table]
        gone = pool.gone[pi]
        if pick == "latest":
            k = counts[pi] - back
            while k >= 0 and k in gone:
                k -= 1
            if k < 0:
                ks = pick_keys(rng, KeyChoice(), counts[pi], 1, gone, None)
                k = ks[0] if ks else -1
        else:
            ks = pick_keys(rng, KeyChoice(), counts[pi], 1, gone, None)
            k = ks[0] if ks else -1
        if k < 0:
            return None
        pool.referenced[pi].add(k)
        return self.key(table, k)

    # -- seeding ---------------------------------------------------------------------

    def seed_statement(
        self, table: str, first: int, rows: int, rng: random.Random, pool: KeyPool
    ) -> Statement:
        t = self.table_of[table]
        counts = [seeded for _, _, seeded in self.keys.spec_tables]
        text, made = self._insert_text(t, first, rows, rng, counts, pool, 0)
        if made != rows:  # the spec's checks give every referenced table seed rows
            raise ValueError(f"seed rows of {table} found no parent row")
        return Statement("seed", table, "insert", text, (), rows, first_k=first, text=text)

    # -- in-doubt commits ------------------------------------------------------------

    def commit_probe(self, stmts: list[Statement]) -> CommitProbe | None:
        """How to tell whether ``stmts`` committed: its first insert's keys exist, or its
        first update's rows carry its stamp, or its first delete's rows are gone."""
        for kind in ("insert", "update", "delete"):
            for st in stmts:
                if st.kind == kind:
                    return self._probe(st)
        return None

    def _probe(self, st: Statement) -> CommitProbe:
        t = self.table_of[st.table]
        ks = range(st.first_k, st.first_k + st.rows) if st.kind == "insert" else st.key_indices
        ids = tuple(self.key(t.name, k) for k in ks)
        sql = f"SELECT COUNT(*) FROM {t.name} WHERE {t.key} IN ({','.join('?' * len(ids))})"
        if st.kind == "update":
            sql += f" AND {t.version} = {self._version_value(t, st.stamp)}"
        if st.kind == "delete":
            return CommitProbe(sql, ids, 0, absent=len(ids))
        return CommitProbe(sql, ids, len(ids))


def pick_keys(
    rng: random.Random,
    choice: KeyChoice,
    count: int,
    n: int,
    gone: set[int],
    avoid: set[int] | None,
) -> list[int]:
    """Up to ``n`` distinct live key indices below ``count``, by ``choice``; when the draws
    keep missing, the newest eligible rows; fewer when none is found (a statement then
    changes fewer rows: the books count what it did, the rate shows the shortfall)."""
    if count <= 0:
        return []
    out: dict[int, None] = {}
    draw = _drawer(rng, choice, count)
    for _ in range(PICK_TRIES * n + 16):
        k = draw()
        if k in gone or k in out or (avoid is not None and k in avoid):
            continue
        out[k] = None
        if len(out) == n:
            return list(out)
    # the draws kept hitting rows it may not pick (deleted, referenced): take the newest
    # eligible rows instead, looking back a bounded way
    for k in range(count - 1, max(-1, count - 1 - SCAN_BACK_PER_KEY * n - 1024), -1):
        if k in gone or k in out or (avoid is not None and k in avoid):
            continue
        out[k] = None
        if len(out) == n:
            break
    return list(out)


def _drawer(rng: random.Random, c: KeyChoice, count: int):  # type: ignore[no-untyped-def]
    r = rng.random
    if c.dist == "uniform":
        return lambda: int(r() * count)
    if c.dist == "hotset":
        hot = max(1, int(count * c.hot_keys))
        return lambda: int(r() * hot) if r() < c.hot_ops else int(r() * count)
    rank = _zipf_rank(r, c.s, count)
    if c.dist == "zipfian":  # the oldest keys are the hottest
        return rank
    return lambda: count - 1 - rank()  # latest: the newest keys are the hottest


def _zipf_rank(r, s: float, count: int):  # type: ignore[no-untyped-def]
    """Ranks 0..count-1 with P(rank) roughly proportional to 1/(rank+1)^s: the inverse of
    the continuous power law's CDF over [1, count+1)."""
    top = count + 1.0
    if abs(s - 1.0) < 1e-9:
        return lambda: min(count - 1, int(top ** r()) - 1)
    a = 1.0 - s
    span = top**a - 1.0
    return lambda: min(count - 1, int((span * r() + 1.0) ** (1.0 / a)) - 1)
