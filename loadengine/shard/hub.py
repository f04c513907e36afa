"""The hub: several shards in one thread, each on a greenlet, switched at their waits.

With ``--multiplex`` the shards of one process (``--processes``) do not get a thread
each. Each runs its unchanged ``ShardLoop`` on a greenlet; where a shard would block (a
round trip: ``wire.WireSession``; a pause: ``HubClock.sleep_ns``) it hands control to
the hub, which waits for whichever socket or timer is ready first, with one ``epoll``
(Linux) for all of them, and resumes that shard. So a process wakes once for all the replies
that arrived together, and never passes a lock between threads: at batch 1 the client's
CPU per commit (most of it context switches on two shared cores) drops to about what a
raw loop costs (``benchmarks/RESULTS.md``).

A call that cannot be made non-blocking (the driver's connect and its other rare calls)
runs on a thread of its own (``call_blocking``), the task waiting for it like for a
socket, so one shard reconnecting to a server that does not answer stops no other.

Nothing here knows about shards or databases: it runs functions, sockets and timers.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import greenlet

from loadengine.core.clock import SystemClock

NS_PER_S = 1_000_000_000
T = TypeVar("T")


class HubError(RuntimeError):
    """The hub has tasks left but nothing that could ever resume them."""


class Hub:
    """Cooperative scheduler for one thread. ``spawn`` tasks, then ``run`` until all end.

    A task that raises ends the ``run`` with that exception; catch inside the task what
    must not stop the others (``backend_local`` does, per shard)."""

    def __init__(self) -> None:
        self._poll = select.epoll()  # Linux; level-triggered, one registration per socket
        self._watched: set[int] = set()
        self._waiting: dict[int, greenlet.greenlet] = {}  # fd -> task waiting to read
        self._timers: list[tuple[int, int, greenlet.greenlet]] = []  # (due ns, seq, task)
        self._seq = itertools.count()
        self._tasks: list[greenlet.greenlet] = []
        self._alive = 0
        self._main: greenlet.greenlet | None = None

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        """Add a task (before ``run``)."""
        self._tasks.append(greenlet.greenlet(lambda: fn(*args)))

    def run(self) -> None:
        self._main = greenlet.getcurrent()
        self._alive = len(self._tasks)
        for task in self._tasks:
            task.parent = self._main  # a task that ends returns here
        for task in self._tasks:
            self._resume(task)
        while self._alive:
            self._wait_and_resume()

    def _resume(self, task: greenlet.greenlet) -> None:
        task.switch()  # returns when the task waits again, or has ended
        if task.dead:
            self._alive -= 1

    def _wait_and_resume(self) -> None:
        timers = self._timers
        if not self._waiting and not timers:
            raise HubError("tasks left, but none waits for a socket or a timer")
        timeout_s = None
        if timers:
            timeout_s = max(0, timers[0][0] - time.monotonic_ns()) / NS_PER_S
        waiting = self._waiting
        for fd, _ in self._poll.poll(-1 if timeout_s is None else timeout_s):
            task = waiting.pop(fd, None)
            if task is None:  # readable while nobody waits (the peer closed): stop watching
                self._unwatch(fd)
                continue
            self._resume(task)
        now = time.monotonic_ns()
        while timers and timers[0][0] <= now:
            self._resume(heapq.heappop(timers)[2])

    def _suspend(self) -> None:
        if self._main is None:
            raise HubError("a task waited outside Hub.run")
        self._main.switch()

    def wait_readable(self, fd: int) -> None:
        """Suspend the calling task until socket ``fd`` has data (or the peer closed)."""
        self._waiting[fd] = greenlet.getcurrent()
        if fd not in self._watched:
            self._poll.register(fd, select.EPOLLIN)
            self._watched.add(fd)
        self._suspend()

    def sleep_ns(self, duration_ns: int) -> None:
        """Suspend the calling task for ``duration_ns`` (0: let the others run first)."""
        due = time.monotonic_ns() + max(0, duration_ns)
        heapq.heappush(self._timers, (due, next(self._seq), greenlet.getcurrent()))
        self._suspend()

    def call_blocking(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a call that blocks: the driver's connect, say) on a thread of its
        own and suspend the calling task until it returns or raises, as for a socket: the
        other tasks go on meanwhile. ``fn`` must not touch the hub. The thread owns the
        pipe's write end, so a task killed while it waits (its greenlet thrown out) leaves
        the call to finish on its own and never holds the hub thread."""
        result: list[Any] = []
        read_fd, write_fd = os.pipe()

        def work() -> None:
            try:
                result.append((True, fn()))
            except BaseException as exc:  # handed to the waiting task, re-raised there
                result.append((False, exc))
            finally:
                with contextlib.suppress(OSError):  # the task is gone: nobody reads
                    os.write(write_fd, b"x")
                os.close(write_fd)

        try:
            worker = threading.Thread(target=work, name="hub-blocking-call", daemon=True)
            worker.start()
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            raise
        try:
            while not result:
                self.wait_readable(read_fd)
        finally:
            self.forget(read_fd)
            os.close(read_fd)
        worker.join()  # done: it has written its result
        ok, value = result[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def forget(self, fd: int) -> None:
        """Stop watching socket ``fd`` (before it is closed)."""
        self._waiting.pop(fd, None)
        if fd >= 0:
            self._unwatch(fd)

    def _unwatch(self, fd: int) -> None:
        if fd in self._watched:
            self._watched.discard(fd)
            with contextlib.suppress(OSError):  # already closed: epoll dropped it itself
                self._poll.unregister(fd)


class HubClock(SystemClock):
    """``clock.Clock`` for a task on a hub: the system's clocks, sleeps that yield."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def sleep_ns(self, duration_ns: int) -> None:
        self._hub.sleep_ns(duration_ns)
