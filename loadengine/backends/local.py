"""The local process backend: one ``spawn``-ed OS process per shard, one pipe back each.

With ``--processes P`` below the shard count, the shards are dealt to P processes
(``plan.process_groups``) and each process runs its shards on threads, one thread per
shard: each keeps its own connection, keys, journal and messages, exactly as alone in
a process (the driver's C extension releases the GIL during a round trip). With
``--multiplex`` a process runs its shards on one thread instead, each on a greenlet of a
``hub.Hub``, its round trips through ``wire.WireSession``: the same loop, the same
messages, no thread switch between shards. A replacement for a dead shard is always a
process of its own.

Each process writes its shards' messages, pickled, to a pipe of its own (``Outbox``); the
coordinator waits on all the pipes with one ``poll``. (A shared ``multiprocessing.Queue``
cost the coordinator a lock, a semaphore and a new selector per message read, and a
process killed half-way through a write could garble what every other shard sent after
it; a pipe of one's own loses only the dead process's last, partial message, which its
journal recovers.)

Implements the ``coordinator.Transport`` protocol. Nothing here knows about rates,
merging or results; it only starts processes and carries ``messages`` objects.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing as mp
import os
import pickle
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loadengine.core.clock import Clock, SystemClock
from loadengine.core.dsn import Dsn
from loadengine.core.messages import ShardFailed, ShardMessage, ShardReady
from loadengine.core.plan import ShardPlan, process_groups
from loadengine.run.resources import NodeUsage, ProcessMeter, ShardUsage, node_usage

if TYPE_CHECKING:
    from loadengine.shard.loop import Executor

GO_POLL_S = 0.05
PIPE_BYTES = 1 << 20  # a message pipe's capacity (Linux's default limit for a user): a
# shard's ``put`` blocks only when the coordinator has not read this much of its messages
HUB_GO_POLL_NS = 2_000_000  # on a hub, the wait for ``go`` is a poll: look often
STOP_POLL_NS = 5_000_000


@dataclass(frozen=True)
class ShardIO:
    """Where a shard blocks: its session (round trips), its clock (pauses) and the wait
    for the common release (``go``; True once released); ``multiplexed`` for the driver
    line of its results (``database.driver_info``)."""

    session: Callable[[Dsn, str], Executor]
    clock: Clock
    released: Callable[[Any], bool]
    multiplexed: bool = False


def _thread_io() -> ShardIO:
    from loadengine.server.database import Session

    return ShardIO(Session, SystemClock(), lambda go: bool(go.wait(GO_POLL_S)))


def _hub_io(hub: Any) -> ShardIO:
    from loadengine.shard.hub import HubClock
    from loadengine.shard.wire import WireSession

    clock = HubClock(hub)

    def released(go: Any) -> bool:
        if go.is_set():
            return True
        clock.sleep_ns(HUB_GO_POLL_NS)
        return bool(go.is_set())

    return ShardIO(lambda dsn, _protocol: WireSession(dsn, hub), clock, released, True)


class Outbox:
    """A shard process's end of its pipe to the coordinator. ``put`` writes a message
    whole, under a lock (a process's shards on threads share it). With the coordinator
    gone there is no one to tell: the message is dropped (the journal keeps the facts)
    and the shard stops at its next look at ``stop``."""

    def __init__(self, conn: Any) -> None:
        self._conn, self._lock = conn, threading.Lock()

    def put(self, msg: ShardMessage) -> bool:
        """True once written; False if the coordinator has gone."""
        data = pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                self._conn.send_bytes(data)
            except BrokenPipeError:
                return False
        return True


def message_pipe(ctx: Any) -> tuple[Any, Any]:
    """(read end, write end) of a process's message pipe, ``PIPE_BYTES`` deep where the
    system allows (64 KiB by default: one second of a busy shard's update keys)."""
    reader, writer = ctx.Pipe(duplex=False)
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not Linux
        fcntl.fcntl(reader.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return reader, writer


def shard_process_main(
    plans: list[ShardPlan], conn: Any, stop_event: Any, go: Any, start: Any, multiplex: bool
) -> None:
    """Entry point of a shard process (one shard, or several on threads or on a hub).
    Never raises: a shard's failure becomes its ``ShardFailed``."""
    out = Outbox(conn)
    # The coordinator owns Ctrl-C/SIGTERM and stops shards through ``stop_event`` so that
    # in-flight transactions finish and are counted (or rolled back and not counted).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()
    checked = [0, False]  # (monotonic ns of the last look, its answer)

    def stop() -> bool:
        # Looked up at most every STOP_POLL_NS: a look costs semaphore calls and a
        # syscall, and the loop asks once per transaction (thousands of times a second).
        now = time.monotonic_ns()
        if now - checked[0] >= STOP_POLL_NS:
            checked[0], checked[1] = now, stop_event.is_set() or os.getppid() != parent
        return bool(checked[1])

    if multiplex:
        from loadengine.shard.hub import Hub

        hub = Hub()
        io = _hub_io(hub)
        for plan in plans:
            hub.spawn(_guarded, plan, out, stop, go, start, io)
        hub.run()
        return
    if len(plans) == 1:
        _guarded(plans[0], out, stop, go, start, _thread_io())
        return
    import loadengine.server.database  # noqa: F401 - the driver, loaded once before the threads

    threads = [
        threading.Thread(
            target=_guarded, args=(plan, out, stop, go, start, _thread_io()), daemon=True
        )
        for plan in plans
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _guarded(plan: ShardPlan, out: Any, stop: Any, go: Any, start: Any, io: ShardIO) -> None:
    try:
        _run_shard(plan, out, stop, go, start, io)
    except Exception as exc:
        error_class = getattr(exc, "error_class", "internal")
        out.put(ShardFailed(plan.index, error_class, str(exc).splitlines()[0][:300]))


def _run_shard(plan: ShardPlan, out: Any, stop: Any, go: Any, start: Any, io: ShardIO) -> None:
    # Imported here: the driver is loaded in the shard process only, after spawn.
    from loadengine.core.clock import monotonic_from_unix
    from loadengine.core.dsn import parse_dsn
    from loadengine.server.database import driver_info
    from loadengine.shard.journal import Journal, path_for
    from loadengine.shard.loop import ShardLoop, seed_keys

    session = io.session(parse_dsn(plan.dsn), plan.protocol)
    journal = None
    if plan.journal_dir is not None:
        journal = Journal(path_for(plan.journal_dir, plan.index, plan.generation))
    try:
        setup = seed_keys(plan, session) if plan.resume is None else {}
        driver = driver_info(io.multiplexed).implementation
        out.put(ShardReady(plan.index, os.getpid(), socket.gethostname(), setup, driver))
        while not io.released(go):
            if stop():
                return
        clock = io.clock
        loop = ShardLoop(plan, session, out.put, stop, clock, journal)
        loop.run(monotonic_from_unix(clock, start.value))
    finally:
        session.close()
        if journal is not None:
            journal.close()


class LocalBackend:
    """Shards as local processes started with the ``spawn`` context."""

    name = "local"

    def __init__(
        self, node: str | None = None, processes: int | None = None, multiplex: bool = False
    ) -> None:
        self.node = node or socket.gethostname()
        self._processes = processes
        self._multiplex = multiplex
        self._meter = ProcessMeter(self.node)
        self._ctx = mp.get_context("spawn")
        self._inbox = select.poll()  # the read ends of the processes' pipes
        self._readers: dict[int, Any] = {}  # by fd
        self._stop = self._ctx.Event()
        self._go = self._ctx.Event()
        self._start = self._ctx.Value("q", 0)
        self._procs: dict[int, Any] = {}
        self._sentinels = select.poll()  # of live shard processes, registered once each
        self._by_sentinel: dict[int, Any] = {}
        self._gone: set[Any] = set()  # processes seen to exit (reaped)

    def launch(self, plans: list[ShardPlan]) -> None:
        for group in process_groups(len(plans), self._processes or len(plans)):
            self._start_process([plans[i] for i in group])

    def _start_process(self, plans: list[ShardPlan]) -> None:
        first, last = plans[0].index, plans[-1].index
        reader, writer = message_pipe(self._ctx)
        proc = self._ctx.Process(
            target=shard_process_main,
            args=(plans, writer, self._stop, self._go, self._start, self._multiplex),
            name=f"loadengine-shard-{first}" + (f"-{last}" if last != first else ""),
            daemon=True,
        )
        try:
            proc.start()
        except BaseException:
            reader.close()
            raise
        finally:
            writer.close()  # the process holds the only write end: its exit is an end of file
        self._listen(reader)
        self._sentinels.register(proc.sentinel, select.POLLIN)
        self._by_sentinel[proc.sentinel] = proc
        for plan in plans:
            self._procs[plan.index] = proc

    def restart(self, plan: ShardPlan) -> None:
        """Start a replacement process for a dead shard (it joins the common start)."""
        old = self._procs.get(plan.index)
        if old is not None:
            old.join(0.1)
            if old.pid is not None:
                self._meter.forget(old.pid)
        self._start_process([plan])

    def release(self, start_unix_ns: int) -> None:
        self._start.value = start_unix_ns
        self._go.set()

    def poll(self, timeout_s: float) -> list[ShardMessage]:
        """Every message waiting, after up to ``timeout_s`` for the first."""
        out: list[ShardMessage] = []
        ready = self._inbox.poll(max(0, round(timeout_s * 1000)))
        while ready:
            for fd, _ in ready:
                self._receive(fd, out)
            ready = self._inbox.poll(0)
        return out

    def _listen(self, reader: Any) -> None:
        self._readers[reader.fileno()] = reader
        self._inbox.register(reader.fileno(), select.POLLIN)

    def _receive(self, fd: int, out: list[ShardMessage]) -> None:
        reader = self._readers.get(fd)
        if reader is None:  # closed meanwhile (``close`` from another thread of a Ray host)
            with contextlib.suppress(KeyError):
                self._inbox.unregister(fd)
            return
        try:
            out.append(pickle.loads(reader.recv_bytes()))
        except (EOFError, OSError):  # the process has exited (maybe half-way through a write)
            with contextlib.suppress(KeyError):
                self._inbox.unregister(fd)
            self._readers.pop(fd, None)
            reader.close()

    def request_stop(self) -> None:
        self._stop.set()

    def shard_pids(self) -> dict[int, int]:
        return {i: p.pid for i, p in self._procs.items() if p.pid is not None}

    def usage(self) -> tuple[dict[int, ShardUsage], dict[str, NodeUsage]]:
        """Shard processes and this machine, measured here (``resources``)."""
        live = {i: pid for i, pid in self.shard_pids().items() if self._procs[i] not in self._gone}
        return self._meter.read(live), {self.node: node_usage(self.node)}

    def shard_facts(self) -> dict[int, dict[str, object]]:
        return {i: {"node": self.node} for i in self._procs}

    def settle(self, plan: ShardPlan) -> bool:
        """A dead shard's journals are already in ``plan.journal_dir`` on this machine,
        and its process has exited (``exited`` said so)."""
        return True

    def exited(self) -> dict[int, int | None]:
        """Shards whose process has exited, with exit codes. The coordinator asks ten
        times a second: one ``poll`` of a poll set the sentinels joined when their
        processes started (building one per call, as ``multiprocessing.connection.wait``
        does, was a tenth of the coordinator's active time with 64 shards)."""
        for fd, _ in self._sentinels.poll(0):
            self._sentinels.unregister(fd)
            proc = self._by_sentinel.pop(fd)
            # reaps it: its exit code is known from here on (the sentinel is ready when
            # the process closes its descriptors, a moment before it can be reaped)
            proc.join(1.0)
            self._gone.add(proc)
        if not self._gone:
            return {}
        return {i: p.exitcode for i, p in self._procs.items() if p in self._gone}

    def close(self, timeout_s: float) -> None:
        self._stop.set()
        procs = list({id(p): p for p in self._procs.values()}.values())
        for proc in procs:
            proc.join(timeout_s)
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(1)
        self._meter.close()
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()
