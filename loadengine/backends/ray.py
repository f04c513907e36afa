"""The Ray backend: each shard is a Ray actor, spread over the nodes of a Ray cluster.

Implements the ``coordinator.Transport`` protocol, like ``backend_local``; the
coordinator, the shard loop, planning and results do not know which one carries them.

- **An actor hosts a process.** Each ``ShardHost`` actor runs its shard in a fresh
  ``spawn``-ed process through ``backend_local.LocalBackend``, on the actor's node. A Ray
  worker has loaded the system OpenSSL before any of our code runs, and then the
  mysql-connector-python C extension cannot load (measured here: ``HAVE_CEXT`` False in
  an actor); a clean process loads it, so the shard's code, connections and driver are
  exactly those of the local backend. The actor relays the process's messages.
- **Placement.** Actors are created with the ``SPREAD`` strategy and one logical CPU
  each: Ray puts them on as many nodes as it can, never more shards on a node than it
  has CPUs. ``--workers`` beyond the cluster's free CPUs is refused before the start.
- **Messages.** One ``Mailbox`` actor collects every shard's ``messages`` objects; the
  coordinator keeps one ``take`` call outstanding, which returns everything as soon as
  anything arrives.
- **Common start.** The coordinator measures each actor's wall clock against its own
  once (one round trip: offset = remote - midpoint, error bound = half the round trip)
  and sends each shard the common start instant in that node's clock. The skew between
  shards is bounded by the sum of two such bounds (recorded per shard), not by NTP.
- **Faults.** A dead actor or shard process is ``exited`` (exit code None for an actor).
  ``settle`` then runs a task on the dead shard's node that waits for its process to end
  and returns its journal, so ``recovery`` reads exactly what it committed; restart
  starts a new actor with the resume point (not Ray's own actor restart, which would
  replay the old plan). If the node is gone, its journal is too: the shard fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

from loadengine.backends.local import LocalBackend
from loadengine.core.messages import ShardMessage, ShardReady
from loadengine.core.plan import ShardPlan
from loadengine.run.resources import NodeUsage, ShardUsage
from loadengine.shard.journal import path_for

INSTALL_HINT = "--backend ray needs Ray: pip install 'loadengine[ray]'"
RELAY_POLL_S = 0.02
SETTLE_TIMEOUT_S = 10.0
USAGE_TIMEOUT_S = 0.5
CALL_TIMEOUT_S = 30.0
TAKE_WAIT_S = 1.0
LAST_WORDS_WAIT_S = 0.5


class RayUnavailable(Exception):
    """One line for the user; ``usage`` says whether it is their input (exit code 2)."""

    def __init__(self, message: str, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage


@contextlib.contextmanager
def _plain_main() -> Iterator[None]:
    """``spawn`` re-runs the parent's ``__main__`` in the child; in a Ray worker that is
    Ray's worker script, which loads OpenSSL before the C extension. Hide it."""
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = saved


class Mailbox:
    """An async actor: shards put lists of messages, the coordinator takes them all."""

    def __init__(self) -> None:
        self._items: list[ShardMessage] = []
        self._arrived = asyncio.Event()

    async def put(self, items: list[ShardMessage]) -> None:
        self._items.extend(items)
        self._arrived.set()

    async def take(self, timeout_s: float) -> list[ShardMessage]:
        if not self._items and timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
        items, self._items = self._items, []
        self._arrived.clear()
        return items


class ShardHost:
    """A Ray actor on some node: runs one shard's process there and relays its messages."""

    def __init__(self, journal_dir: str) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        self.node_ip = ray.util.get_node_ip_address()
        self.node = f"{self.node_ip}/{self.node_id[:8]}"
        # The same path on every node. Made here only on another machine than the
        # coordinator's (where it already exists); then it is ours to remove at the end.
        self.made_journal_dir = not os.path.isdir(journal_dir)
        os.makedirs(journal_dir, exist_ok=True)
        self._local = LocalBackend(self.node)

    def where(self) -> tuple[dict[str, str], bool]:
        """Where this actor runs, and whether it made the journal directory there."""
        facts = {
            "node": self.node,
            "node_id": self.node_id,
            "node_ip": self.node_ip,
            "hostname": socket.gethostname(),
        }
        return facts, self.made_journal_dir

    def clock_ns(self) -> int:
        return time.time_ns()

    def run(self, plan: ShardPlan, mailbox: Any) -> int | None:
        """Start the shard's process, relay until it has exited; its exit code."""
        import ray

        with _plain_main():
            self._local.launch([plan])
        while True:
            exited = self._local.exited()  # read before the poll: then the poll drains it
            msgs = self._local.poll(0.1 if exited else RELAY_POLL_S)
            if msgs:
                ray.get(mailbox.put.remote(msgs))
            if exited:
                return exited[plan.index]

    def release(self, start_unix_ns: int) -> None:
        self._local.release(start_unix_ns)

    def request_stop(self) -> None:
        self._local.request_stop()

    def usage(self) -> tuple[dict[int, ShardUsage], dict[str, NodeUsage]]:
        return self._local.usage()

    def close(self, timeout_s: float) -> None:
        self._local.close(timeout_s)


