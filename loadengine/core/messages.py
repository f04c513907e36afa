"""Everything that crosses a process boundary: frozen, slotted dataclasses.

Shards send, the coordinator receives. Any transport (a multiprocessing pipe per shard
process, a Ray actor on another host) carries exactly these objects and nothing else.

Count fields are deltas since the shard's previous ``ShardDelta``, so merging is addition.
``changes`` maps table -> kind ("insert", "update", "delete") -> committed row changes.
Histograms map a ``histogram`` bucket to a count (see ``loadengine.histogram``).
``updated_keys`` maps table -> the key indices ``k`` (see ``plan.KeySpace``) of rows updated
by committed transactions, as little-endian uint32 bytes: the change ledger's raw input;
``deleted_keys`` the same for rows deleted.
Inserted keys need no list: a shard inserts its keys in order, so counts say which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ChangeCounts = dict[str, dict[str, int]]


def _by_position(msg: Any) -> tuple[type, tuple[Any, ...]]:
    """Pickled as ``cls(*fields)``: the default for a frozen, slotted dataclass sends each
    field's name and rebuilds through ``dataclasses.fields`` (20 us per ``ShardDelta``
    read here, against 15 us this way; the coordinator reads one per shard per second)."""
    return type(msg), tuple(getattr(msg, name) for name in msg.__slots__)


@dataclass(frozen=True, slots=True)
class ShardReady:
    """The shard connected, prepared its statements and seeded its keys."""

    __reduce__ = _by_position

    shard: int
    pid: int
    host: str
    setup_changes: ChangeCounts
    driver: str = ""  # "c-extension" or "pure-python": what this shard's process loaded


@dataclass(frozen=True, slots=True)
class ShardDelta:
    """What one shard did during second ``second`` (``[second, second+1)`` after start)."""

    __reduce__ = _by_position

    shard: int
    second: int
    changes: ChangeCounts
    statements: int
    transactions: int
    errors: dict[str, int]
    late_batches: int
    missed_changes: int
    backlog_changes: int
    reconnects: int
    latency_us: dict[int, int] = field(default_factory=dict)
    service_us: dict[int, int] = field(default_factory=dict)
    updated_keys: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)  # see shard.ShardLoop._commit
    deleted_keys: dict[str, bytes] = field(default_factory=dict)  # as updated_keys, deletes


@dataclass(frozen=True, slots=True)
class ShardDone:
    """The shard finished its schedule or was stopped; ``unsent_changes`` were never sent."""

    __reduce__ = _by_position

    shard: int
    stopped_early: bool
    unsent_changes: int


@dataclass(frozen=True, slots=True)
class ShardFailed:
    """The shard could not go on. ``error_class`` is a short stable name."""

    __reduce__ = _by_position

    shard: int
    error_class: str
    message: str


ShardMessage = ShardReady | ShardDelta | ShardDone | ShardFailed


# The sink follower (``verify.follower``): a process of its own beside the coordinator.
@dataclass(frozen=True, slots=True)
class SinkPlan:
    """What the follower reads: a tap queue of its own on ``exchange``, bound with
    ``routing_keys`` (one per table, and the heartbeat's), so the user's queues keep
    every message. ``url`` carries the broker's password: never printed."""

    url: str
    exchange: str
    routing_keys: tuple[str, ...]
    tap_queue: str
    prefetch: int = 2000
    ack_every: int = 500


@dataclass(frozen=True, slots=True)
class SinkBound:
    """The tap queue exists and is bound: everything published from now on is seen."""

    tap_queue: str


@dataclass(frozen=True, slots=True)
class SinkOrigin:
    """The run's common start (unix ns): the follower counts run seconds from it."""

    start_unix_ns: int


@dataclass(frozen=True, slots=True)
class SinkTick:
    """One run second at the sink (-1: everything before the start, the setup rows):
    change events received in it (redeliveries not) and the end-to-end lag of the
    heartbeats received in it."""

    __reduce__ = _by_position

    second: int
    changes: int
    lag_us: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SinkExpect:
    """The load is over: keep reading until ``changes`` distinct change events have
    arrived (and the tap has been quiet for a moment), or ``timeout_s`` passes."""

    changes: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class SinkFinal:
    """Everything the follower saw; ``observed`` is ((table, kind, key), count) pairs of
    distinct change events, the input of the ledger comparison."""

    observed: tuple[tuple[tuple[str, str, str], int], ...]
    redelivered: int
    out_of_order: int
    out_of_order_examples: tuple[str, ...]
    tombstones: int
    schema_changes: int
    snapshot_reads: int
    undecodable: int
    heartbeats: int
    messages: int
    reconnects: tuple[float, ...]  # unix times the follower lost the broker
    caught_up_unix_s: float | None  # when the expected count was reached
    error: str | None = None
    redelivered_examples: tuple[str, ...] = ()


SinkMessage = SinkBound | SinkTick | SinkFinal
