"""loadengine.hub: tasks on greenlets, resumed by socket readiness and by timers.

Real sockets (``socketpair``) and the real monotonic clock, with waits of a few ms: the
assertions are about order and about who is resumed, never about speed."""

from __future__ import annotations

import socket
import threading

import greenlet
import pytest

from loadengine.shard.hub import Hub, HubClock, HubError

MS = 1_000_000


def test_timers_resume_tasks_in_due_order() -> None:
    hub, woke = Hub(), []

    def sleeper(name: str, ms: int) -> None:
        hub.sleep_ns(ms * MS)
        woke.append(name)

    for name, ms in (("c", 30), ("a", 10), ("b", 20)):
        hub.spawn(sleeper, name, ms)
    hub.run()
    assert woke == ["a", "b", "c"]


def test_a_task_waiting_on_a_socket_resumes_when_data_arrives() -> None:
    hub, events = Hub(), []
    left, right = socket.socketpair()
    left.setblocking(False)

    def reader() -> None:
        hub.wait_readable(left.fileno())
        events.append(("read", left.recv(100)))

    def writer() -> None:
        HubClock(hub).sleep_ns(5 * MS)
        events.append(("write", b""))
        right.send(b"hello")

    hub.spawn(reader)
    hub.spawn(writer)
    hub.run()
    assert events == [("write", b""), ("read", b"hello")]
    left.close()
    right.close()


def test_many_sockets_each_resume_only_their_own_task() -> None:
    hub, got = Hub(), {}
    pairs = [socket.socketpair() for _ in range(8)]

    def reader(i: int) -> None:
        sock = pairs[i][0]
        sock.setblocking(False)
        hub.wait_readable(sock.fileno())
        got[i] = sock.recv(100)

    def writer() -> None:
        for i in reversed(range(8)):
            hub.sleep_ns(1 * MS)
            pairs[i][1].send(b"%d" % i)

    for i in range(8):
        hub.spawn(reader, i)
    hub.spawn(writer)
    hub.run()
    assert got == {i: b"%d" % i for i in range(8)}
    for a, b in pairs:
        a.close()
        b.close()


def test_a_closed_peer_while_nobody_waits_is_dropped_not_spun_on() -> None:
    hub, rounds = Hub(), []
    left, right = socket.socketpair()
    left.setblocking(False)

    def task() -> None:
        right.send(b"x")
        hub.wait_readable(left.fileno())
        left.recv(10)
        right.close()  # readable (EOF) from now on, but nobody waits for it
        for _ in range(3):
            hub.sleep_ns(5 * MS)
            rounds.append(1)

    hub.spawn(task)
    hub.run()
    assert rounds == [1, 1, 1]
    assert left.fileno() not in hub._watched  # dropped at its first idle wake-up
    left.close()


def test_an_exception_in_a_task_ends_the_run() -> None:
    hub = Hub()

    def bad() -> None:
        hub.sleep_ns(0)
        raise RuntimeError("boom")

    hub.spawn(bad)
    with pytest.raises(RuntimeError, match="boom"):
        hub.run()


def test_waiting_outside_run_is_an_error() -> None:
    with pytest.raises(HubError):
        Hub().sleep_ns(0)


def test_tasks_that_never_wait_and_tasks_that_do_all_end() -> None:
    hub, done = Hub(), []
    hub.spawn(done.append, "quick")

    def slow() -> None:
        hub.sleep_ns(2 * MS)
        done.append("slow")

    hub.spawn(slow)
    hub.spawn(done.append, "quick2")
    hub.run()
    assert done == ["quick", "quick2", "slow"]


def test_a_blocking_call_runs_on_a_thread_while_the_other_tasks_go_on() -> None:
    hub, ticks, got = Hub(), [], []
    release = threading.Event()

    def blocked() -> None:  # e.g. the driver's connect to a server that does not answer
        got.append(hub.call_blocking(lambda: release.wait(5) and "connected"))

    def ticker() -> None:
        for i in range(20):
            hub.sleep_ns(1 * MS)
            ticks.append(i)
        release.set()  # only the other task's progress can end the blocking call

    hub.spawn(blocked)
    hub.spawn(ticker)
    hub.run()
    assert ticks == list(range(20)) and got == ["connected"]


def test_a_blocking_call_that_raises_raises_in_its_task() -> None:
    hub, caught = Hub(), []

    def fails() -> None:
        raise ConnectionRefusedError("no server")

    def task() -> None:
        try:
            hub.call_blocking(fails)
        except ConnectionRefusedError as exc:
            caught.append(str(exc))

    hub.spawn(task)
    hub.run()
    assert caught == ["no server"]
    assert not any(t.name == "hub-blocking-call" for t in threading.enumerate())


def test_a_task_killed_while_its_blocking_call_runs_does_not_wait_for_the_call() -> None:
    """If the hub gives up (another task raised) and the waiting task is thrown out, the
    call is left to finish on its thread: the hub's thread does not wait for it."""
    hub, release = Hub(), threading.Event()

    def blocked() -> None:
        hub.call_blocking(lambda: release.wait(10))

    def fails() -> None:
        hub.sleep_ns(1 * MS)
        raise RuntimeError("another shard failed")

    hub.spawn(blocked)
    hub.spawn(fails)
    with pytest.raises(RuntimeError):
        hub.run()
    waiting = hub._tasks[0]
    waiting.throw(greenlet.GreenletExit)  # what collecting the abandoned task does
    assert waiting.dead
    calls = [t for t in threading.enumerate() if t.name == "hub-blocking-call"]
    assert len(calls) == 1 and calls[0].is_alive()  # not joined: still in its call
    release.set()
    calls[0].join(5)
    assert not calls[0].is_alive()
