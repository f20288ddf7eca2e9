"""mtasts' own DNS wire reader reads every response it accepts exactly as dnspython does.

The inspector reads responses with :mod:`mtasts.net._dnswire` (ten times cheaper than
dnspython's message objects) and hands anything it does not take to dnspython. So the
promise is: whenever ``decode`` accepts bytes, dnspython accepts them too and reads the same
records (merged RRsets, duplicates dropped, names written the same way), for well-formed
messages of every shape the inspector asks for and for corrupted copies of them.
"""

from __future__ import annotations

import io
import random
import struct

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasts.net import _dnswire

ZONE = "example.test."


def _response(qname: str, rdtype: str, records: list[tuple[str, str, str]], rcode: int = 0) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode(rcode))
    for owner, kind, text in records:
        response.answer.append(dns.rrset.from_text(owner, 300, "IN", kind, text))
    response.authority.append(
        dns.rrset.from_text(ZONE, 300, "IN", "SOA", f"ns.{ZONE} hostmaster.{ZONE} 1 3600 600 86400 60")
    )
    return response


def _dnspython(wire: bytes) -> _dnswire.Response | None:
    try:
        return _dnswire.from_message(dns.message.from_wire(wire, raise_on_truncation=True))
    except Exception:
        return None


def _same_reading(wire: bytes) -> _dnswire.Response:
    mine = _dnswire.decode(wire)
    assert _dnspython(wire) == mine
    return mine


def _messages() -> list[bytes]:
    name = f"_mta-sts.{ZONE}"
    host = f"mx1.{ZONE}"
    messages = [
        _response(name, "TXT", [(name, "TXT", '"v=STSv1; id=1"')]),
        _response(name, "TXT", [(name, "TXT", '"v=STSv1;" " id=2"'), (name, "TXT", '"other"')]),
        _response(name, "TXT", [(name, "TXT", '""')]),  # one empty string: a record
        _response(ZONE, "MX", [(ZONE, "MX", f"10 {host}"), (ZONE, "MX", f"20 MX2.{ZONE}")]),
        _response(ZONE, "MX", [(ZONE, "MX", "0 .")]),  # null MX
        _response(host, "A", [(host, "A", "192.0.2.1"), (host, "A", "192.0.2.2")]),
        _response(host, "AAAA", [(host, "AAAA", "2001:db8::1"), (host, "AAAA", "::ffff:192.0.2.1")]),
        _response(f"_25._tcp.{host}", "TLSA", [(f"_25._tcp.{host}", "TLSA", "3 1 1 " + "ab" * 32)]),
        _response(
            f"mta-sts.{ZONE}",
            "A",
            [(f"mta-sts.{ZONE}", "CNAME", f"web.{ZONE}"), (f"web.{ZONE}", "A", "192.0.2.9")],
        ),
        _response(f"mta-sts.{ZONE}", "A", [(f"mta-sts.{ZONE}", "CNAME", f"gone.{ZONE}")], rcode=3),
        _response(f"nothing.{ZONE}", "TXT", [], rcode=3),
        _response(f"empty.{ZONE}", "AAAA", []),
        _response(name, "TXT", [(name, "TXT", r'"a\"b\\c\255"')]),
        _response(r"we\.ird.example.test.", "TXT", [(r"we\.ird.example.test.", "TXT", '"x"')]),
    ]
    wires = [m.to_wire() for m in messages]
    # the same record twice; an owner in other case, not next to the first record: dnspython
    # keeps one copy, and merges the second into the first RRset
    host_a = dns.rrset.from_text(host, 300, "IN", "A", "192.0.2.1")
    wires.append(_with_extra([host_a], host_a))
    mx = dns.rrset.from_text(ZONE, 300, "IN", "MX", f"10 {host}")
    web = dns.rrset.from_text(f"web.{ZONE}", 300, "IN", "A", "192.0.2.9")
    extra = dns.rrset.from_text("EXAMPLE.test.", 300, "IN", "MX", f"10 {host.upper()}", f"20 mx2.{ZONE}")
    wires.append(_with_extra([mx, web], extra))
    return wires


def _two_cnames() -> bytes:
    """Two CNAMEs for one name: a singleton type, of which dnspython keeps the last."""
    alias = f"mta-sts.{ZONE}"
    first = dns.rrset.from_text(alias, 300, "IN", "CNAME", f"one.{ZONE}")
    return _with_extra([first], dns.rrset.from_text(alias, 300, "IN", "CNAME", f"two.{ZONE}"))


def _with_extra(answer: list[dns.rrset.RRset], extra: dns.rrset.RRset) -> bytes:
    """A response for the first RRset's name and type with ``answer``, then the records of
    ``extra`` written after them without compression (dnspython itself would merge them)."""
    message = dns.message.make_response(dns.message.make_query(answer[0].name, answer[0].rdtype))
    message.answer.extend(answer)
    wire, more = message.to_wire(), io.BytesIO()
    count = extra.to_wire(more)
    total = sum(len(rrset) for rrset in answer) + count
    return wire[:6] + total.to_bytes(2, "big") + wire[8:] + more.getvalue()