def settle_on_node(journal_dir: str, shard: int, generation: int, pid: int | None) -> bytes:
    """A Ray task on a dead shard's node: wait until its process is gone (it stops by
    itself once its parent actor is), then return its journal."""
    import psutil

    if pid is not None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            try:
                proc.wait(SETTLE_TIMEOUT_S)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    path = path_for(journal_dir, shard, generation)
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as f:
        return f.read()


def remove_on_node(journal_dir: str) -> None:
    shutil.rmtree(journal_dir, ignore_errors=True)


def check_installed() -> None:
    """Before anything starts: the one-line hint when the [ray] extra is missing."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise RayUnavailable(INSTALL_HINT)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(INSTALL_HINT) from None
    return ray


class RayBackend:
    """Shards as Ray actors; see the module docstring."""

    name = "ray"

    def __init__(self, address: str | None, workers: int) -> None:
        self._ray = ray = _import_ray()
        self._own_runtime = address is None and not ray.is_initialized()
        try:
            if self._own_runtime:
                cpus = max(workers, os.cpu_count() or 1)
                ray.init(
                    num_cpus=cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="ERROR",
                )
            elif not ray.is_initialized():
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RayUnavailable(f"--ray-address {address!r}: {first}", usage=False) from None
        free = ray.available_resources().get("CPU", 0.0)
        if free < workers:
            self._shutdown()
            raise RayUnavailable(
                f"--workers {workers}: the Ray cluster has {free:g} free CPUs; each shard "
                "actor takes one (lower --workers or add nodes)",
                usage=False,
            )
        self._coordinator_node = ray.get_runtime_context().get_node_id()
        self._mailbox = ray.remote(num_cpus=0)(Mailbox).remote()
        self._host_cls = ray.remote(num_cpus=1, max_concurrency=4, max_restarts=0)(ShardHost)
        self._hosts: dict[int, Any] = {}
        self._runs: dict[int, Any] = {}
        self._exit: dict[int, int | None] = {}
        self._facts: dict[int, dict[str, object]] = {}
        self._offset_ns: dict[int, int] = {}
        # shard -> [(generation, node id, pid)]: where each of its journals lives
        self._history: dict[int, list[list[Any]]] = {}
        self._journal_dir: str | None = None
        self._start_unix_ns: int | None = None
        self._take: Any = None  # the outstanding Mailbox.take call
        self._dir_nodes: set[str] = set()  # nodes where an actor made the journal directory

    # -- starting ----------------------------------------------------------------------

    def launch(self, plans: list[ShardPlan]) -> None:
        ray = self._ray
        self._journal_dir = self._journal_dir or next((p.journal_dir for p in plans), None)
        hosts = {
            p.index: self._host_cls.options(scheduling_strategy="SPREAD").remote(
                p.journal_dir or ""
            )
            for p in plans
        }
        answers = ray.get([h.where.remote() for h in hosts.values()], timeout=CALL_TIMEOUT_S)
        self._dir_nodes |= {w["node_id"] for w, made in answers if made}
        for plan, (where, _) in zip(plans, answers, strict=True):
            host = hosts[plan.index]
            self._hosts[plan.index] = host
            self._exit.pop(plan.index, None)
            offset_ns, bound_ns = self._measure_clock(host)
            self._offset_ns[plan.index] = offset_ns
            self._facts[plan.index] = {
                **where,
                "clock_offset_us": offset_ns // 1000,
                "clock_offset_bound_us": bound_ns // 1000,
                "generation": plan.generation,
            }
            self._history.setdefault(plan.index, []).append(
                [plan.generation, where["node_id"], None]
            )
            self._runs[plan.index] = host.run.remote(plan, self._mailbox)

    def _measure_clock(self, host: Any) -> tuple[int, int]:
        """(remote wall clock - ours, error bound), from the fastest of three round trips."""
        best: tuple[int, int] | None = None
        for _ in range(3):
            t0 = time.time_ns()
            remote = self._ray.get(host.clock_ns.remote(), timeout=CALL_TIMEOUT_S)
            t2 = time.time_ns()
            sample = (remote - (t0 + t2) // 2, (t2 - t0) // 2)
            if best is None or sample[1] < best[1]:
                best = sample
        assert best is not None
        return best

    def restart(self, plan: ShardPlan) -> None:
        """A new actor for a dead shard; it joins the common start (already past)."""
        old = self._hosts.pop(plan.index, None)
        if old is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(old, no_restart=True)
        self.launch([plan])
        if self._start_unix_ns is not None:
            self._release({plan.index: self._hosts[plan.index]})

    def release(self, start_unix_ns: int) -> None:
        self._start_unix_ns = start_unix_ns
        self._release(self._hosts)

    def _release(self, hosts: dict[int, Any]) -> None:
        start = self._start_unix_ns or 0
        refs = [h.release.remote(start + self._offset_ns.get(i, 0)) for i, h in hosts.items()]
        self._ray.get(refs, timeout=CALL_TIMEOUT_S)

    # -- running -----------------------------------------------------------------------

    def poll(self, timeout_s: float) -> list[ShardMessage]:
        """Messages that arrived, waiting up to ``timeout_s`` for one. One ``take`` call is
        kept outstanding (it returns as soon as anything arrives, or after ``TAKE_WAIT_S``),
        so an idle poll costs a local wait, not a remote call every 50 ms. A zero timeout
        (the coordinator asking for a dead shard's last words) waits for the call in
        flight a little, since a message already in the mailbox is already on its way."""
        if self._take is None:
            self._take = self._mailbox.take.remote(TAKE_WAIT_S)
        wait_s = timeout_s if timeout_s > 0 else LAST_WORDS_WAIT_S
        ready, _ = self._ray.wait([self._take], timeout=wait_s)
        if not ready:
            return []
        msgs: list[ShardMessage] = self._ray.get(self._take)
        self._take = None
        for msg in msgs:
            if isinstance(msg, ShardReady):
                self._history[msg.shard][-1][2] = msg.pid
        return msgs

    def request_stop(self) -> None:
        refs = [host.request_stop.remote() for host in self._hosts.values()]
        with contextlib.suppress(Exception):
            self._ray.wait(refs, num_returns=len(refs), timeout=5.0)

    def shard_pids(self) -> dict[int, int]:
        """The pid of each shard's current process, once it has reported ready."""
        return {i: h[-1][2] for i, h in self._history.items() if h[-1][2] is not None}

    def exited(self) -> dict[int, int | None]:
        pending = {ref: i for i, ref in self._runs.items() if i not in self._exit}
        if pending:
            ready, _ = self._ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref in ready:
                try:
                    self._exit[pending[ref]] = self._ray.get(ref)
                except Exception:  # the actor died (killed, OOM, its node lost)
                    self._exit[pending[ref]] = None
        return dict(self._exit)

    def usage(self) -> tuple[dict[int, ShardUsage], dict[str, NodeUsage]]:
        refs = [h.usage.remote() for i, h in self._hosts.items() if i not in self._exit]
        shards: dict[int, ShardUsage] = {}
        nodes: dict[str, NodeUsage] = {}
        if not refs:
            return shards, nodes
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=USAGE_TIMEOUT_S)
        for ref in ready:
            with contextlib.suppress(Exception):
                s, n = self._ray.get(ref)
                shards.update(s)
                nodes.update(n)
        return shards, nodes

    def shard_facts(self) -> dict[int, dict[str, object]]:
        return {i: dict(f) for i, f in self._facts.items()}

    # -- faults and the end ------------------------------------------------------------

    def settle(self, plan: ShardPlan) -> bool:
        """Bring every journal of a dead shard here, after its process has ended."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = self._ray.remote(num_cpus=0, max_retries=0)(settle_on_node)
        for generation, node_id, pid in self._history.get(plan.index, []):
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            ref = task.options(scheduling_strategy=strategy).remote(
                plan.journal_dir, plan.index, generation, pid
            )
            try:
                data = self._ray.get(ref, timeout=SETTLE_TIMEOUT_S + 10)
            except Exception:
                return False
            path = path_for(plan.journal_dir or "", plan.index, generation)
            if node_id != self._coordinator_node:
                with open(path, "wb") as f:
                    f.write(data)
        return True

    def close(self, timeout_s: float) -> None:
        ray = self._ray
        self.request_stop()
        runs = [r for i, r in self._runs.items() if i not in self._exit]
        with contextlib.suppress(Exception):
            ray.wait(runs, num_returns=len(runs), timeout=timeout_s)
        self._remove_journals(self._dir_nodes - {self._coordinator_node})
        for host in self._hosts.values():
            with contextlib.suppress(Exception):
                ray.get(host.close.remote(1.0), timeout=5.0)
            with contextlib.suppress(Exception):
                ray.kill(host, no_restart=True)
        with contextlib.suppress(Exception):
            ray.kill(self._mailbox, no_restart=True)
        self._shutdown()

    def _remove_journals(self, nodes: set[str]) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        directory = self._journal_dir
        if directory is None:
            return
        task = self._ray.remote(num_cpus=0, max_retries=0)(remove_on_node)
        refs = [
            task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(
                directory
            )
            for n in nodes
        ]
        with contextlib.suppress(Exception):
            self._ray.wait(refs, num_returns=len(refs), timeout=5.0)

    def _shutdown(self) -> None:
        if self._own_runtime:
            with contextlib.suppress(Exception):
                self._ray.shutdown()
