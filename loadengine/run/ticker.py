"""The live line's clock: one line per log interval, once its seconds have been reported,
with the engine's, the server's and the sink's numbers, and the resources sampled then."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loadengine.core.plan import RunPlan
from loadengine.core.schedule import NS_PER_S
from loadengine.run.report import live_line
from loadengine.run.resources import ResourceSample

if TYPE_CHECKING:
    from loadengine.run.coordinator import Outcome, Watch

TICK_GRACE_NS = 200_000_000  # print a second's line this long after it ends (deltas in transit)


class LiveTicker:
    def __init__(
        self,
        plan: RunPlan,
        out: Outcome,
        transport: Any,
        sample: Callable[..., ResourceSample],
        watch: Watch,
        emit: Callable[[str], None],
    ) -> None:
        self.plan, self.out, self.transport = plan, out, transport
        self.sample, self.watch, self.emit = sample, watch, emit
        self.next_tick = 1
        self.printed_upto_s = 0
        self.printed_silent = False  # the last line printed waited for some shards

    def tick(self, elapsed_ns: int, running: list[int]) -> None:
        """Print the live line for each log interval, once its seconds have been reported."""
        interval_ns = int(self.plan.log_interval_s * NS_PER_S)
        due_ns = self.next_tick * interval_ns + TICK_GRACE_NS
        if elapsed_ns < due_ns:
            return
        upto_s = min(self.plan.total_s, int(self.next_tick * interval_ns // NS_PER_S))
        self.print_line(upto_s, elapsed_ns, running)
        self.next_tick = (elapsed_ns - TICK_GRACE_NS) // interval_ns + 1

    def final(self, elapsed_ns: int, running: list[int]) -> None:
        reported = [s for s in self.out.aggregate.seconds if s < self.plan.total_s]
        upto_s = max(reported) + 1 if reported else 0
        if upto_s > self.printed_upto_s or (self.printed_silent and upto_s):
            self.print_line(upto_s, elapsed_ns, running)  # a line that waited is printed whole

    def print_line(self, upto_s: int, elapsed_ns: int, running: list[int]) -> None:
        sample = self.sample(elapsed_ns / NS_PER_S, *self.transport.usage())
        self.out.resources.append(sample)
        server = self.watch.server_changes(upto_s - 1) if upto_s else None
        silence = self.out.aggregate.silent(running, upto_s)
        sink = self.watch.sink_live(upto_s)
        self.emit(live_line(self.plan, self.out.aggregate, upto_s, sample, server, silence, sink))
        self.printed_upto_s, self.printed_silent = upto_s, silence is not None
