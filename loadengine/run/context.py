"""A run's shared state: what the runner learned on the way (``RunContext``), and the
observers that run beside the load (``RunWatch``: server counters, binary-log follower,
sink follower)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadengine.core.dsn import Dsn
from loadengine.core.plan import RunPlan
from loadengine.core.stop import StopFlag
from loadengine.run import results, sink_follow
from loadengine.run.coordinator import Outcome
from loadengine.run.facts import Environment, ServerFacts
from loadengine.run.report import SinkLive
from loadengine.server import binlog, embedded
from loadengine.server import watch as server_watch
from loadengine.server.ddl import DdlRunner
from loadengine.verify.follower import FollowerHandle


@dataclass(slots=True)
class RunContext:
    """What the run learned on the way; enough to write a results file at any moment."""

    plan: RunPlan
    run_id: str
    started_at: str
    stop: StopFlag
    outcome: Outcome = field(default_factory=Outcome)
    environment: Environment = field(default_factory=Environment)
    server: ServerFacts = field(default_factory=ServerFacts)
    rates: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    embedded_server: embedded.EmbeddedServer | None = None
    watch: RunWatch | None = None
    observed: results.Observed = field(default_factory=results.Observed)
    sink: FollowerHandle | None = None  # --sink: bound before the shards seed
    work_dir: str | None = None
    thresholds_passed: bool = True


def heartbeat_on(plan: RunPlan) -> bool:
    """The heartbeat row: capture lag (--follow-binlog) and end-to-end lag (--sink)."""
    return plan.follow_binlog or plan.sink is not None


class RunWatch:
    """The server watch, the binary-log follower and the sink follower, started at the
    common start."""

    def __init__(
        self,
        dsn: Dsn,
        plan: RunPlan,
        start_pos: dict[str, Any] | None,
        flavor: str,
        sink: FollowerHandle | None = None,
        setup_changes: int = 0,
        run_id: str = "",
    ):
        self.dsn, self.plan, self.start_pos, self.flavor = dsn, plan, start_pos, flavor
        self.sink, self.setup_changes = sink, setup_changes
        self.server = server_watch.ServerWatch(dsn, heartbeat=heartbeat_on(plan))
        self.follower: binlog.Follower | None = None
        self.start_unix_ns = 0
        schedule = None if plan.spec is None else plan.spec.ddl
        self.ddl = None if schedule is None else DdlRunner(dsn, schedule, run_id)

    def begin(self, start_unix_ns: int, total_s: int) -> None:
        self.start_unix_ns = start_unix_ns
        if self.plan.follow_binlog and self.start_pos:
            self.follower = binlog.Follower(self.dsn, self.start_pos, self.flavor, start_unix_ns)
        self.server.begin(start_unix_ns, total_s)
        if self.ddl is not None:
            self.ddl.begin(start_unix_ns, total_s)
        if self.sink is not None:
            self.sink.begin(start_unix_ns)

    def server_changes(self, second: int) -> int | None:
        return self.server.server_changes(second)

    def sink_live(self, upto_s: int) -> SinkLive | None:
        if self.sink is None:
            return None
        return sink_follow.live(self.sink, upto_s, self.setup_changes)

    def finish_server(self, elapsed_s: float, obs: results.Observed) -> None:
        """Stop the heartbeats and take the closing sample: before the log's end position
        is read, so that every heartbeat counted as written lies inside the audit's
        window (one written in between once failed a clean audit: 52 seen, 53 counted)."""
        if self.ddl is not None:
            obs.ddl = self.ddl.finish()
        state = self.server.finish(elapsed_s)
        obs.server_seconds = server_watch.per_second(state)
        obs.server_counter_source = state.source
        obs.heartbeats = state.heartbeats if heartbeat_on(self.plan) else None

    def finish_follower(self, end_pos: dict[str, Any] | None, obs: results.Observed) -> None:
        if self.follower is not None:
            obs.follow = self.follower.stop(end_pos)
