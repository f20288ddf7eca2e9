"""The lab nameserver, asked by dnspython's own clients (sync resolver, dns.query)."""

from __future__ import annotations

import socket
import struct

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts.lab.dns import Zone, handle_wire
from mtasts.lab.plan import Record
from mtasts.lab.scenarios import DnsFault
from mtasts.lab.testing import LabController

pytestmark = pytest.mark.lab


def udp(lab: LabController, name: str, rdtype: str, **kwargs: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    address, port = lab.nameserver
    return dns.query.udp(query, address, port=port, timeout=2, raise_on_truncation=False)


def tcp(lab: LabController, name: str, rdtype: str) -> dns.message.Message:
    address, port = lab.nameserver
    return dns.query.tcp(dns.message.make_query(name, rdtype), address, port=port, timeout=2)


def test_a_mx_aaaa(lab: LabController) -> None:
    resolver = lab.resolver()
    domain = lab.domain("enforce-ok")
    (mx,) = resolver.resolve(domain, "MX")
    assert mx.preference == 10
    assert mx.exchange.to_text() == f"mx1.{domain}."
    (a,) = resolver.resolve(f"mx1.{domain}", "A")
    assert a.address == lab.address(f"mx1.{domain}")
    (aaaa,) = resolver.resolve(domain, "AAAA")
    assert aaaa.address == "2001:db8::1"


def test_txt_record(lab: LabController) -> None:
    (txt,) = lab.resolver().resolve(f"_mta-sts.{lab.domain('enforce-ok')}", "TXT")
    assert txt.strings == (b"v=STSv1; id=20261129T081500",)


def test_split_txt_is_truncated_over_udp_and_complete_over_tcp(lab: LabController) -> None:
    name = f"_mta-sts.{lab.domain('split-txt-ok')}"
    plain = udp(lab, name, "TXT")
    assert plain.flags & dns.flags.TC
    assert not plain.answer
    with_edns = udp(lab, name, "TXT", use_edns=0, payload=1232)
    assert with_edns.flags & dns.flags.TC
    full = tcp(lab, name, "TXT")
    assert not full.flags & dns.flags.TC
    assert len(full.to_wire()) > 1232
    strings = {rr.strings for rr in full.answer[0]}
    assert (b"v=STSv1;", b" id=", b"20261129T081500") in strings
    assert len(strings) == 9


def test_resolver_retries_truncated_answer_over_tcp(lab: LabController) -> None:
    answer = lab.resolver().resolve(f"_mta-sts.{lab.domain('split-txt-ok')}", "TXT")
    assert len(answer) == 9


def test_small_answer_is_not_truncated(lab: LabController) -> None:
    response = udp(lab, f"_mta-sts.{lab.domain('enforce-ok')}", "TXT")
    assert not response.flags & dns.flags.TC
    assert response.flags & dns.flags.AA


def test_cname_to_policy_host(lab: LabController) -> None:
    domain = lab.domain("cname-policy-host-ok")
    answer = lab.resolver().resolve(f"mta-sts.{domain}", "A")
    assert answer.canonical_name.to_text() == f"policy.{domain}."
    assert answer[0].address == lab.address(f"policy.{domain}")
    (cname,) = lab.resolver().resolve(f"mta-sts.{domain}", "CNAME")
    assert cname.target.to_text() == f"policy.{domain}."


@pytest.mark.parametrize(
    ("scenario", "name"),
    [
        ("no-sts-record", "_mta-sts.{domain}"),
        ("policy-host-nxdomain", "mta-sts.{domain}"),
        ("enforce-ok", "nothing-here.{domain}"),
    ],
)
def test_nxdomain(lab: LabController, scenario: str, name: str) -> None:
    response = udp(lab, name.format(domain=lab.domain(scenario)), "TXT")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_empty_non_terminal_and_missing_type_are_nodata(lab: LabController) -> None:
    domain = lab.domain("enforce-ok")
    for name in (f"_tls.{domain}", f"mx1.{domain}"):
        with pytest.raises(dns.resolver.NoAnswer):
            lab.resolver().resolve(name, "TXT")


def test_servfail(lab: LabController) -> None:
    response = udp(lab, f"_mta-sts.{lab.domain('sts-lookup-servfail')}", "TXT")
    assert response.rcode() == dns.rcode.SERVFAIL
    with pytest.raises(dns.resolver.NoNameservers):
        lab.resolver().resolve(f"_mta-sts.{lab.domain('sts-lookup-servfail')}", "TXT")


def test_name_that_never_answers(lab: LabController) -> None:
    name = f"_mta-sts.{lab.domain('sts-lookup-timeout')}"
    address, port = lab.nameserver
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(dns.message.make_query(name, "TXT"), address, port=port, timeout=0.3)
    with pytest.raises(dns.exception.Timeout):
        dns.query.tcp(dns.message.make_query(name, "TXT"), address, port=port, timeout=0.3)


def test_outside_the_zone_is_refused(lab: LabController) -> None:
    assert udp(lab, "example.com", "A").rcode() == dns.rcode.REFUSED


def test_garbage_datagrams_do_not_stop_the_server(lab: LabController) -> None:
    address, port = lab.nameserver
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(b"\x00", (address, port))  # too short to answer
        sock.sendto(b"\x12\x34" + b"\x01\x00" + b"\xff" * 30, (address, port))  # a header, then garbage
        reply, _ = sock.recvfrom(512)
        assert reply[:2] == b"\x12\x34"
        assert reply[3] & 0x0F == dns.rcode.FORMERR
    assert udp(lab, lab.domain("enforce-ok"), "MX").answer


def test_tcp_clients_that_misbehave(lab: LabController) -> None:
    address, port = lab.nameserver
    with socket.create_connection((address, port), timeout=1) as sock:
        sock.sendall(struct.pack("!H", 500) + b"half a query")  # then hang up mid-message
    with socket.create_connection((address, port), timeout=1) as sock:
        sock.sendall(struct.pack("!H", 20) + b"\x00" * 20)
        (length,) = struct.unpack("!H", sock.recv(2))
        assert length > 0
    assert tcp(lab, lab.domain("enforce-ok"), "MX").answer


# --- sans-I/O ---------------------------------------------------------------------------------

ZONE = Zone(
    "z.test",
    [
        Record("z.test", "SOA", "ns.z.test. h.z.test. 1 2 3 4 5"),
        Record("a.z.test", "A", "127.0.0.9"),
        Record("c.z.test", "CNAME", "a.z.test."),
        Record("loop1.z.test", "CNAME", "loop2.z.test."),
        Record("loop2.z.test", "CNAME", "loop1.z.test."),
    ],
    {"slow.z.test": DnsFault.TIMEOUT, "gone.z.test": DnsFault.NXDOMAIN},
)


def test_zone_answers_without_sockets() -> None:
    response = ZONE.answer(dns.message.make_query("c.z.test", "A"))
    assert response is not None
    assert [rrset.rdtype for rrset in response.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert ZONE.answer(dns.message.make_query("slow.z.test", "A")) is None
    gone = ZONE.answer(dns.message.make_query("gone.z.test", "A"))
    assert gone is not None
    assert gone.rcode() == dns.rcode.NXDOMAIN
    looping = ZONE.answer(dns.message.make_query("loop1.z.test", "A"))
    assert looping is not None
    assert looping.rcode() == dns.rcode.SERVFAIL


def test_responses_are_never_answered() -> None:
    response = ZONE.answer(dns.message.make_query("a.z.test", "A"))
    assert response is not None
    assert handle_wire(ZONE, response.to_wire(), udp=True) is None


@given(st.binary(max_size=600))
def test_any_bytes_get_bytes_or_silence(data: bytes) -> None:
    for udp_transport in (True, False):
        reply = handle_wire(ZONE, data, udp=udp_transport)
        assert reply is None or len(reply) >= 12


@given(
    st.sampled_from(["a.z.test", "c.z.test", "nope.z.test", "z.test", "x.other"]), st.sampled_from(["A", "TXT", "ANY"])
)
def test_every_query_gets_a_parseable_answer(name: str, rdtype: str) -> None:
    query = dns.message.make_query(name, rdtype)
    reply = handle_wire(ZONE, query.to_wire(), udp=True)
    assert reply is not None
    assert dns.message.from_wire(reply).id == query.id