@pytest.mark.parametrize("wire", _messages(), ids=lambda w: str(len(w)))
def test_every_shape_the_inspector_asks_for_reads_as_dnspython_reads_it(wire: bytes) -> None:
    _same_reading(wire)


def test_duplicates_are_kept_once_and_rrsets_merged_across_case() -> None:
    merged = [_dnswire.decode(w) for w in _messages()[-2:]]
    (twice,) = merged[0].answer
    assert twice.values == ("192.0.2.1",)
    mx, _ = merged[1].answer
    assert mx.values == ((10, "mx1.example.test"), (20, "mx2.example.test"))  # MX1 is mx1: the same record


def test_names_are_written_as_dnspython_writes_them() -> None:
    wire = _messages()[-3]
    (rrset,) = _same_reading(wire).answer
    assert rrset.name == r"we\.ird.example.test"


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda m: m.use_edns(0, 0, 1232), id="edns"),
        pytest.param(lambda m: setattr(m, "flags", m.flags | dns.flags.TC), id="truncated"),
    ],
)
def test_what_it_does_not_read_is_left_to_dnspython(edit: object) -> None:
    message = _response(f"_mta-sts.{ZONE}", "TXT", [(f"_mta-sts.{ZONE}", "TXT", '"v=STSv1; id=1"')])
    edit(message)  # type: ignore[operator]
    with pytest.raises(_dnswire.Unusual):
        _dnswire.decode(message.to_wire())


def test_a_txt_record_without_strings_is_left_to_dnspython() -> None:
    """dnspython refuses a TXT record of no character-string (the whole message, even)."""
    query = dns.message.make_query(f"_mta-sts.{ZONE}", "TXT")
    wire = dns.message.make_response(query).to_wire()
    record = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 300, 0)
    empty = wire[:6] + b"\x00\x01" + wire[8:] + record
    with pytest.raises(_dnswire.Unusual):
        _dnswire.decode(empty)
    assert _dnspython(empty) is None


def test_two_cnames_for_one_name_are_left_to_dnspython() -> None:
    with pytest.raises(_dnswire.Unusual):
        _dnswire.decode(_two_cnames())
    reading = _dnspython(_two_cnames())
    assert reading is not None
    assert reading.answer[0].values == ((b"two", b"example", b"test"),)


_EDITS = st.lists(st.tuples(st.booleans(), st.integers(0, 4000), st.integers(0, 4000)), max_size=4)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from([*_messages(), _two_cnames()]), _EDITS)
def test_corrupted_messages_are_never_read_differently(wire: bytes, edits: list[tuple[bool, int, int]]) -> None:
    """Random bytes, and compression pointers to random places (forwards, into themselves,
    into the header), written over real responses."""
    corrupted = bytearray(wire)
    for pointer, position, value in edits:
        at = position % len(corrupted)
        if pointer:
            target = value % len(corrupted)
            corrupted[at : at + 2] = bytes((0xC0 | target >> 8, target & 0xFF))
        else:
            corrupted[at] = value % 256
    try:
        mine = _dnswire.decode(bytes(corrupted))
    except _dnswire.Unusual:
        return
    assert _dnspython(bytes(corrupted)) == mine


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_messages()), st.integers(0, 4000))
def test_cut_messages_are_never_read_differently(wire: bytes, cut: int) -> None:
    short = wire[: cut % (len(wire) + 1)]
    try:
        mine = _dnswire.decode(short)
    except _dnswire.Unusual:
        return
    assert _dnspython(short) == mine


def test_random_bytes_are_never_read_differently() -> None:
    rng = random.Random(12)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(12, 80)))
        # a plausible header, so that some get past it
        data = data[:2] + b"\x81\x80\x00\x01" + data[6:]
        try:
            mine = _dnswire.decode(data)
        except _dnswire.Unusual:
            continue
        assert _dnspython(data) == mine


def test_queries_are_the_bytes_dnspython_writes() -> None:
    for name in ("_mta-sts.example.test", "mx1.Example.TEST.", "_25._tcp.mx-1.example.test"):
        for rdtype in ("TXT", "MX", "A", "AAAA", "TLSA"):
            plain = _dnswire.qname_wire(name)
            assert plain is not None
            query = dns.message.make_query(name, rdtype)
            query.id = 4242
            assert _dnswire.encode_query(4242, plain[0], dns.rdatatype.from_text(rdtype)) == query.to_wire()
    for name in ("a..b", "x" * 64 + ".test", ".".join(["abcdefghi"] * 30), r"a\.b.test", "bücher.test", "@"):
        assert _dnswire.qname_wire(name) is None  # dnspython writes these (or refuses them)
