"""loadengine.wire: the COM_QUERY packets and the OK/ERR parsing (pure)."""

from __future__ import annotations

import pytest

from loadengine import wire


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
