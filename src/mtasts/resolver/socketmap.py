"""Postfix's socketmap protocol as a sans-I/O codec: bytes in, requests out, replies to bytes.

Postfix (``src/util/dict_sockmap.c``) sends one netstring per lookup, ``<len>:<name> <key>,``,
and reads one netstring back: ``OK <data>``, ``NOTFOUND ``, ``TEMP <reason>``,
``TIMEOUT <reason>`` or ``PERM <reason>``. Its limits are the ones enforced here: a query of
at most 10,000 bytes, a reply of at most 100,000. Nothing in this module reads a socket or
the clock: :class:`SocketmapReader` is fed with :meth:`~SocketmapReader.receive_data` and
hands out events from :meth:`~SocketmapReader.next_event`, :data:`NEED_DATA` when it cannot
progress (as h11's ``Connection`` does).

What the peer may get wrong, and what happens (each a row of the tests):

=============================================  ================================================
input                                          event
=============================================  ================================================
a well-framed request ``name key``             :class:`Request`
well-framed, but no space, empty name or key,  :class:`Malformed` (``fatal=False``): answered
  not UTF-8                                    ``NOTFOUND``, the connection stays usable
a length above the query limit                 the data is skipped without being buffered;
                                               :class:`Malformed` (``fatal=False``) when the
                                               frame then ends with ``,``
a length that is not digits, too many digits,  :class:`Malformed` (``fatal=True``): the stream
  a frame not ending in ``,``                  cannot be resynchronised; answered ``PERM``,
                                               then the server closes the connection
=============================================  ================================================

Junk *keys* are a NOTFOUND and never TEMP/PERM: Postfix turns TEMP, TIMEOUT and PERM alike into
a deferral ("4.7.5 client TLS configuration problem"), so an error reply for a key this daemon
cannot have a policy for would hold mail back for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, NamedTuple

__all__ = [
    "CLOSED",
    "MAX_QUERY_BYTES",
    "MAX_REPLY_BYTES",
    "NEED_DATA",
    "Malformed",
    "Request",
    "SocketmapReader",
    "Status",
    "encode_reply",
]

MAX_QUERY_BYTES: Final = 10_000  # Postfix: dict_sockmap's query limit
MAX_REPLY_BYTES: Final = 100_000  # Postfix: socketmap replies longer than this are refused
_MAX_LENGTH_DIGITS: Final = 9  # beyond this the "length" is junk, not a frame we could skip


class _Sentinel(Enum):
    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"


NEED_DATA: Final = _Sentinel.NEED_DATA
"""No complete event in the buffer: feed more bytes."""
CLOSED: Final = _Sentinel.CLOSED
"""The stream is unusable after a fatal framing error: close the connection."""


class Status(Enum):
    """The reply kinds Postfix knows (its ``dict_sockmap.c``)."""

    OK = "OK"
    NOTFOUND = "NOTFOUND"
    TEMP = "TEMP"
    TIMEOUT = "TIMEOUT"
    PERM = "PERM"


class Request(NamedTuple):
    """One lookup: ``name`` is the socketmap name (the answer profile), ``key`` verbatim.

    A named tuple rather than a frozen dataclass: one is built per lookup on the daemon's hot
    path, and a tuple is built in a fraction of the time (immutable all the same)."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request that cannot be answered with a lookup; ``fatal`` when the stream is lost."""

    reason: str
    fatal: bool = False

    def reply(self) -> bytes:
        """The well-formed answer: NOTFOUND for junk content, PERM before closing."""
        if self.fatal:
            return encode_reply(Status.PERM, self.reason)
        return encode_reply(Status.NOTFOUND)


def encode_reply(status: Status, data: str = "") -> bytes:
    """One netstring reply. ``NOTFOUND`` carries nothing (Postfix sends ``NOTFOUND ``).

    Raises :class:`ValueError` when the reply would exceed :data:`MAX_REPLY_BYTES`: the caller
    must fall back to another answer, never send one Postfix refuses.
    """
    payload = (f"{status.value} {data}" if status is not Status.NOTFOUND else "NOTFOUND ").encode()
    if len(payload) > MAX_REPLY_BYTES:
        raise ValueError(f"a socketmap reply of {len(payload)} bytes is above {MAX_REPLY_BYTES}")
    return b"%d:%s," % (len(payload), payload)


_KNOWN_LIMIT: Final = 4096  # whole requests remembered by a `known` mapping before it is emptied
_KNOWN_MAX_BYTES: Final = 512  # and only short ones (a domain name is at most 253 bytes)


