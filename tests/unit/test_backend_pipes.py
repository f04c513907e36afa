"""The local backend's message pipes (real pipes and processes, no database): every
message arrives whole and in order, and a process that dies half-way through a write
loses only that message, never anyone else's."""

from __future__ import annotations

import multiprocessing as mp
import os
import struct
import threading
from typing import Any

from loadengine.backends.local import LocalBackend, Outbox, message_pipe
from loadengine.core.messages import ShardDelta, ShardDone, ShardFailed


def _pipe(backend: LocalBackend) -> Any:
    reader, writer = message_pipe(mp.get_context("spawn"))
    backend._listen(reader)
    return writer


def test_a_big_delta_is_written_without_waiting_for_the_reader() -> None:
    """A second of a busy shard's update keys (here 100,000 keys, 400 KB) fits the pipe:
    the shard's ``put`` does not wait for the coordinator to read."""
    backend = LocalBackend("here")
    writer = _pipe(backend)
    keys = bytes(400_000)
    delta = ShardDelta(0, 0, {}, 1, 1, {}, 0, 0, 0, 0, updated_keys={"customers": keys})
    done = threading.Event()
    put = lambda: done.set() if Outbox(writer).put(delta) else None  # noqa: E731
    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    assert done.wait(5.0), "put blocked on a full pipe"
    assert backend.poll(1.0) == [delta]
    thread.join()
    backend.close(0.1)


def test_messages_from_several_pipes_arrive_whole_and_in_order() -> None:
    backend = LocalBackend("here")
    writers = [_pipe(backend) for _ in range(3)]
    for i, w in enumerate(writers):
        box = Outbox(w)
        for n in range(5):
            assert box.put(ShardDone(i, False, n))
    got: list[Any] = backend.poll(1.0)
    assert sorted(got, key=lambda m: (m.shard, m.unsent_changes)) == [
        ShardDone(i, False, n) for i in range(3) for n in range(5)
    ]
    for i in range(3):  # each pipe's messages in the order they were put
        assert [m.unsent_changes for m in got if m.shard == i] == list(range(5))
    assert backend.poll(0.0) == []
    backend.close(0.1)


def test_a_write_cut_short_by_death_loses_that_message_only() -> None:
    backend = LocalBackend("here")
    dying, alive = _pipe(backend), _pipe(backend)
    Outbox(dying).put(ShardDone(0, False, 1))
    # a header announcing 100 bytes, then only 10: the writer was killed mid-message
    os.write(dying.fileno(), struct.pack("!i", 100) + b"x" * 10)
    dying.close()
    Outbox(alive).put(ShardFailed(1, "internal", "still heard"))
    got = backend.poll(1.0)
    assert ShardDone(0, False, 1) in got and ShardFailed(1, "internal", "still heard") in got
    assert len(got) == 2
    Outbox(alive).put(ShardDone(1, True, 0))  # the other pipe keeps working
    assert backend.poll(1.0) == [ShardDone(1, True, 0)]
    backend.close(0.1)


def test_a_put_with_the_coordinator_gone_is_dropped_not_raised() -> None:
    reader, writer = mp.get_context("spawn").Pipe(duplex=False)
    reader.close()
    assert Outbox(writer).put(ShardDone(0, False, 0)) is False  # no BrokenPipeError
    writer.close()
