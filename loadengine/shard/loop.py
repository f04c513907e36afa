"""One shard: seed its keys, then run the open-model paced loop and report every second.

The loop knows nothing about processes or queues: it gets a ``send`` callable, a ``stop``
callable, a clock and an executor (a ``database.Session``). A backend wraps it in a
process (``backend_local``) or, later, something else.

Pacing: batch ``k`` is due at ``start + schedule.offset_ns(k)`` (absolute, never
accumulated). Latency is measured from that intended time; service time from the moment
the batch was actually sent. A change counts only once its commit was acknowledged.

Small transactions are built a few at a time while the shard is back to back
(unthrottled or behind): between two round trips a shard process has been asleep while
the server ran, its caches are cold, and any Python work then costs several times what
it costs in a burst. So the burst's journal intents go out in one write, its
transactions are sent one after another with only the round trip and the journal ack
between them (``_burst``), and they are booked afterwards, exactly as one at a time. A
transaction that fails for good discards what was built after it (its keys assumed it
committed) and rewinds the operation sequence.
"""

from __future__ import annotations

import random
import sys
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from loadengine.core import histogram
from loadengine.core.clock import Clock
from loadengine.core.generic import GenericBuilder, GenericCursor, KeyPool
from loadengine.core.messages import ChangeCounts, ShardDelta, ShardDone, ShardMessage
from loadengine.core.plan import Resume, ShardPlan
from loadengine.core.schedule import NS_PER_S, Schedule, next_batch
from loadengine.core.workload import (
    CommitProbe,
    KeyCursor,
    OpSequence,
    Statement,
    build_batch,
    insert_customers,
    insert_orders,
)
from loadengine.shard.commit import CommitPolicy
from loadengine.shard.journal import Journal

LATE_THRESHOLD_NS = 10_000_000  # a batch sent >= 10 ms after its intended time is "late"
MAX_SLEEP_NS = 50_000_000  # re-check the stop flag at least every 50 ms
SEED_CHUNK_ROWS = 500
AHEAD_CHANGES = 512  # build transactions ahead up to this many changes...
AHEAD_MAX_TXNS = 32  # ...and this many transactions


