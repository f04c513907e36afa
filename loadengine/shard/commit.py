"""A shard's commit policy: one transaction to a committed outcome, or to a failure.

Deadlock, lock wait timeout and a lost connection are retried up to ``plan.retries``
times with backoff; anything else (duplicate key, ...) fails the transaction at once.
After a COMMIT whose connection died, the outcome is looked up on the server
(``workload.commit_probe``), never guessed: committed, rolled back (then retried), or
unknown (counted as such, never as committed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loadengine.core.clock import Clock
from loadengine.core.plan import ShardPlan
from loadengine.core.schedule import NS_PER_S
from loadengine.core.workload import CommitProbe, Statement, commit_probe
from loadengine.server.database import RETRYABLE_CLASSES, DatabaseError, is_connection_lost

if TYPE_CHECKING:
    from loadengine.shard.loop import Counters, Executor

RECONNECT_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
RETRY_BACKOFF_S = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class CommitPolicy:
    def __init__(
        self,
        plan: ShardPlan,
        executor: Executor,
        counters: Counters,
        clock: Clock,
        stop: Callable[[], bool],
        probe_for: Callable[[list[Statement]], CommitProbe | None] | None = None,
    ) -> None:
        self.plan, self.executor, self.counters = plan, executor, counters
        self.clock, self.stop = clock, stop
        # how an in-doubt commit is looked up: the workload's (spec workloads: the builder's)
        self.probe_for = probe_for or (lambda stmts: commit_probe(stmts, plan.keys))

    def commit(self, stmts: list[Statement]) -> list[int] | None:
        """Rows changed per statement once committed; None if it did not (or cannot be
        known to have) committed. Retry policy: deadlock, lock wait timeout and a lost
        connection are retried up to ``plan.retries`` times with backoff; anything else
        (duplicate key, ...) fails the transaction at once. After a COMMIT whose
        connection died, the outcome is looked up, never guessed."""
        for attempt in range(self.plan.retries + 1):
            if attempt:
                self.counters.add_fault("retries")
                self.clock.sleep_ns(int(RETRY_BACKOFF_S[min(attempt - 1, 5)] * NS_PER_S))
            try:
                return self.executor.run_transaction(stmts)
            except DatabaseError as exc:
                retry, rows = self._after_error(exc, stmts)
            if not retry or self.stop():
                return rows
        return None

    def _after_error(
        self, exc: DatabaseError, stmts: list[Statement]
    ) -> tuple[bool, list[int] | None]:
        """(retry?, rows if it turned out committed) after a failed attempt."""
        self.counters.add_error(exc.error_class)
        lost = is_connection_lost(exc.error_class)
        if not lost:
            return exc.error_class in RETRYABLE_CLASSES, None
        if not exc.in_commit:
            return self._reconnect(), None
        outcome = self._resolve(stmts) if self._reconnect() else "unknown"
        if outcome == "committed":
            return False, [st.rows for st in stmts]
        if outcome == "unknown":
            self.counters.add_fault("ambiguous_unresolved_changes", sum(st.rows for st in stmts))
            return False, None
        return True, None

    def _resolve(self, stmts: list[Statement]) -> str:
        """After reconnecting: did the in-doubt COMMIT take effect? ``committed``,
        ``rolled_back`` (it may be retried) or ``unknown`` (nobody can tell)."""
        probe = self.probe_for(stmts)
        if probe is None:
            return "unknown"
        while True:
            try:
                done = self.executor.committed(probe)
            except DatabaseError as exc:
                self.counters.add_error(exc.error_class)
                if not is_connection_lost(exc.error_class) or not self._reconnect():
                    return "unknown"
                continue
            outcome = "committed" if done else "rolled_back"
            self.counters.add_fault(f"ambiguous_{outcome}")
            return outcome

    def _reconnect(self) -> bool:
        """Reconnect with backoff until connected (True) or told to stop (False)."""
        for attempt in range(1_000_000):
            if self.stop():
                return False
            self.clock.sleep_ns(int(RECONNECT_BACKOFF_S[min(attempt, 4)] * NS_PER_S))
            try:
                self.executor.reconnect()
                self.counters.reconnects += 1
                return True
            except DatabaseError as exc:
                self.counters.add_error(exc.error_class)
        return False