class SocketmapReader:
    """Netstring requests from a byte stream, one event at a time.

    ``max_query`` is the largest request accepted (Postfix's own limit by default). ``known``,
    a dict shared by the readers of one server (with the same ``max_query``), remembers the
    whole requests :meth:`take_whole` has parsed, ``wire bytes -> (name, key)``: the same few
    thousand keys come again and again, and a dict hit costs a tenth of parsing one. It holds
    at most 4,096 requests of at most 512 bytes each, and is emptied when full.
    """

    def __init__(self, max_query: int = MAX_QUERY_BYTES, *, known: dict[bytes, tuple[str, str]] | None = None) -> None:
        self.max_query = max_query
        self._known = known
        self._buffer = bytearray()
        self._skip = 0  # bytes of an oversized frame still to drop
        self._skipping = False  # dropping an oversized frame; its comma is still due
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (tests: trailing bytes are left untouched)."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer (``b""`` at end of stream is ignored)."""
        if self._broken:
            return
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buffer += data

    def take_whole(self, data: bytes) -> tuple[str, str] | None:
        """``(name, key)`` when the reader holds nothing and ``data`` is exactly one complete,
        well-formed request, else ``None`` and nothing is consumed: then feed ``data`` to
        :meth:`receive_data` as usual (a partial frame, several, an oversized or malformed one).

        The server's fast path: Postfix sends one request and waits for its reply, so almost
        every read is exactly one netstring, which this takes without copying it into the
        buffer and out again, and without building a :class:`Request` (the pair is equal to
        one); with ``known``, a request seen before is not parsed again. The same checks as
        :meth:`next_event`: a request that fails one of them is left to it."""
        if self._buffer or self._skipping or self._broken:
            return None
        known = self._known
        if known is None:
            return self._parse_whole(data)
        found = known.get(data)
        if found is None:
            found = self._parse_whole(data)
            if found is not None and len(data) <= _KNOWN_MAX_BYTES:
                if len(known) >= _KNOWN_LIMIT:
                    known.clear()
                known[data] = found
        return found

    def _parse_whole(self, data: bytes) -> tuple[str, str] | None:
        colon = data.find(b":", 0, _MAX_LENGTH_DIGITS + 1)
        end = len(data) - 1
        if colon <= 0 or data[end] != 0x2C:  # ","
            return None
        digits = data[:colon]
        if not digits.isdigit() or int(digits) != end - colon - 1 or end - colon - 1 > self.max_query:
            return None
        name, space, key = data[colon + 1 : end].partition(b" ")
        if not space or not name or not key:
            return None
        try:
            return name.decode("ascii"), key.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def next_event(self) -> Request | Malformed | _Sentinel:
        """The next request, a :class:`Malformed` one, :data:`NEED_DATA` or :data:`CLOSED`."""
        if self._broken:
            return CLOSED
        buffer = self._buffer
        if self._skipping:
            if self._skip:
                return NEED_DATA
            if not buffer:
                return NEED_DATA
            self._skipping = False
            if buffer[0] != 0x2C:  # ","
                return self._fatal("the oversized request does not end with ','")
            del buffer[:1]
            return Malformed(f"the request is longer than {self.max_query} bytes")
        colon = buffer.find(b":", 0, _MAX_LENGTH_DIGITS + 1)
        if colon < 0:
            if buffer and (len(buffer) > _MAX_LENGTH_DIGITS or not buffer.isdigit()):
                return self._fatal("the request does not start with a netstring length")
            return NEED_DATA
        digits = bytes(buffer[:colon])
        if not digits.isdigit():
            return self._fatal("the request does not start with a netstring length")
        length = int(digits)
        start = colon + 1
        if length > self.max_query:
            available = len(buffer) - start
            if available >= length:
                del buffer[: start + length]
            else:
                self._skip = length - available
                buffer.clear()
            self._skipping = True
            return self.next_event()
        end = start + length
        if len(buffer) <= end:
            return NEED_DATA
        if buffer[end] != 0x2C:
            return self._fatal("the netstring does not end with ','")
        data = bytes(buffer[start:end])
        del buffer[: end + 1]
        return _request(data)

    def _fatal(self, reason: str) -> Malformed:
        self._broken = True
        self._buffer.clear()
        return Malformed(reason, fatal=True)


def _request(data: bytes) -> Request | Malformed:
    name, space, key = data.partition(b" ")
    if not space or not name or not key:
        return Malformed("the request is not '<name> <key>'")
    try:
        return Request(name.decode("ascii"), key.decode("utf-8"))
    except UnicodeDecodeError:
        return Malformed("the request is not UTF-8")
