"""Shards that die: a process that exited without saying it was done is recovered from
its journal (and the server, for an in-doubt commit), then restarted with the same keys
and schedule, or it fails the run, under ``--on-shard-failure``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from loadengine.core.aggregate import Bucket
from loadengine.core.clock import Clock
from loadengine.core.messages import ShardMessage
from loadengine.core.plan import Resume, RunPlan, ShardPlan
from loadengine.core.schedule import NS_PER_S
from loadengine.core.status import COMPLETED
from loadengine.core.stop import StopFlag

if TYPE_CHECKING:
    from loadengine.run.coordinator import Outcome, Recover, Transport

EXIT_CHECK_NS = 100_000_000  # how often dead shard processes are looked for
MAX_RESTARTS_PER_SHARD = 3


@dataclass(slots=True)
class ShardFailure:
    """A shard that failed or died, as the results file's ``failures[]`` lists it."""

    shard: int | None
    t_s: float
    reason: str
    last_changes: int
    error_class: str | None = None  # a shard that reported its failure
    exit_code: int | None = None  # a shard process that died
    pid: int | None = None
    generation: int | None = None
    recovered_changes: int | None = None
    in_doubt: dict[str, int] | None = None
    journal: str | None = None
    action: str | None = None  # "restarted" or "run failed"

    def document(self) -> dict[str, object]:
        """A death (``action`` set) always lists exit code, pid and generation, None where
        unknown (a Ray actor has no exit code); other fields only where they apply."""
        doc = {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}
        if self.action is not None:
            doc |= {"exit_code": self.exit_code, "pid": self.pid, "generation": self.generation}
        return doc


class Supervisor:
    def __init__(
        self,
        plan: RunPlan,
        shard_plans: list[ShardPlan],
        transport: Transport,
        clock: Clock,
        stop: StopFlag,
        out: Outcome,
        recover: Recover | None,
        emit: Callable[[str], None],
        handle: Callable[[ShardMessage], None],
        elapsed_ns: Callable[[], int],
        set_failed: Callable[[str], None],
    ) -> None:
        self.plan, self.transport, self.clock, self.stop = plan, transport, clock, stop
        self.out, self.recover, self.emit, self.handle = out, recover, emit, handle
        self.elapsed_ns, self.set_failed = elapsed_ns, set_failed
        self.current = {p.index: p for p in shard_plans}  # the live process's plan
        self.dead: set[int] = set()
        self.checked_ns = 0  # when ``check_exited`` last asked the transport

    def running(self) -> list[int]:
        return [i for i in self.current if i not in self.out.done and i not in self.dead]

    def check_exited(self, finished: set[int]) -> None:
        """A shard process that exited without ``ShardDone`` has died: recover, then
        restart or fail it under ``--on-shard-failure``. Looked at every
        ``EXIT_CHECK_NS`` at most: the loop comes here after every batch of messages, and
        with 64 shards asking each time took a fifth of the coordinator's active time."""
        now = self.clock.now_ns()
        if now - self.checked_ns < EXIT_CHECK_NS:
            return
        self.checked_ns = now
        for shard, code in self.transport.exited().items():
            if shard in finished or shard in self.dead:
                continue
            for msg in self.transport.poll(0.0):  # its last words may still be queued
                self.handle(msg)
            if shard not in self.out.done and shard not in self.dead:
                self._died(shard, code)

    def _died(self, shard: int, code: int | None) -> None:
        plan = self.current[shard]
        # the second its unreported work is booked to: now, but never past the run's end
        elapsed_s = self.elapsed_ns() // NS_PER_S if self.out.started else 0
        second = min(max(0, elapsed_s), max(0, self.plan.total_s - 1))
        reason = f"shard {shard} process exited unexpectedly (exit code {code})"
        last = self.out.aggregate.shards.get(shard)
        record = ShardFailure(
            shard,
            round(max(0.0, self.elapsed_ns() / NS_PER_S), 3) if self.out.started else 0.0,
            reason,
            last.change_count if last else 0,
            exit_code=code,
            pid=self.transport.shard_pids().get(shard),
            generation=plan.generation,
        )
        resume = None
        if self.recover is not None and self.out.started:
            if self.transport.settle(plan):
                reported = self.out.aggregate.shards.get(shard, Bucket())
                updates = {
                    table: n
                    for (index, table), n in self.out.ledger.update_counts.items()
                    if index == shard
                }
                deletes = {
                    table: n
                    for (index, table), n in self.out.ledger.delete_counts.items()
                    if index == shard
                }
                delta, resume = self.recover(plan, int(second), reported, updates, deletes)
                self.handle(delta)
                record.recovered_changes = delta.faults.get("recovered_changes", 0)
                faults = delta.faults.items()
                record.in_doubt = {k: v for k, v in faults if k.startswith("ambig")}
            else:
                record.journal = "unreachable (its node is gone): unreported work unknown"
        if self._may_restart(plan, resume):
            assert resume is not None
            self.current[shard] = replace(plan, generation=plan.generation + 1, resume=resume)
            self.transport.restart(self.current[shard])
            record.action = "restarted"
            self.out.failures.append(record)
            self.emit(f"SHARD {shard} DIED ({reason}); restarted with the same keys")
            return
        record.action = "run failed"
        self.out.failures.append(record)
        self.dead.add(shard)
        self.set_failed(reason)

    def _may_restart(self, plan: ShardPlan, resume: Resume | None) -> bool:
        return (
            self.plan.on_shard_failure == "restart"
            and resume is not None
            and plan.generation < MAX_RESTARTS_PER_SHARD
            and self.out.status == COMPLETED
            and not self.stop.is_set
            and self.elapsed_ns() < self.plan.total_s * NS_PER_S
        )
