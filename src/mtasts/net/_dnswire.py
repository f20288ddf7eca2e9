"""DNS messages as bytes, for the lookups the inspector makes (pure: no sockets, no clock).

dnspython's ``Message`` machinery costs about 0.3 ms of CPU per query on a small machine
(building a query, parsing a response into rdata objects, merging RRsets): most of the
client's DNS cost in a bulk check. This module encodes the one kind of query the inspector
sends and decodes the common shapes of response (IN class; A, AAAA, CNAME, TXT, MX and TLSA
answers; SOA and NS authority; A and AAAA glue) itself, about ten times faster.

Fidelity comes first: :func:`decode` accepts a *subset* of what dnspython accepts, with the
same reading (RRsets merged by owner, class and type; equal rdata kept once; the same name
compression rules). Anything else (EDNS, truncation, another class or type, a malformed
field) raises :class:`Unusual`, and the caller hands the bytes to dnspython
(:func:`from_message` converts its reading to the same :class:`Response`), so an unusual
response is read, accepted or refused exactly as dnspython reads it.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass

import dns.exception
import dns.ipv6
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

__all__ = [
    "CLASS_IN",
    "RRset",
    "Response",
    "Unusual",
    "decode",
    "encode_query",
    "from_message",
    "name_key",
    "qname_wire",
]

CLASS_IN = 1
_A, _NS, _CNAME, _SOA, _MX, _TXT, _AAAA, _TLSA = 1, 2, 5, 6, 15, 16, 28, 52
_QR, _OPCODE, _TC = 0x8000, 0x7800, 0x0200
_MAX_POINTERS = 16  # dns.name.MAX_COMPRESSION_POINTER_CHAIN
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_ANSWER_TYPES = frozenset({_A, _AAAA, _CNAME, _TXT, _MX, _TLSA})
_OTHER_TYPES = {2: frozenset({_SOA, _NS}), 3: frozenset({_A, _AAAA})}  # authority, additional
# labels dnspython prints as they are (no \ escapes), and query names sent without dnspython
_PLAIN_LABEL = re.compile(rb"[A-Za-z0-9_*-]+\Z")
_PLAIN_NAME = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?\Z")

NameKey = tuple[bytes, ...]
"""A name as DNS compares it: its labels in lower case (ASCII), without the root label."""


class Unusual(Exception):
    """Not a shape :func:`decode` reads: let dnspython read it."""


@dataclass(frozen=True, slots=True)
class RRset:
    """The records of one owner, class and type in the answer section, as dnspython merges them.

    ``values`` by type: TXT a tuple of byte strings per record; MX ``(preference, host)`` with
    the host as ``mtasts.net.dns`` reports it (lower case, no final dot; ``""`` for a null MX);
    A, AAAA and TLSA their text; CNAME the target's :data:`NameKey`.
    """

    key: NameKey
    name: str  # the owner as dnspython writes it, without the final dot
    rdclass: int
    rdtype: int
    values: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    flags: int
    rcode: int
    question: tuple[tuple[NameKey, int, int], ...]  # (name, type, class)
    answer: tuple[RRset, ...]

    @property
    def truncated(self) -> bool:
        return bool(self.flags & _TC)


@functools.lru_cache(maxsize=4096)
def qname_wire(name: str) -> tuple[bytes, NameKey] | None:
    """The wire form and key of an absolute query name written in plain ASCII labels, or
    ``None`` when dnspython must read the name (escapes, IDNA, an invalid name: its errors).
    Remembered: a host's A and AAAA lookups ask the same name at the same time."""
    if not _PLAIN_NAME.match(name):
        return None
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".")]
    wire = b"".join(bytes((len(label),)) + label for label in labels) + b"\0"
    if len(wire) > 255:
        return None
    return wire, tuple(label.lower() for label in labels)


def encode_query(qid: int, wire_name: bytes, rdtype: int) -> bytes:
    """A query as ``dns.message.make_query(name, rdtype)`` writes it: recursion desired, one
    question of class IN, no EDNS."""
    return _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + wire_name + struct.pack("!HH", rdtype, CLASS_IN)


