"""The MySQL wire protocol's text-query round trip, for multiplexed shards (``--multiplex``).

Many shards in one thread (``hub``) cannot use the driver's blocking calls for their
round trips: each call would stop every shard of the process. So the driver opens the
connection (handshake, authentication, database, client flags) and a ``WireSession`` then
sends each transaction's text as one ``COM_QUERY`` packet on the driver's own socket,
made non-blocking, and reads the server's ``OK``/``ERR`` packets itself, yielding to the
hub while it waits. Only what the text protocol's transactions need is here: statements
that change rows (never a result set), several of them in one round trip (each answered
by an ``OK`` with ``SERVER_MORE_RESULTS_EXISTS`` but the last), errors by number and
SQLSTATE, exactly as the driver would classify them. The rare paths (connecting, the
commit probe) use the driver's blocking calls, on a thread of their own through the hub
(``Waiter.call_blocking``): the other shards of the process go on meanwhile.

Pure functions (``query_packets``, ``PacketBuffer``, ``parse_ok``, ``parse_err``) are
unit-tested; the session is tested against a real server.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from functools import partial
from typing import Protocol, TypeVar

from loadengine.core.dsn import Dsn
from loadengine.core.workload import CommitProbe, Statement
from loadengine.server.database import (
    DatabaseError,
    classify_server_error,
    connect,
    probe_commit,
    scrub,
    transaction_text,
)

COM_QUERY = 0x03
MAX_PAYLOAD = 0xFFFFFF  # a longer payload travels as several packets
ONE_PACKET_QUERY = bytes([0, COM_QUERY])  # sequence id 0, then the command byte
SERVER_MORE_RESULTS_EXISTS = 0x0008
OK, ERR = 0x00, 0xFF
RECV_BYTES = 65536
LENENC_SIZES = {0xFC: 2, 0xFD: 3, 0xFE: 8}  # first byte -> bytes of the integer after it
SEND_RETRY_NS = 100_000  # a full socket buffer (a very large statement): look again soon
T = TypeVar("T")


def query_packets(sql: bytes) -> bytes:
    """``COM_QUERY`` for ``sql``: split into packets of at most ``MAX_PAYLOAD`` bytes
    (sequence ids 0, 1, ...), plus an empty one if the last is exactly full."""
    if len(sql) + 1 < MAX_PAYLOAD:  # the common case: one packet
        return (len(sql) + 1).to_bytes(3, "little") + ONE_PACKET_QUERY + sql
    payload = bytes([COM_QUERY]) + sql
    out = bytearray()
    for seq, start in enumerate(range(0, len(payload) + 1, MAX_PAYLOAD)):
        chunk = payload[start : start + MAX_PAYLOAD]
        out += len(chunk).to_bytes(3, "little") + bytes([seq & 0xFF]) + chunk
    return bytes(out)


class PacketBuffer:
    """Bytes received so far; ``next_packet`` returns one whole packet's payload or None."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def push(self, data: bytes) -> bytes | None:
        """``feed`` then ``next_packet``; when nothing is held and ``data`` is exactly one
        packet (a reply to one statement), its payload without copying through the
        buffer."""
        if (
            not self._buf
            and len(data) >= 4
            and 4 + (data[0] | data[1] << 8 | data[2] << 16) == len(data)
        ):
            return data[4:]
        self.feed(data)
        return self.next_packet()

    def next_packet(self) -> bytes | None:
        buf = self._buf
        if len(buf) < 4:
            return None
        length = buf[0] | buf[1] << 8 | buf[2] << 16
        if len(buf) < 4 + length:
            return None
        payload = bytes(buf[4 : 4 + length])
        del buf[: 4 + length]
        return payload