def ahead_txns(batch_size: int, on_overload: str) -> int:
    """How many transactions a shard builds at a time. One under ``drop``: a skipped
    batch would invalidate whatever was built for it."""
    if on_overload == "drop":
        return 1
    return max(1, min(AHEAD_MAX_TXNS, AHEAD_CHANGES // max(1, batch_size)))


@dataclass(slots=True)
class Txn:
    """A transaction built ahead: its journal batch number, size, tag and statements,
    the key cursor once it commits, and the operation sequence's position before it.
    Never changed once built (not ``frozen``: see ``workload.Statement``)."""

    batch: int
    changes: int
    tag: str
    stmts: list[Statement]
    after: KeyCursor | GenericCursor
    ops_before: tuple[int, ...]


# A transaction sent: (txn, intended ns, sent ns, done ns, rows per statement or None)
Sent = tuple[Txn, int, int, int, list[int] | None]


class Executor(Protocol):
    def run_transaction(self, stmts: list[Statement]) -> list[int]: ...

    def reconnect(self) -> None: ...

    def committed(self, probe: CommitProbe) -> bool: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Counters:
    """Mutable per-second accumulator inside a shard; ``take`` emits a delta and resets."""

    changes: ChangeCounts = field(default_factory=dict)
    statements: int = 0
    transactions: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    late_batches: int = 0
    missed_changes: int = 0
    reconnects: int = 0
    latency_us: dict[int, int] = field(default_factory=dict)
    service_us: dict[int, int] = field(default_factory=dict)
    updated: dict[str, array[int]] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, array[int]] = field(default_factory=dict)

    def add_commit(self, stmts: list[Statement], rows: list[int]) -> int:
        for stmt, n in zip(stmts, rows, strict=True):
            kinds = self.changes.setdefault(stmt.table, {})
            kinds[stmt.kind] = kinds.get(stmt.kind, 0) + n
            if stmt.key_indices:
                keys = self.updated if stmt.kind == "update" else self.deleted
                keys.setdefault(stmt.table, array("I")).extend(stmt.key_indices)
        self.statements += len(stmts)
        self.transactions += 1
        return sum(rows)

    def add_error(self, error_class: str) -> None:
        self.errors[error_class] = self.errors.get(error_class, 0) + 1

    def add_fault(self, name: str, n: int = 1) -> None:
        self.faults[name] = self.faults.get(name, 0) + n

    def take(self, shard: int, second: int, backlog: int) -> ShardDelta:
        delta = ShardDelta(
            shard=shard,
            second=second,
            changes=self.changes,
            statements=self.statements,
            transactions=self.transactions,
            errors=self.errors,
            late_batches=self.late_batches,
            missed_changes=self.missed_changes,
            backlog_changes=backlog,
            reconnects=self.reconnects,
            latency_us=self.latency_us,
            service_us=self.service_us,
            updated_keys={t: le_bytes(a) for t, a in self.updated.items()},
            faults=self.faults,
            deleted_keys={t: le_bytes(a) for t, a in self.deleted.items()},
        )
        self.changes, self.errors, self.latency_us, self.service_us = {}, {}, {}, {}
        self.updated, self.faults, self.deleted = {}, {}, {}
        self.statements = self.transactions = self.late_batches = 0
        self.missed_changes = self.reconnects = 0
        return delta


def le_bytes(a: array[int]) -> bytes:
    if sys.byteorder != "little":
        a = array("I", a)
        a.byteswap()
    return a.tobytes()


SEED_CHUNK_BYTES = 4 << 20  # a seed statement's text stays under this (large rows)


def seed_spec_keys(plan: ShardPlan, executor: Executor) -> ChangeCounts:
    """A spec workload's seed rows, table by table in the spec's order (parents first)."""
    assert plan.spec is not None
    rng = random.Random(f"seed:{plan.seed}")
    builder = GenericBuilder(plan.spec, plan.keys, plan.seed)
    pool = KeyPool.empty(len(plan.spec.tables))
    done: ChangeCounts = {}
    for table, _, n in plan.keys.spec_tables:
        chunk = max(1, min(SEED_CHUNK_ROWS, SEED_CHUNK_BYTES // plan.spec.max_row_bytes(table)))
        for first in range(0, n, chunk):
            stmt = builder.seed_statement(table, first, min(chunk, n - first), rng, pool)
            rows = executor.run_transaction([stmt])
            kinds = done.setdefault(table, {})
            kinds["insert"] = kinds.get("insert", 0) + sum(rows)
    return done


def seed_keys(plan: ShardPlan, executor: Executor) -> ChangeCounts:
    """Insert the shard's seed rows (so updates have targets); returns what was written."""
    if plan.spec is not None:
        return seed_spec_keys(plan, executor)
    rng = random.Random(f"seed:{plan.seed}")
    keys = plan.keys
    done: ChangeCounts = {}
    for table, n in (("customers", keys.seeded_customers), ("orders", keys.seeded_orders)):
        for first in range(0, n, SEED_CHUNK_ROWS):
            size = min(SEED_CHUNK_ROWS, n - first)
            if table == "customers":
                stmt = insert_customers(rng, keys, first, size)
            else:
                stmt = insert_orders(rng, keys, first, size, keys.seeded_customers)
            rows = executor.run_transaction([stmt])
            kinds = done.setdefault(table, {})
            kinds["insert"] = kinds.get("insert", 0) + sum(rows)
    return done


@dataclass(slots=True)
class LoopState:
    """Where the loop is: next batch, next second to report, and change bookkeeping."""

    batch: int = 0
    second: int = 0
    sent_changes: int = 0
    missed_changes: int = 0


class ShardLoop:
    """The paced loop of one shard. ``run`` returns when the schedule ends or on stop."""

    def __init__(
        self,
        plan: ShardPlan,
        executor: Executor,
        send: Callable[[ShardMessage], None],
        stop: Callable[[], bool],
        clock: Clock,
        journal: Journal | None = None,
    ) -> None:
        self.plan, self.executor, self.send, self.stop, self.clock = (
            plan,
            executor,
            send,
            stop,
            clock,
        )
        self.schedule = Schedule(plan.steps, plan.batch_size, plan.phase) if plan.steps else None
        self.rng = random.Random(plan.seed + 7919 * plan.generation)
        self.ops = OpSequence(plan.mix)
        self.cursor: KeyCursor | GenericCursor = KeyCursor(
            plan.keys.seeded_customers, plan.keys.seeded_orders
        )
        self.generic: GenericBuilder | None = None  # a spec workload's statement builder
        if plan.spec is not None:
            self.generic = GenericBuilder(plan.spec, plan.keys, plan.seed)
            self.cursor = self.generic.initial_cursor()
            self.pool = self.generic.pool_holding(self.cursor.counts)
        self.counters = Counters()
        self.state = LoopState()
        self.journal = journal
        self.ahead: deque[Txn] = deque()
        self.ahead_max = ahead_txns(plan.batch_size, plan.on_overload)
        self.with_params = plan.protocol == "prepared"  # the text protocol sends only text
        probe_for = None if self.generic is None else self.generic.commit_probe
        self.policy = CommitPolicy(plan, executor, self.counters, clock, stop, probe_for)
        if plan.resume is not None:
            self._resume(plan.resume)

    def _resume(self, r: Resume) -> None:
        """Continue a dead predecessor's schedule and keys (see ``journal``). A spec
        workload's pool does not know which parent rows its predecessor referenced, so
        every row that existed before this process counts as referenced."""
        self.cursor = KeyCursor(r.customers, r.orders)
        if self.generic is not None:
            self.cursor = GenericCursor(r.counts)
            self.pool = self.generic.pool_holding(r.counts, r.gone)
        self.state.batch = r.batch
        if self.schedule is not None:
            self.state.sent_changes = sum(self.schedule.changes_in(b) for b in range(r.batch))

    def run(self, start_ns: int) -> None:
        end_ns = start_ns + self.plan.total_s * NS_PER_S
        stopped = False
        if self.plan.resume is not None:  # seconds before this process are not ours
            self.state.second = max(0, (self.clock.now_ns() - start_ns) // NS_PER_S)
        while True:
            now = self.clock.now_ns()
            if now >= end_ns:
                if self._final_batch_due_at_the_end(start_ns, end_ns) and not self.stop():
                    self._send_batch(start_ns, now)  # due before the end, woken just after
                self._flush_seconds(start_ns, end_ns)
                break
            self._flush_seconds(start_ns, now)
            if self.stop():
                stopped = True
                break
            due_ns = self._next_due_ns(start_ns, end_ns)
            if due_ns > now:
                self.clock.sleep_ns(min(due_ns - now, MAX_SLEEP_NS))
                continue
            self._send_batch(start_ns, now)
            if self.ahead:
                self._burst(start_ns, end_ns)
        self._finish(start_ns, end_ns, stopped)

    def _final_batch_due_at_the_end(self, start_ns: int, end_ns: int) -> bool:
        """Only the run's last batch is left, and it fell due in the run's last
        ``LATE_THRESHOLD_NS``: a phase can put it in the last nanosecond
        (``schedule._phase_ns``), and a shard on schedule but woken a moment late would
        leave it unsent. A shard behind by more stops at the end as always."""
        sched, batch = self.schedule, self.state.batch
        if sched is None or batch != sched.batch_count - 1:
            return False
        return end_ns - (start_ns + sched.offset_ns(batch)) < LATE_THRESHOLD_NS

    def _next_due_ns(self, start_ns: int, end_ns: int) -> int:
        sched = self.schedule
        if sched is None:  # unthrottled: every batch is due from the common start on
            return start_ns
        if self.state.batch >= sched.batch_count:
            return end_ns
        return start_ns + sched.offset_ns(self.state.batch)

    def _send_batch(self, start_ns: int, now_ns: int) -> None:
        st, sched = self.state, self.schedule
        if sched is None:
            n, intended_ns = self.plan.batch_size, now_ns
        else:
            st.batch, skipped = next_batch(
                sched, st.batch, now_ns - start_ns, self.plan.on_overload
            )
            if skipped:
                missed = sum(sched.changes_in(b) for b in range(st.batch - skipped, st.batch))
                st.missed_changes += missed
                self.counters.missed_changes += missed
            n, intended_ns = sched.changes_in(st.batch), start_ns + sched.offset_ns(st.batch)
        number = st.batch + 1  # this batch's journal number: the next batch's schedule index
        behind = sched is None or (
            number < sched.batch_count and start_ns + sched.offset_ns(number) <= now_ns
        )
        txn = self._next_txn(number, n, behind)
        sent_ns = self.clock.now_ns()
        rows = self._journaled(txn, self.policy.commit(txn.stmts))
        self._book([(txn, intended_ns, sent_ns, self.clock.now_ns(), rows)])

    def _burst(self, start_ns: int, end_ns: int) -> None:
        """Send the transactions built ahead back to back while they are due, with nothing
        but the round trip and the journal between two of them, then book them all: the
        Python work between round trips is what limits small transactions (see module
        docstring). Ends at the open second's boundary, the run's end, a stop, a
        transaction not yet due or one given up. Books exactly as one at a time would."""
        clock, ahead, sched, st = self.clock, self.ahead, self.schedule, self.state
        boundary_ns = min(end_ns, start_ns + (st.second + 1) * NS_PER_S)
        sent: list[Sent] = []
        while ahead:
            now = clock.now_ns()
            if now >= boundary_ns or self.stop():
                break
            txn = ahead[0]
            intended = now if sched is None else start_ns + sched.offset_ns(txn.batch - 1)
            if intended > now:
                break
            ahead.popleft()
            rows = self._journaled(txn, self.policy.commit(txn.stmts))
            sent.append((txn, intended, now, clock.now_ns(), rows))
            if rows is None:
                break
        self._book(sent)

    def _journaled(self, txn: Txn, rows: list[int] | None) -> list[int] | None:
        """Record the outcome in the journal before anything else is sent."""
        if rows is None:  # failed for good: nothing of it counts
            if self.journal is not None:
                self.journal.abandon(txn.batch)
            self._discard_ahead()
        elif self.journal is not None:
            self.journal.ack(txn.batch, rows)
        return rows

    def _book(self, sent: list[Sent]) -> None:
        """Book transactions sent, in order, one loop for a whole burst: sent (late if
        sent ``LATE_THRESHOLD_NS`` after its intended time), then committed or failed."""
        counters, st = self.counters, self.state
        latency, service = counters.latency_us, counters.service_us
        for txn, intended_ns, sent_ns, done_ns, rows in sent:
            if sent_ns - intended_ns >= LATE_THRESHOLD_NS:
                counters.late_batches += 1
            st.batch = txn.batch
            st.sent_changes += txn.changes
            if rows is None:
                counters.add_fault("failed_changes", sum(s.rows for s in txn.stmts))
                continue
            counters.add_commit(txn.stmts, rows)
            self.cursor = txn.after
            histogram.add(latency, (done_ns - intended_ns) / 1000)
            histogram.add(service, (done_ns - sent_ns) / 1000)

    def _next_txn(self, batch: int, n: int, behind: bool) -> Txn:
        """The transaction for the batch about to be sent (journal number ``batch``, ``n``
        changes).
        Built ahead only while the next batch is already due (unthrottled, or behind): a
        shard that waits between batches journals each intent just before it sends it, so
        if it dies while waiting, no intent it never sent is left to be looked up."""
        ahead = self.ahead
        if ahead and ahead[0].batch != batch:
            self._discard_ahead()
        if not ahead:
            self._build_ahead(batch, n, self.ahead_max if behind else 1)
        return ahead.popleft()

    def _build_ahead(self, batch: int, n: int, count: int) -> None:
        """Build up to ``count`` transactions from ``batch`` on, journal their intents."""
        sched, plan = self.schedule, self.plan
        cursor: Any = self.cursor  # a KeyCursor (inventory) or a GenericCursor (spec)
        sizes = [n]
        for index in range(batch, batch + count - 1):  # schedule index = batch - 1
            if sched is not None and index >= sched.batch_count:
                break
            sizes.append(sched.changes_in(index) if sched is not None else plan.batch_size)
        prefix = f"{plan.run_token}.{plan.index}."
        for b, size in enumerate(sizes, start=batch):
            ops_before = self.ops.position()
            tag = prefix + str(b)
            if self.generic is None:  # the inventory: its cursor is a KeyCursor
                counts = self.ops.next_counts(size)
                stmts, after = build_batch(
                    counts, self.rng, plan.keys, cursor, tag, self.with_params
                )
            else:  # a spec workload: its cursor is a GenericCursor
                stmts, after = self.generic.build(self.ops, size, self.rng, cursor, self.pool, b)  # type: ignore[assignment]
            self.ahead.append(Txn(b, size, tag, stmts, after, ops_before))
            cursor = after
        if self.journal is not None:
            self.journal.intents((t.batch, t.tag, t.stmts) for t in self.ahead)

    def _discard_ahead(self) -> None:
        """Drop what was built ahead (it assumed the batches before it committed)."""
        if self.ahead:
            self.ops.rewind(self.ahead[0].ops_before)
            self.ahead.clear()

    def _backlog(self, elapsed_ns: int) -> int:
        if self.schedule is None:
            return 0
        due = self.schedule.due_changes(elapsed_ns)
        return max(0, due - self.state.sent_changes - self.state.missed_changes)

    def _flush_seconds(self, start_ns: int, now_ns: int) -> None:
        while now_ns >= start_ns + (self.state.second + 1) * NS_PER_S:
            boundary = (self.state.second + 1) * NS_PER_S
            self.send(
                self.counters.take(self.plan.index, self.state.second, self._backlog(boundary - 1))
            )
            self.state.second += 1

    def _finish(self, start_ns: int, end_ns: int, stopped: bool) -> None:
        now = min(self.clock.now_ns(), end_ns)
        if self.state.second < self.plan.total_s:  # stopped early: report the partial second
            backlog = self._backlog(now - start_ns)
            self.send(self.counters.take(self.plan.index, self.state.second, backlog))
        unsent = 0
        if self.schedule is not None:
            st = self.state
            unsent = self.schedule.total_changes - st.sent_changes - st.missed_changes
        self.send(ShardDone(self.plan.index, stopped_early=stopped, unsent_changes=unsent))