def name_key(name: dns.name.Name) -> NameKey:
    return tuple(label.lower() for label in name.labels if label)


def _name(wire: bytes, pos: int, end: int) -> tuple[list[bytes], int]:
    """The labels of the name at ``pos`` (root label excluded) and the position after it, by
    dnspython's rules: pointers only backwards, each target ending before the previous part
    starts, at most 16 of them, 255 bytes in all."""
    labels: list[bytes] = []
    biggest = start = pos
    after = -1
    hops = 0
    length = 1
    while True:
        if pos >= end:
            raise Unusual
        count = wire[pos]
        pos += 1
        if count == 0:
            break
        if count < 64:
            if pos + count > end:
                raise Unusual
            labels.append(wire[pos : pos + count])
            pos += count
            length += count + 1
        elif count >= 192:
            if pos >= end:
                raise Unusual
            target = (count & 0x3F) * 256 + wire[pos]
            pos += 1
            if target >= biggest:
                raise Unusual
            biggest = target
            hops += 1
            if hops > _MAX_POINTERS or start > end:
                raise Unusual
            if after < 0:
                after = pos
            end = start
            pos = start = target
        else:
            raise Unusual
    if length > 255:
        raise Unusual
    return labels, pos if after < 0 else after


def _text(labels: list[bytes]) -> str:
    """The name as ``dns.name.Name.to_text(omit_final_dot=True)`` writes it."""
    if all(_PLAIN_LABEL.match(label) for label in labels):
        return ".".join(label.decode("ascii") for label in labels) if labels else "."
    return dns.name.Name([*labels, b""]).to_text(omit_final_dot=True)


def _value(wire: bytes, rdtype: int, pos: int, end: int) -> tuple[object, object]:
    """``(value, the rdata as dnspython compares it)`` of one record."""
    if rdtype == _TXT:
        start = pos
        strings: list[bytes] = []
        while pos < end:
            size = wire[pos]
            if pos + 1 + size > end:
                raise Unusual
            strings.append(wire[pos + 1 : pos + 1 + size])
            pos += 1 + size
        if not strings:
            raise Unusual
        return tuple(strings), wire[start:end]
    if rdtype == _A:
        if end - pos != 4:
            raise Unusual
        return ".".join(map(str, wire[pos:end])), wire[pos:end]
    if rdtype == _AAAA:
        if end - pos != 16:
            raise Unusual
        return dns.ipv6.inet_ntoa(wire[pos:end]), wire[pos:end]
    if rdtype == _MX:
        if end - pos < 3:
            raise Unusual
        preference = wire[pos] * 256 + wire[pos + 1]
        labels, after = _name(wire, pos + 2, end)
        if after != end:
            raise Unusual
        host = _text(labels).lower().rstrip(".")
        return (preference, host), (preference, tuple(label.lower() for label in labels))
    if rdtype in (_CNAME, _NS):
        labels, after = _name(wire, pos, end)
        if after != end:
            raise Unusual
        key = tuple(label.lower() for label in labels)
        return key, key
    if rdtype == _SOA:
        _, after = _name(wire, pos, end)
        _, after = _name(wire, after, end)
        if end - after != 20:
            raise Unusual
        return None, None
    if rdtype == _TLSA:
        try:
            rdata = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.TLSA, wire, pos, end - pos)
        except Exception as exc:
            raise Unusual from exc
        return rdata.to_text(), wire[pos:end]
    raise Unusual