def _lenenc(payload: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at ``pos``: (value, position after it)."""
    first = payload[pos]
    if first < 0xFB:
        return first, pos + 1
    size = LENENC_SIZES.get(first)
    if size is None:
        raise ValueError(f"not a length-encoded integer: 0x{first:02x}")
    return int.from_bytes(payload[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def parse_ok(payload: bytes) -> tuple[int, int]:
    """(affected rows, server status flags) of an ``OK`` packet."""
    rows = payload[1]
    pos = 2
    if rows >= 0xFB:
        rows, pos = _lenenc(payload, 1)
    _, pos = _lenenc(payload, pos)  # last insert id
    status = payload[pos] | payload[pos + 1] << 8
    return rows, status


def parse_err(payload: bytes) -> tuple[int, str, str]:
    """(error number, SQLSTATE or '', message) of an ``ERR`` packet."""
    errno = payload[1] | payload[2] << 8
    if payload[3:4] == b"#":
        sqlstate, message = payload[4:9].decode("ascii", "replace"), payload[9:]
    else:
        sqlstate, message = "", payload[3:]
    return errno, sqlstate, message.decode("utf-8", "replace")


class Waiter(Protocol):
    """What a session needs from the hub: wait until a socket is readable, or a while;
    stop watching a socket about to close."""

    def wait_readable(self, fd: int) -> None: ...

    def sleep_ns(self, duration_ns: int) -> None: ...

    def forget(self, fd: int) -> None: ...

    def call_blocking(self, fn: Callable[[], T]) -> T: ...


class WireSession:
    """A ``shard.Executor`` whose round trips yield to the hub (text protocol only).

    Same semantics as ``database.Session``'s text protocol: one statement runs in
    autocommit mode (it is its own commit); several travel as one text ending in
    ``COMMIT``; the server stops at the first failing statement (then we roll back); a
    connection lost during the round trip leaves the COMMIT in doubt (``in_commit``).
    """

    def __init__(self, dsn: Dsn, hub: Waiter) -> None:
        self._dsn, self._hub = dsn, hub
        self._open()

    def _open(self) -> None:
        self._conn = self._hub.call_blocking(
            partial(connect, self._dsn, multi_statements=True, pure=True)
        )
        self._sock = self._conn._socket.sock  # the driver's socket, after the handshake
        if self._sock.family in (socket.AF_INET, socket.AF_INET6):
            # as libmysqlclient does (the pure driver does not): a statement's last
            # segment must not wait for the previous one's ACK (Nagle)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._timeout_s = self._sock.gettimeout()  # the driver's, for its own calls
        self._tls = isinstance(self._sock, ssl.SSLSocket)
        self._sock.setblocking(False)
        self._fd = self._sock.fileno()
        self._buf = PacketBuffer()
        self._autocommit = False

    def run_transaction(self, stmts: list[Statement]) -> list[int]:
        self._set_autocommit(len(stmts) == 1)
        return self._round_trip(transaction_text(stmts).encode(), True)[: len(stmts)]

    def _set_autocommit(self, on: bool) -> None:
        if on != self._autocommit:
            self._round_trip(b"SET autocommit=1" if on else b"SET autocommit=0", False)
            self._autocommit = on

    def _round_trip(self, sql: bytes, in_commit: bool) -> list[int]:
        """Send one query, read its ``OK``s; raise ``DatabaseError`` on ``ERR`` (after
        rolling back) or on a lost connection."""
        try:
            self._send(query_packets(sql))
            counts: list[int] = []
            while True:
                payload = self._next_packet()
                if payload[0] == OK:
                    rows, status = parse_ok(payload)
                    counts.append(rows)
                    if not status & SERVER_MORE_RESULTS_EXISTS:
                        return counts
                elif payload[0] == ERR:
                    errno, sqlstate, message = parse_err(payload)
                    error_class = classify_server_error(errno, sqlstate, message)
                    self._rollback_quietly()
                    text = scrub(f"{errno} ({sqlstate}): {message}", self._dsn)
                    raise DatabaseError(error_class, text, in_commit)
                else:  # nothing a change answers with: what follows cannot be trusted
                    self._forget_fd()
                    self._sock.close()
                    raise ConnectionResetError(f"unexpected packet 0x{payload[0]:02x}")
        except OSError as exc:
            raise DatabaseError("connection_lost", f"lost connection: {exc}", in_commit) from None

    def _send(self, data: bytes) -> None:
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        if sent == len(data):  # the common case: all of it at once
            return
        view = memoryview(data)[sent:]
        while view:
            try:
                view = view[self._sock.send(view) :]
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                self._hub.sleep_ns(SEND_RETRY_NS)

    def _next_packet(self) -> bytes:
        payload = self._buf.next_packet()  # one held from an earlier read
        while payload is None:
            if not (self._tls and self._sock.pending()):  # TLS may hold decrypted bytes
                self._hub.wait_readable(self._fd)
            try:
                data = self._sock.recv(RECV_BYTES)
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            if not data:
                raise ConnectionResetError("the server closed the connection")
            payload = self._buf.push(data)
        return payload

    def _rollback_quietly(self) -> None:
        with contextlib.suppress(DatabaseError):
            self._round_trip(b"ROLLBACK", False)

    def committed(self, probe: CommitProbe) -> bool:
        """As ``database.Session.committed``, through the driver (socket blocking)."""
        self._set_autocommit(False)
        self._sock.settimeout(self._timeout_s)
        try:
            return self._hub.call_blocking(partial(probe_commit, self._conn, probe, self._dsn))
        finally:
            self._sock.setblocking(False)

    def reconnect(self) -> None:
        self.close()
        self._open()

    def _forget_fd(self) -> None:
        """The hub stops watching this socket, once: after this the number may belong to
        another task's socket or pipe, so it is never forgotten again."""
        self._hub.forget(self._fd)
        self._fd = -1

    def close(self) -> None:
        self._forget_fd()
        with contextlib.suppress(Exception):  # closing a connection that may be gone
            self._sock.settimeout(self._timeout_s)
            self._conn.close()
