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


@pytest.mark.parametrize(
    "wire",
    [
        b"19:postfix example.com,",
        b"13:postfix a.com,14:postfix .b.com,",  # two requests: left to next_event
        b"13:postfix a.com,5:pos",  # one and a partial one
        b"13:postfix a.c",  # partial
        b"",
        b"7:postfix,",
        b"8:postfix ,",
        b"8: example,",
        b"11:postfix \xff\xfe\xfd,",
        b"abc:postfix a.com,",
        b":postfix a.com,",
        b"+3:a b,",  # int() would take "+3"; not a netstring length
        b"13:postfix a.com;",
        b"12:postfix a.com,",
        b"14:postfix a.com,",
        b"10001:postfix " + b"k" * 9993 + b",",  # above the limit
        b"10000:postfix " + b"k" * 9992 + b",",  # exactly the limit
    ],
)
def test_take_whole_agrees_with_next_event(wire: bytes) -> None:
    """The server's fast path takes a read that is exactly one well-formed request and nothing
    else; for everything else it consumes nothing, and the general path answers as before."""
    whole = SocketmapReader().take_whole(wire)
    reader = SocketmapReader()
    reader.receive_data(wire)
    found = events(reader)
    if whole is None:
        assert not (len(found) == 1 and isinstance(found[0], Request) and reader.buffered == 0)
    else:
        assert [Request(*whole)] == found
        assert reader.buffered == 0


def test_take_whole_only_when_nothing_is_held_and_known_requests_are_remembered() -> None:
    known: dict[bytes, tuple[str, str]] = {}
    reader = SocketmapReader(known=known)
    assert reader.take_whole(b"13:postfix a.com,") == ("postfix", "a.com")
    assert known == {b"13:postfix a.com,": ("postfix", "a.com")}
    other = SocketmapReader(known=known)  # another connection of the same server
    assert other.take_whole(b"13:postfix a.com,") == ("postfix", "a.com")
    reader.receive_data(b"13:post")  # a partial frame held: the next read continues it
    assert reader.take_whole(b"13:postfix a.com,") is None
    broken = SocketmapReader(known=known)
    broken.receive_data(b"junk,")
    assert isinstance(broken.next_event(), Malformed)
    assert broken.take_whole(b"13:postfix a.com,") is None  # a broken stream stays broken
    skipping = SocketmapReader(known=known)
    skipping.receive_data(b"10001:postfix ")
    assert skipping.next_event() is NEED_DATA
    assert skipping.take_whole(b"13:postfix a.com,") is None  # part of the oversized frame
    assert SocketmapReader(known=known).take_whole(b"7:postfix,") is None
    assert len(known) == 1  # what is not a whole request is not remembered


def test_known_requests_are_bounded() -> None:
    known: dict[bytes, tuple[str, str]] = {}
    reader = SocketmapReader(known=known)
    for number in range(5000):
        payload = b"postfix d%d.example" % number
        assert reader.take_whole(b"%d:%s," % (len(payload), payload)) == ("postfix", f"d{number}.example")
    assert 0 < len(known) <= 4096
    long_key = b"postfix " + b"k" * 600
    assert reader.take_whole(b"%d:%s," % (len(long_key), long_key)) is not None
    assert all(len(wire) <= 512 for wire in known)
