"""The socketmap codec: whole input, one byte at a time, pipelined, and every framing mistake."""

from __future__ import annotations

import pytest

from mtasts.resolver.socketmap import (
    CLOSED,
    MAX_REPLY_BYTES,
    NEED_DATA,
    Malformed,
    Request,
    SocketmapReader,
    Status,
    encode_reply,
)


def events(reader: SocketmapReader) -> list[object]:
    out: list[object] = []
    while (event := reader.next_event()) not in (NEED_DATA, CLOSED):
        out.append(event)
    return out


def test_one_request_whole() -> None:
    reader = SocketmapReader()
    reader.receive_data(b"19:postfix example.com,")
    assert events(reader) == [Request("postfix", "example.com")]
    assert reader.next_event() is NEED_DATA


def test_byte_at_a_time_needs_data_until_complete() -> None:
    reader = SocketmapReader()
    wire = b"19:postfix Example.COM,"
    for byte in wire[:-1]:
        reader.receive_data(bytes([byte]))
        assert reader.next_event() is NEED_DATA
    reader.receive_data(wire[-1:])
    assert reader.next_event() == Request("postfix", "Example.COM")  # verbatim: never lower-cased here


def test_pipelined_requests_and_trailing_bytes_left_untouched() -> None:
    reader = SocketmapReader()
    reader.receive_data(b"13:postfix a.com,14:postfix .b.com,5:pos")
    assert events(reader) == [Request("postfix", "a.com"), Request("postfix", ".b.com")]
    assert reader.buffered == len(b"5:pos")


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"7:postfix,", "not '<name> <key>'"),
        (b"8:postfix ,", "not '<name> <key>'"),
        (b"8: example,", "not '<name> <key>'"),
        (b"11:postfix \xff\xfe\xfd,", "not UTF-8"),
    ],
)
def test_junk_content_gets_notfound_and_the_stream_stays_usable(wire: bytes, reason: str) -> None:
    reader = SocketmapReader()
    reader.receive_data(wire + b"13:postfix a.com,")
    first, second = events(reader)
    assert isinstance(first, Malformed)
    assert reason in first.reason
    assert not first.fatal
    assert first.reply() == b"9:NOTFOUND ,"
    assert second == Request("postfix", "a.com")


def test_oversize_request_is_skipped_without_buffering_then_the_next_one_is_read() -> None:
    reader = SocketmapReader()
    reader.receive_data(b"10001:postfix ")
    assert reader.next_event() is NEED_DATA
    for _ in range(10):  # the rest arrives in pieces; nothing of it is kept
        reader.receive_data(b"x" * 999)
        assert reader.buffered == 0
    reader.receive_data(b"x" * (10001 - 8 - 9990) + b",13:postfix a.com,")
    first, second = events(reader)
    assert isinstance(first, Malformed)
    assert not first.fatal
    assert "longer than 10000" in first.reason
    assert second == Request("postfix", "a.com")


def test_a_request_of_exactly_the_limit_is_read() -> None:
    key = "k" * (10_000 - len("postfix "))
    reader = SocketmapReader()
    reader.receive_data(b"10000:postfix " + key.encode() + b",")
    assert reader.next_event() == Request("postfix", key)


@pytest.mark.parametrize(
    "wire",
    [
        b"abc:postfix a.com,",  # not a length
        b":postfix a.com,",  # empty length
        b"1234567890123",  # ten and more digits and no colon: junk
        b"13:postfix a.com;",  # missing comma
        b"12:postfix a.com,",  # wrong length, so the comma is not where it should be
        b"postfix a.com\n",  # a line, not a netstring
    ],
)
def test_framing_errors_are_answered_perm_then_the_stream_is_closed(wire: bytes) -> None:
    reader = SocketmapReader()
    reader.receive_data(wire + b"13:postfix a.com,")
    event = reader.next_event()
    assert isinstance(event, Malformed)
    assert event.fatal
    assert event.reply().split(b":", 1)[1].startswith(b"PERM ")
    assert reader.next_event() is CLOSED
    reader.receive_data(b"13:postfix a.com,")
    assert reader.next_event() is CLOSED


def test_oversize_frame_without_its_comma_is_fatal() -> None:
    reader = SocketmapReader()
    reader.receive_data(b"10001:" + b"x" * 10001 + b";")
    event = reader.next_event()
    assert isinstance(event, Malformed)
    assert event.fatal


@pytest.mark.parametrize(
    ("status", "data", "wire"),
    [
        (Status.OK, "secure match=a.com", b"21:OK secure match=a.com,"),
        (Status.NOTFOUND, "", b"9:NOTFOUND ,"),
        (Status.TEMP, "later", b"10:TEMP later,"),
        (Status.PERM, "bad", b"8:PERM bad,"),
        (Status.TIMEOUT, "slow", b"12:TIMEOUT slow,"),
    ],
)
def test_reply_encoding(status: Status, data: str, wire: bytes) -> None:
    assert encode_reply(status, data) == wire


def test_reply_above_the_limit_is_refused() -> None:
    encode_reply(Status.OK, "x" * (MAX_REPLY_BYTES - 3))  # exactly the limit
    with pytest.raises(ValueError, match="100000"):
        encode_reply(Status.OK, "x" * (MAX_REPLY_BYTES - 2))


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"13:postfix a.com,",  # a whole request, consumed
        b"10001:postfix ",  # an oversized request being skipped, the rest still to come
        b"10001:" + b"x" * 10001,  # skipped whole, its comma still to come
    ],
)
def test_nothing_buffered_means_no_event_is_ready(wire: bytes) -> None:
    """The server stops asking for events once nothing is buffered: that must never leave a
    request (or a skipped request's answer) behind."""
    reader = SocketmapReader()
    reader.receive_data(wire)
    events(reader)
    assert reader.buffered == 0
    assert reader.next_event() is NEED_DATA
