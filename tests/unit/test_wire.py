"""loadengine.wire: the COM_QUERY packets and the OK/ERR parsing (pure)."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import TypeVar

import pytest

from loadengine.core.dsn import Dsn
from loadengine.core.workload import Statement
from loadengine.server.database import DatabaseError
from loadengine.shard import wire

T = TypeVar("T")


def test_query_packet_has_length_sequence_zero_and_command() -> None:
    assert wire.query_packets(b"COMMIT") == b"\x07\x00\x00\x00\x03COMMIT"


def test_a_payload_of_16_mib_or_more_is_split_with_rising_sequence_ids() -> None:
    sql = b"x" * (wire.MAX_PAYLOAD + 10)  # payload = 1 + len(sql)
    out = wire.query_packets(sql)
    buf = wire.PacketBuffer()
    buf.feed(out)
    first, second = buf.next_packet(), buf.next_packet()
    assert first is not None and second is not None and buf.next_packet() is None
    assert len(first) == wire.MAX_PAYLOAD and len(second) == 11
    assert out[3] == 0 and out[4 + wire.MAX_PAYLOAD + 3] == 1
    assert first + second == b"\x03" + sql


def test_a_payload_exactly_full_is_followed_by_an_empty_packet() -> None:
    out = wire.query_packets(b"y" * (wire.MAX_PAYLOAD - 1))
    assert len(out) == 4 + wire.MAX_PAYLOAD + 4
    assert out[-4:] == b"\x00\x00\x00\x01"


def test_packet_buffer_waits_for_whole_packets() -> None:
    buf = wire.PacketBuffer()
    two = b"\x02\x00\x00\x01ab" + b"\x01\x00\x00\x02c"
    buf.feed(two[:3])
    assert buf.next_packet() is None
    buf.feed(two[3:7])
    assert buf.next_packet() == b"ab"
    assert buf.next_packet() is None
    buf.feed(two[7:])
    assert buf.next_packet() == b"c"


@pytest.mark.parametrize(
    ("payload", "rows", "status"),
    [
        (b"\x00\x01\x00\x02\x00\x00\x00", 1, 0x0002),
        (b"\x00\xfc\x10\x27\xfc\xe9\x03\x0a\x00\x00\x00", 10_000, 0x000A),
        (b"\x00\xfd\x40\x42\x0f\x00\x08\x00\x00\x00", 1_000_000, 0x0008),
    ],
)
def test_ok_packet_gives_affected_rows_and_status(payload: bytes, rows: int, status: int) -> None:
    assert wire.parse_ok(payload) == (rows, status)


def test_bad_length_encoded_integer_is_refused() -> None:
    with pytest.raises(ValueError, match="0xfb"):
        wire.parse_ok(b"\x00\xfb\x00")


def test_err_packet_with_and_without_sqlstate() -> None:
    assert wire.parse_err(b"\xff\x26\x04#23000Duplicate entry '1'") == (
        1062,
        "23000",
        "Duplicate entry '1'",
    )
    assert wire.parse_err(b"\xff\x15\x04Access denied") == (1045, "", "Access denied")


def test_push_returns_a_whole_packet_and_holds_the_rest() -> None:
    buf = wire.PacketBuffer()
    assert buf.push(b"\x02\x00\x00\x01ab") == b"ab"  # exactly one packet
    assert buf.push(b"\x03\x00\x00\x01cd") is None  # one byte short
    assert buf.push(b"e\x01\x00\x00\x02f") == b"cde"  # completed, and the next one held
    assert buf.next_packet() == b"f"
    assert buf.next_packet() is None


# --- WireSession round trips against a scripted peer (a socketpair, no server) ---------


class ScriptedPeer:
    """The hub's side for one session outside a hub: each time the session waits for a
    reply, the next scripted chunk is written by the 'server' end, then the wait ends."""

    def __init__(self, server: socket.socket, chunks: list[bytes]) -> None:
        self.server, self.chunks = server, list(chunks)
        self.forgotten: list[int] = []

    def wait_readable(self, fd: int) -> None:
        if self.chunks:
            self.server.sendall(self.chunks.pop(0))
        select.select([fd], [], [], 5)

    def sleep_ns(self, duration_ns: int) -> None:
        pass

    def forget(self, fd: int) -> None:
        self.forgotten.append(fd)

    def call_blocking(self, fn: Callable[[], T]) -> T:
        return fn()

    def received(self) -> bytes:
        self.server.setblocking(False)
        try:
            return self.server.recv(1 << 20)
        except BlockingIOError:
            return b""


def _packet(payload: bytes, seq: int = 1) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def _ok(rows: int, status: int = 0x0002) -> bytes:
    return _packet(bytes([wire.OK, rows, 0]) + status.to_bytes(2, "little") + b"\0\0")


def _session(chunks: list[bytes]) -> tuple[wire.WireSession, ScriptedPeer, socket.socket]:
    client, server = socket.socketpair()
    client.setblocking(False)
    peer = ScriptedPeer(server, chunks)
    s = wire.WireSession.__new__(wire.WireSession)  # no handshake: the socket is given
    s._dsn, s._hub, s._conn = Dsn("u", "secret", "127.0.0.1", 1, "db"), peer, None
    s._sock, s._timeout_s, s._tls, s._fd = client, None, False, client.fileno()
    s._buf, s._autocommit = wire.PacketBuffer(), True
    return s, peer, client


def _stmt(text: str) -> Statement:
    return Statement("insert_customer", "customers", "insert", "", (), 1, text=text)


def test_two_statements_read_as_ok_with_more_results_then_ok() -> None:
    more = wire.SERVER_MORE_RESULTS_EXISTS | 0x0002
    session, peer, _ = _session([_ok(0), _ok(3, more) + _ok(2, more) + _ok(0)])
    assert session.run_transaction([_stmt("INSERT a"), _stmt("INSERT b")]) == [3, 2]
    sent = peer.received()
    assert b"SET autocommit=0" in sent and b"INSERT a;INSERT b;COMMIT" in sent


def test_a_reply_split_across_reads_is_put_back_together() -> None:
    reply = _ok(1)
    session, _, _ = _session([reply[:3], reply[3:6], reply[6:]])
    assert session.run_transaction([_stmt("INSERT a")]) == [1]


def test_an_unexpected_packet_loses_the_connection_and_leaves_the_commit_in_doubt() -> None:
    eof = _packet(b"\xfe\x00\x00\x02\x00")  # nothing a change is answered with
    session, peer, client = _session([eof])
    fd = client.fileno()
    with pytest.raises(DatabaseError) as excinfo:
        session.run_transaction([_stmt("INSERT a")])
    assert excinfo.value.error_class == "connection_lost"
    assert excinfo.value.in_commit is True
    assert "0xfe" in str(excinfo.value)
    assert client.fileno() == -1  # closed: what follows on it cannot be trusted
    assert peer.forgotten == [fd]  # ... and the hub told first, its number may be reused
    session.close()
    assert peer.forgotten == [fd, -1]


def test_a_socket_number_is_forgotten_once_however_often_the_session_closes() -> None:
    """A reconnect that fails closes the session again: by then another task's socket or
    pipe may have the old number, and forgetting it would strand that task."""
    session, peer, client = _session([])
    fd = client.fileno()
    session.close()
    session.close()
    assert peer.forgotten == [fd, -1]


def test_a_peer_that_closes_is_a_lost_connection() -> None:
    session, peer, _ = _session([])
    peer.server.close()
    with pytest.raises(DatabaseError) as excinfo:
        session.run_transaction([_stmt("INSERT a")])
    assert excinfo.value.error_class == "connection_lost"


def test_an_err_packet_rolls_back_and_raises_classified_without_the_password() -> None:
    err = _packet(b"\xff" + (1062).to_bytes(2, "little") + b"#23000Duplicate entry secret")
    session, peer, _ = _session([err, _ok(0)])
    with pytest.raises(DatabaseError) as excinfo:
        session.run_transaction([_stmt("INSERT a")])
    assert excinfo.value.in_commit is True
    assert "1062 (23000)" in str(excinfo.value) and "secret" not in str(excinfo.value)
    assert b"ROLLBACK" in peer.received()