def decode(wire: bytes) -> Response:
    """Read a response of the common shapes; :class:`Unusual` for anything else."""
    if len(wire) < 12:
        raise Unusual
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if flags & (_OPCODE | _TC) or qdcount != 1:
        raise Unusual
    end = len(wire)
    labels, pos = _name(wire, 12, end)
    if pos + 4 > end:
        raise Unusual
    qtype, qclass = struct.unpack_from("!HH", wire, pos)
    pos += 4
    question = ((tuple(label.lower() for label in labels), qtype, qclass),)
    merged: dict[tuple[NameKey, int], tuple[str, list[object], set[object]]] = {}
    for section, count in ((1, ancount), (2, nscount), (3, arcount)):
        allowed = _ANSWER_TYPES if section == 1 else _OTHER_TYPES[section]
        for _ in range(count):
            labels, pos = _name(wire, pos, end)
            if pos + 10 > end:
                raise Unusual
            rdtype, rdclass, _ttl, rdlen = _RR.unpack_from(wire, pos)
            pos += 10
            if rdclass != CLASS_IN or rdtype not in allowed or pos + rdlen > end:
                raise Unusual
            value, compared = _value(wire, rdtype, pos, pos + rdlen)
            pos += rdlen
            if section != 1:
                continue
            key = tuple(label.lower() for label in labels)
            entry = merged.get((key, rdtype))
            if entry is None:
                merged[(key, rdtype)] = (_text(labels), [value], {compared})
            elif rdtype == _CNAME:
                raise Unusual  # a singleton: dnspython keeps the last one
            elif compared not in entry[2]:
                entry[1].append(value)
                entry[2].add(compared)
    if pos != end:
        raise Unusual
    answer = tuple(
        RRset(key, text, CLASS_IN, rdtype, tuple(values)) for (key, rdtype), (text, values, _) in merged.items()
    )
    return Response(qid, flags, flags & 0xF, question, answer)


def from_message(message: dns.message.Message) -> Response:
    """dnspython's reading of a response, in the shape :func:`decode` gives."""
    answer: list[RRset] = []
    for rrset in message.answer:
        values: tuple[object, ...] = ()
        if rrset.rdclass == dns.rdataclass.IN:
            values = tuple(_rdata_value(rrset.rdtype, rdata) for rdata in rrset)
        answer.append(
            RRset(name_key(rrset.name), rrset.name.to_text(omit_final_dot=True), rrset.rdclass, rrset.rdtype, values)
        )
    question = tuple((name_key(q.name), int(q.rdtype), int(q.rdclass)) for q in message.question)
    return Response(message.id, int(message.flags), int(message.rcode()), question, tuple(answer))


def _rdata_value(rdtype: int, rdata: dns.rdata.Rdata) -> object:
    if rdtype == _TXT:
        return tuple(rdata.strings)  # type: ignore[attr-defined]
    if rdtype == _MX:
        exchange: dns.name.Name = rdata.exchange  # type: ignore[attr-defined]
        return rdata.preference, exchange.to_text(omit_final_dot=True).lower().rstrip(".")  # type: ignore[attr-defined]
    if rdtype == _CNAME:
        return name_key(rdata.target)  # type: ignore[attr-defined]
    return rdata.to_text()


def chase(response: Response) -> RRset | None:
    """The RRset answering the question, following CNAMEs: ``Message.resolve_chaining()``.

    Raises what dnspython raises for a response it will not take as an answer (a chain too
    long, an answer in an NXDOMAIN, not exactly one question)."""
    if not response.flags & _QR:
        raise dns.message.NotQueryResponse
    if len(response.question) != 1:
        raise dns.exception.FormError
    qname, qtype, qclass = response.question[0]
    found: RRset | None = None
    count = 0
    while count < dns.message.MAX_CHAIN:
        found = _find(response, qname, qclass, qtype)
        if found is not None:
            break
        if qtype == _CNAME:
            break
        cname = _find(response, qname, qclass, _CNAME)
        if cname is None:
            break
        target = cname.values[0]
        assert isinstance(target, tuple)
        qname = target
        count += 1
    if count >= dns.message.MAX_CHAIN:
        raise dns.message.ChainTooLong
    if response.rcode == 3 and found is not None:  # NXDOMAIN
        raise dns.message.AnswerForNXDOMAIN
    return found


def _find(response: Response, key: NameKey, rdclass: int, rdtype: int) -> RRset | None:
    for rrset in response.answer:
        if rrset.key == key and rrset.rdtype == rdtype and rrset.rdclass == rdclass:
            return rrset
    return None
