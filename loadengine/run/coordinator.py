"""The coordinator: start shards, give them one common start, merge their deltas, print.

It talks to shards only through a ``Transport``: ``backend_local.LocalBackend`` (processes
on this machine) or ``backend_ray.RayBackend`` (Ray actors on a cluster). The logic here
is the same for both. It never touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from loadengine.core.aggregate import Aggregate, Bucket, add_changes
from loadengine.core.clock import Clock, monotonic_from_unix
from loadengine.core.messages import (
    ChangeCounts,
    ShardDelta,
    ShardDone,
    ShardFailed,
    ShardMessage,
    ShardReady,
)
from loadengine.core.plan import Resume, RunPlan, ShardPlan, window_boundaries
from loadengine.core.schedule import NS_PER_S
from loadengine.core.status import ABORTED, COMPLETED, FAILED, INTERRUPTED, Status
from loadengine.core.stop import StopFlag
from loadengine.run.report import SinkLive
from loadengine.run.resources import NodeUsage, ResourceSample, ShardUsage
from loadengine.run.supervisor import ShardFailure, Supervisor
from loadengine.run.ticker import LiveTicker
from loadengine.verify.ledger import LedgerBook

START_LEAD_NS = 300_000_000  # common start this far after release, so every shard is waiting
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 10.0
POLL_S = 0.1  # longest wait for a message; ticks and exit checks are no finer than this

# (dead process's plan, second) -> its unreported committed work and where to resume
# Recovery of a dead shard's unreported work: its plan, the second to book it to, what it
# reported (its merged bucket) and its committed update counts per table. Only I/O
# (journal, server probe) happens on the other side.
Recover = Callable[
    [ShardPlan, int, Bucket, dict[str, int], dict[str, int]], tuple[ShardDelta, Resume]
]


class Transport(Protocol):
    name: str

    def launch(self, plans: list[ShardPlan]) -> None: ...

    def restart(self, plan: ShardPlan) -> None: ...

    def release(self, start_unix_ns: int) -> None: ...

    def poll(self, timeout_s: float) -> list[ShardMessage]: ...

    def request_stop(self) -> None: ...

    def shard_pids(self) -> dict[int, int]: ...

    def exited(self) -> dict[int, int | None]: ...

    def usage(self) -> tuple[dict[int, ShardUsage], dict[str, NodeUsage]]: ...

    def shard_facts(self) -> dict[int, dict[str, object]]: ...

    def settle(self, plan: ShardPlan) -> bool: ...


class Watch(Protocol):
    """Observers of the server that run beside the load (``server_watch``, a follower)."""

    def begin(self, start_unix_ns: int, total_s: int) -> None: ...

    def server_changes(self, second: int) -> int | None: ...

    def sink_live(self, upto_s: int) -> SinkLive | None: ...


class NoWatch:
    def begin(self, start_unix_ns: int, total_s: int) -> None:
        return None

    def server_changes(self, second: int) -> int | None:
        return None

    def sink_live(self, upto_s: int) -> SinkLive | None:
        return None


@dataclass(slots=True)
class Outcome:
    """What happened, for ``results``: status, merged numbers and per-shard facts."""

    status: Status = COMPLETED
    reason: str | None = None
    aggregate: Aggregate = field(default_factory=Aggregate)
    setup_changes: ChangeCounts = field(default_factory=dict)
    ready: dict[int, ShardReady] = field(default_factory=dict)
    done: dict[int, ShardDone] = field(default_factory=dict)
    failures: list[ShardFailure] = field(default_factory=list)
    resources: list[ResourceSample] = field(default_factory=list)
    ledger: LedgerBook = field(default_factory=lambda: LedgerBook({}))
    started: bool = False
    elapsed_s: float = 0.0
    backend: str = "local"
    shard_facts: dict[int, dict[str, object]] = field(default_factory=dict)  # node, clock


class Coordinator:
    def __init__(
        self,
        plan: RunPlan,
        shard_plans: list[ShardPlan],
        transport: Transport,
        clock: Clock,
        stop: StopFlag,
        sample: Callable[[float, dict[int, ShardUsage], dict[str, NodeUsage]], ResourceSample],
        emit: Callable[[str], None],
        watch: Watch | None = None,
        recover: Recover | None = None,
    ) -> None:
        self.plan, self.shard_plans, self.transport = plan, shard_plans, transport
        self.clock, self.stop, self.sample, self.emit = clock, stop, sample, emit
        self.watch = watch or NoWatch()
        self.recover = recover
        spool = shard_plans[0].journal_dir if shard_plans else None
        self.out = Outcome(
            ledger=LedgerBook({p.index: p for p in shard_plans}, spool),
            aggregate=Aggregate(boundaries=window_boundaries(plan)),
            backend=transport.name,
        )
        self._start_ns = 0
        self.ticker = LiveTicker(plan, self.out, transport, sample, self.watch, emit)
        self.supervisor = Supervisor(
            plan, shard_plans, transport, clock, stop, self.out, recover, emit,
            self._handle, self._elapsed_ns, self._set_failed,
        )  # fmt: skip

    def run(self) -> Outcome:
        try:
            return self._run()
        finally:
            self.out.shard_facts = self.transport.shard_facts()

    def _run(self) -> Outcome:
        self.transport.launch(self.shard_plans)
        if not self._await_ready():
            self.transport.request_stop()
            return self.out
        start_unix = self.clock.unix_ns() + START_LEAD_NS
        self.transport.release(start_unix)
        self.watch.begin(start_unix, self.plan.total_s)
        self._start_ns = monotonic_from_unix(self.clock, start_unix)
        self.out.started = True
        self._main_loop()
        self.transport.request_stop()
        self._drain()
        self.out.elapsed_s = min(self.plan.total_s, self._elapsed_ns() / NS_PER_S)
        return self.out

    def _await_ready(self) -> bool:
        deadline = self.clock.now_ns() + int(READY_TIMEOUT_S * NS_PER_S)
        while len(self.out.ready) < len(self.shard_plans):
            if self.stop.is_set:
                self.out.status = INTERRUPTED
                return False
            if self.clock.now_ns() > deadline:
                self._fail("shards did not become ready in time", None)
                return False
            for msg in self.transport.poll(POLL_S):
                self._handle(msg)
            if self.out.status != COMPLETED:
                return False
            self.supervisor.check_exited(set(self.out.ready))
        return True

    def _main_loop(self) -> None:
        end_ns = self._start_ns + self.plan.total_s * NS_PER_S
        hard_deadline_ns = end_ns + int(DRAIN_TIMEOUT_S * NS_PER_S)
        stop_at_ns: int | None = None
        while self._pending():
            for msg in self.transport.poll(POLL_S):
                self._handle(msg)
            self.supervisor.check_exited(set(self.out.done))
            now = self.clock.now_ns()
            if self.stop.is_set and self.out.status == COMPLETED:
                self.out.status = INTERRUPTED
            if now > hard_deadline_ns:
                self._fail("shards did not finish in time", None)
            if self.out.status != COMPLETED and stop_at_ns is None:
                self.transport.request_stop()
                stop_at_ns = now
            if stop_at_ns is not None and now > stop_at_ns + int(DRAIN_TIMEOUT_S * NS_PER_S):
                break
            self._tick()
        self._final_tick()

    def _pending(self) -> bool:
        """Some shard has neither reported done nor died."""
        return len(self.supervisor.dead.union(self.out.done)) < len(self.shard_plans)

    def _drain(self) -> None:
        """Collect messages still in transit after every shard reported done or failed."""
        for msg in self.transport.poll(0.1):
            self._handle(msg)

    def _elapsed_ns(self) -> int:
        return self.clock.now_ns() - self._start_ns

    def _handle(self, msg: ShardMessage) -> None:
        if isinstance(msg, ShardDelta):
            self.out.aggregate.add(msg)
            self.out.ledger.add(msg)
            self._check_overload(msg.second)
        elif isinstance(msg, ShardReady):
            add_changes(self.out.setup_changes, msg.setup_changes)
            prev = self.out.ready.get(msg.shard)
            if prev is not None:  # a restarted shard: its predecessor did the seeding
                setup: ChangeCounts = {}
                add_changes(setup, prev.setup_changes)
                add_changes(setup, msg.setup_changes)
                msg = replace(msg, setup_changes=setup)
            self.out.ready[msg.shard] = msg
        elif isinstance(msg, ShardDone):
            self.out.done[msg.shard] = msg
        elif isinstance(msg, ShardFailed):
            self.supervisor.dead.add(msg.shard)
            reason = f"shard {msg.shard} failed: {msg.error_class}: {msg.message}"
            self._fail(reason, msg.shard, msg.error_class)

    def _fail(self, reason: str, shard: int | None, error_class: str | None = None) -> None:
        t_s = max(0.0, self._elapsed_ns() / NS_PER_S) if self.out.started else 0.0
        last = self.out.aggregate.shards.get(shard) if shard is not None else None
        self.out.failures.append(
            ShardFailure(
                shard, round(t_s, 3), reason, last.change_count if last else 0, error_class
            )
        )
        self._set_failed(reason)

    def _set_failed(self, reason: str) -> None:
        """The run's first failure decides its status and reason."""
        if self.out.status == COMPLETED:
            self.out.status, self.out.reason = FAILED, reason
            self.emit(f"FAILED: {reason}")

    def _check_overload(self, second: int) -> None:
        target = self.plan.target_at(second)
        if self.plan.on_overload != "abort" or not target or self.out.status != COMPLETED:
            return
        backlog = self.out.aggregate.seconds[second].backlog_changes
        if backlog > target:
            self.out.status = ABORTED
            self.out.reason = (
                f"overload: backlog of {backlog} changes at t={second + 1}s exceeds one second "
                f"of target ({target}); --on-overload abort"
            )
            self.emit(f"ABORTED: {self.out.reason}")

    def _running(self) -> list[int]:
        return self.supervisor.running()

    def _tick(self) -> None:
        self.ticker.tick(self._elapsed_ns(), self._running())

    def _final_tick(self) -> None:
        self.ticker.final(self._elapsed_ns(), self._running())
