"""The live sink follower: ``loadengine run --sink amqp://…``.

A process of its own (``spawn``), so that decoding thousands of events a second never
takes the coordinator's interpreter. It binds a tap queue of its own to the sink's
exchange with the tables' routing keys *before the shards seed*, so setup rows are seen
too, and the user's queues keep every message. Each wall-clock second it sends a
``SinkTick`` (changes received, heartbeat lags); after the load, told how many distinct
changes the ledger holds (``SinkExpect``), it reads until all have arrived and the tap
has been quiet for a moment, or the timeout passes, then sends ``SinkFinal``.

When the broker goes away it reconnects to the same durable tap queue: messages the
broker kept arrive (unacknowledged ones again, counted as redelivered); what was lost in
flight shows as ``lost``, key by key, and the reconnect times are reported.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from loadengine.core.messages import (
    SinkBound,
    SinkExpect,
    SinkFinal,
    SinkOrigin,
    SinkPlan,
    SinkTick,
)
from loadengine.verify.sink import SinkCheck
from loadengine.verify.sink_amqp import Consumer

QUIET_AFTER_CAUGHT_UP_S = 1.0  # extras and duplicates that trail the last expected change
RECONNECT_GIVE_UP_S = 120.0


class Follower:
    """The follower's state machine; ``step`` is one turn of its loop."""

    def __init__(self, plan: SinkPlan, pipe: Connection) -> None:
        self.plan, self.pipe = plan, pipe
        # until the run starts: second -1; message age is sink-check's, not the run's
        self.check = SinkCheck(origin_us=2**62, age_us=None)
        self.consumer = Consumer(plan.url, self.check.add, plan.prefetch, plan.ack_every)
        self.reconnects: list[float] = []
        self.sent_second = -1  # the next run second to report
        self.lag_sent = 0
        self.expect: SinkExpect | None = None
        self.expect_at = 0.0
        self.caught_up: float | None = None
        self.done = False

    def open(self) -> None:
        self.consumer.connect()
        self.consumer.declare_tap(self.plan.tap_queue, self.plan.exchange, self.plan.routing_keys)
        self.consumer.consume([self.plan.tap_queue])

    def step(self) -> None:
        self.consumer.pump(0.05)
        self._tick()
        while self.pipe.poll():
            msg = self.pipe.recv()
            if isinstance(msg, SinkOrigin):
                self.check.set_origin(msg.start_unix_ns // 1000)
            elif isinstance(msg, SinkExpect):
                self.expect, self.expect_at = msg, time.monotonic()
            else:
                self.done = True
        if self.expect is not None:
            self._check_expect(self.expect)

    def _check_expect(self, expect: SinkExpect) -> None:
        now = time.monotonic()
        if self.caught_up is None and self.check.changes >= expect.changes:
            self.caught_up = time.time()
        quiet = now - self.consumer.last_message_s >= QUIET_AFTER_CAUGHT_UP_S
        if (self.caught_up is not None and quiet) or now - self.expect_at > expect.timeout_s:
            self.done = True

    def _tick(self) -> None:
        now_s = self.check.second(time.time_ns() // 1000)
        while self.sent_second < now_s:
            second = self.sent_second
            lags = tuple(lag for s, lag in self.check.lag_us[self.lag_sent :] if s == second)
            self.lag_sent += len(lags)
            changes = self.check.changes_by_second.get(second, 0)
            self.pipe.send(SinkTick(second, changes, lags))
            self.sent_second += 1

    def reconnect(self) -> None:
        self.reconnects.append(time.time())
        self.consumer.close()
        deadline = time.monotonic() + RECONNECT_GIVE_UP_S
        while True:
            try:
                self.open()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                self._tick()
                time.sleep(0.5)

    def final(self, error: str | None) -> SinkFinal:
        c = self.check
        return SinkFinal(
            observed=tuple(c.observed.items()),
            redelivered=c.redelivered,
            out_of_order=c.out_of_order,
            out_of_order_examples=tuple(c.examples["out_of_order"]),
            tombstones=c.tombstones,
            schema_changes=c.schema_changes,
            snapshot_reads=c.snapshot_reads,
            undecodable=c.undecodable,
            heartbeats=c.heartbeats,
            messages=c.messages,
            reconnects=tuple(self.reconnects),
            caught_up_unix_s=self.caught_up,
            error=error,
            redelivered_examples=tuple(c.examples["redelivered"]),
        )


def follower_main(plan: SinkPlan, pipe: Connection) -> None:
    """The process's entry point."""
    follower = Follower(plan, pipe)
    try:
        follower.open()
    except Exception as exc:
        pipe.send(follower.final(type(exc).__name__))
        return
    pipe.send(SinkBound(plan.tap_queue))
    error = None
    while not follower.done:
        try:
            follower.step()
        except (EOFError, OSError):  # the parent is gone
            break
        except Exception as exc:  # the broker went away
            try:
                follower.reconnect()
            except Exception:
                error = f"broker lost and not back within {RECONNECT_GIVE_UP_S:.0f} s: {exc!r}"
                break
    follower.consumer.delete(plan.tap_queue)
    follower.consumer.close()
    try:
        pipe.send(follower.final(error))
    except (EOFError, OSError):
        pass


class FollowerHandle:
    """The coordinator side: start the process, wait until bound, collect ticks."""

    def __init__(self, plan: SinkPlan) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.process = ctx.Process(target=follower_main, args=(plan, child), daemon=True)
        self.ticks: dict[int, SinkTick] = {}
        self.final: SinkFinal | None = None

    def start(self, timeout_s: float = 30.0) -> str | None:
        """Start and wait for the binding; returns an error text, or None."""
        self.process.start()
        if not self.pipe.poll(timeout_s):
            return f"the sink follower did not bind within {timeout_s:.0f} s"
        msg = self.pipe.recv()
        if isinstance(msg, SinkFinal):
            self.final = msg
            return f"cannot read the sink ({msg.error})"
        return None

    def begin(self, start_unix_ns: int) -> None:
        try:
            self.pipe.send(SinkOrigin(start_unix_ns))
        except (OSError, EOFError):
            pass

    def poll(self) -> None:
        while self.final is None and self.pipe.poll():
            self._take(self.pipe.recv())

    def _take(self, msg: Any) -> None:
        if isinstance(msg, SinkTick):
            self.ticks[msg.second] = msg
        elif isinstance(msg, SinkFinal):
            self.final = msg

    def finish(self, changes: int, timeout_s: float) -> SinkFinal | None:
        """Tell the follower what to wait for; block until its final report."""
        try:
            self.pipe.send(SinkExpect(changes, timeout_s))
        except (OSError, EOFError):
            return self.final
        deadline = time.monotonic() + timeout_s + 30
        while self.final is None and time.monotonic() < deadline:
            if self.pipe.poll(0.5):
                self._take(self.pipe.recv())
            elif not self.process.is_alive():
                break
        self.process.join(5)
        return self.final

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
