"""loadengine.messages: what crosses a process boundary arrives equal, field for field."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from loadengine.core.messages import ShardDelta, ShardDone, ShardFailed, ShardReady

DELTA = ShardDelta(
    shard=3,
    second=10,
    changes={"customers": {"insert": 50, "update": 30}, "orders": {"insert": 20}},
    statements=30,
    transactions=10,
    errors={"deadlock": 1},
    late_batches=2,
    missed_changes=4,
    backlog_changes=5,
    reconnects=1,
    latency_us={100: 3, 131: 1},
    service_us={90: 4},
    updated_keys={"customers": bytes(range(8))},
    faults={"ambiguous_committed": 1},
)


@pytest.mark.parametrize(
    "msg",
    [
        ShardReady(1, 4242, "node-a", {"customers": {"insert": 9}}, "c-extension"),
        DELTA,
        ShardDone(1, True, 17),
        ShardFailed(2, "access_denied", "no"),
    ],
)
def test_every_message_survives_pickling_field_for_field(msg: object) -> None:
    back = pickle.loads(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(back) is type(msg) and back == msg
    assert dataclasses.astuple(back) == dataclasses.astuple(msg)  # type: ignore[call-overload]


def test_field_names_do_not_travel() -> None:
    """Positional: a field's name in the bytes would mean the slower default is in use."""
    assert b"backlog_changes" not in pickle.dumps(DELTA, protocol=pickle.HIGHEST_PROTOCOL)
