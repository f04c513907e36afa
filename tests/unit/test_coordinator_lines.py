"""loadengine.run.coordinator's live lines against a scripted transport on a fake clock: a
second's line names the shards whose reports are missing, and the run's last line is
printed again whole once they arrive."""

from __future__ import annotations

from loadengine.core.clock import FakeClock
from loadengine.core.messages import ShardDone, ShardMessage, ShardReady
from loadengine.core.plan import ShardPlan, shard_plans
from loadengine.core.stop import StopFlag
from loadengine.run.coordinator import Coordinator
from loadengine.run.resources import NodeUsage, ShardUsage
from tests.unit.test_aggregate import delta
from tests.unit.test_plan import make_plan
from tests.unit.test_report import SAMPLE

NS = 1_000_000_000
MS = 1_000_000


class ScriptedTransport:
    """Messages due at fixed offsets from the common start; ``poll`` waits on the fake
    clock (up to its timeout, or until the next message is due)."""

    name = "scripted"

    def __init__(self, clock: FakeClock, script: list[tuple[int, ShardMessage]]) -> None:
        self.clock, self.script = clock, sorted(script, key=lambda m: m[0])
        self.start_ns: int | None = None
        self.pending: list[ShardMessage] = [ShardReady(i, 100 + i, "h", {}) for i in (0, 1)]

    def launch(self, plans: list[ShardPlan]) -> None:
        return None

    def restart(self, plan: ShardPlan) -> None:
        raise AssertionError("no shard dies here")

    def release(self, start_unix_ns: int) -> None:
        self.start_ns = start_unix_ns - self.clock.unix_offset_ns

    def poll(self, timeout_s: float) -> list[ShardMessage]:
        out, self.pending = self.pending, []
        if out or self.start_ns is None:
            return out
        now, until = self.clock.t_ns, self.clock.t_ns + int(timeout_s * NS)
        if self.script:
            until = min(until, max(now, self.start_ns + self.script[0][0]))
        self.clock.t_ns = until
        while self.script and self.start_ns + self.script[0][0] <= until:
            out.append(self.script.pop(0)[1])
        return out

    def request_stop(self) -> None:
        return None

    def shard_pids(self) -> dict[int, int]:
        return {0: 100, 1: 101}

    def exited(self) -> dict[int, int | None]:
        return {}

    def usage(self) -> tuple[dict[int, ShardUsage], dict[str, NodeUsage]]:
        return {}, {}

    def shard_facts(self) -> dict[int, dict[str, object]]:
        return {}

    def settle(self, plan: ShardPlan) -> bool:
        return True


def lines_for(script: list[tuple[int, ShardMessage]]) -> list[str]:
    clock, lines = FakeClock(start_ns=10 * NS), []
    plan = make_plan(((200, 3),), workers=2)
    shards = shard_plans(plan, "mysql://u@127.0.0.1:3306/inventory", 1001, 10001, "tok")
    coordinator = Coordinator(
        plan,
        shards,
        ScriptedTransport(clock, script),
        clock,
        StopFlag(),
        lambda *_: SAMPLE,
        lines.append,
    )
    out = coordinator.run()
    assert out.status == "completed" and out.aggregate.total.change_count == 600
    return [ln for ln in lines if ln.startswith("[")]


def test_a_late_shard_is_named_and_the_last_line_is_printed_again_whole() -> None:
    on_time = [(s * NS + NS + 10 * MS, delta(0, s, inserts=100)) for s in range(3)]
    late = [
        (NS + 10 * MS, delta(1, 0, inserts=100)),
        (3_500 * MS, delta(1, 1, inserts=100)),
        (3_500 * MS, delta(1, 2, inserts=100)),
    ]
    done = [(3_600 * MS, ShardDone(0, False, 0)), (3_600 * MS, ShardDone(1, False, 0))]
    lines = lines_for(on_time + late + done)
    assert [ln.split("]")[0] for ln in lines] == ["[   1s", "[   2s", "[   3s", "[   3s"]
    assert "WAITING" not in lines[0] and "last 200" in lines[0]
    for ln in lines[1:3]:
        assert "last 100" in ln and "WAITING for 1/2 shards: no report since t=1s" in ln
    assert "WAITING" not in lines[3] and "changes 600" in lines[3] and "last 200" in lines[3]


def test_no_waiting_and_no_reprint_when_every_shard_reports_on_time() -> None:
    on_time = [(s * NS + NS + 10 * MS, delta(i, s, inserts=100)) for s in range(3) for i in (0, 1)]
    done = [(3_100 * MS, ShardDone(0, False, 0)), (3_100 * MS, ShardDone(1, False, 0))]
    lines = lines_for(on_time + done)
    assert len(lines) == 3 and not any("WAITING" in ln for ln in lines)


def test_failure_records_keep_their_shape() -> None:
    """A reported failure lists its error class; a death always its exit code, pid and
    generation (None where unknown), as the results file's failures[] always did."""
    from loadengine.run.supervisor import ShardFailure

    failed = ShardFailure(1, 2.5, "shard 1 failed: x: y", 10, error_class="x")
    assert failed.document() == {
        "shard": 1, "t_s": 2.5, "reason": "shard 1 failed: x: y", "last_changes": 10,
        "error_class": "x",
    }  # fmt: skip
    died = ShardFailure(0, 3.0, "exited", 5, action="restarted", generation=0)
    assert died.document()["exit_code"] is None and died.document()["generation"] == 0
    assert "error_class" not in died.document() and "journal" not in died.document()
