"""mtasts' DNS client against a real nameserver on 127.0.0.1 (UDP and TCP on one port) whose
answers each test chooses: what the inspector depends on, now that the client sends its own
datagrams (a fresh socket, so a fresh random source port, per query) and reads the common
responses itself.

Each behaviour here would break a finding: a spoofed or stray datagram taken as the answer
(a forged _mta-sts record), a truncated answer not retried over TCP (a split record read as
missing), SERVFAIL or REFUSED or silence read as "no record" (a temporary failure reported as
"no MTA-STS").
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.net.dns import DnsClient, LookupStatus
from mtasts.net.settings import NetworkSettings

Reply = tuple[bytes, bool]  # the datagram, and whether it leaves from another socket (a spoofer)
Handler = Callable[[dns.message.Message], list[Reply]]


class Nameserver:
    """A nameserver on 127.0.0.1 in a thread: ``udp(query)`` and ``tcp(query)`` say what to send."""

    def __init__(self, udp: Handler, tcp: Handler | None = None) -> None:
        self.udp_handler, self.tcp_handler = udp, tcp
        self.udp, self.tcp = self._bind()
        self.port = self.udp.getsockname()[1]
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.other.bind(("127.0.0.1", 0))
        self.sources: list[tuple[str, int]] = []
        self.tcp_queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def _bind() -> tuple[socket.socket, socket.socket]:
        """A UDP and a TCP socket on one free port (the TCP port may be taken: try another)."""
        for _ in range(50):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind(("127.0.0.1", 0))
                tcp.bind(("127.0.0.1", udp.getsockname()[1]))
                tcp.listen()
            except OSError:
                udp.close()
                tcp.close()
                continue
            return udp, tcp
        raise RuntimeError("no free port for both UDP and TCP")

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.udp, self.tcp], [], [], 0.05)
            if self.udp in readable:
                data, source = self.udp.recvfrom(65535)
                self.sources.append(source)
                for wire, spoofed in self.udp_handler(dns.message.from_wire(data)):
                    (self.other if spoofed else self.udp).sendto(wire, source)
            if self.tcp in readable:
                connection, _ = self.tcp.accept()
                with connection:
                    size = struct.unpack("!H", connection.recv(2))[0]
                    query = dns.message.from_wire(connection.recv(size))
                    self.tcp_queries += 1
                    assert self.tcp_handler is not None
                    for wire, _ in self.tcp_handler(query):
                        connection.sendall(struct.pack("!H", len(wire)) + wire)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in (self.udp, self.tcp, self.other):
            sock.close()


def answer(query: dns.message.Message, *records: str, rcode: int = 0) -> dns.message.Message:
    """The response to ``query`` with ``records`` ("TYPE text" at the question's name)."""
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.Rcode(rcode))
    name = query.question[0].name
    for record in records:
        kind, text = record.split(" ", 1)
        response.answer.append(dns.rrset.from_text(name, 300, "IN", kind, text))
    return response


@pytest.fixture
def nameserver() -> Iterator[Callable[..., Nameserver]]:
    started: list[Nameserver] = []

    def start(udp: Handler, tcp: Handler | None = None) -> Nameserver:
        started.append(Nameserver(udp, tcp))
        return started[-1]

    yield start
    for server in started:
        server.close()


def client(server: Nameserver, timeout: float = 2.0) -> DnsClient:
    return DnsClient(NetworkSettings(nameserver=("127.0.0.1", server.port), timeout=timeout))


def _forged_first(query: dns.message.Message) -> list[Reply]:
    """Before the real answer: a forgery from another port, one with the wrong id, one for
    another question, and bytes that are no DNS message."""
    if query.question[0].rdtype != dns.rdatatype.TXT or not query.question[0].name.labels[0].startswith(b"_mta"):
        return [(answer(query).to_wire(), False)]  # the domain exists, with nothing else
    forged = answer(query, 'TXT "v=STSv1; id=forged"')
    wrong_id = answer(query, 'TXT "v=STSv1; id=wrongid"')
    wrong_id.id ^= 0x5A5A
    other = answer(dns.message.make_query("_mta-sts.elsewhere.test", "TXT"), 'TXT "v=STSv1; id=other"')
    other.id = query.id
    real = answer(query, 'TXT "v=STSv1; id=real"')
    return [
        (forged.to_wire(), True),
        (wrong_id.to_wire(), False),
        (other.to_wire(), False),
        (b"\x12\x34 not a DNS message", False),
        (real.to_wire(), False),
    ]


def test_check_takes_only_the_real_answer(nameserver: Callable[..., Nameserver], runner: CliRunner) -> None:
    server = nameserver(_forged_first)
    result = runner.invoke(
        app, ["check", "example.test", "--json", "--nameserver", f"127.0.0.1:{server.port}", "--timeout", "1"]
    )
    (report,) = json.loads(result.stdout)
    assert report["sts_record"] == "v=STSv1; id=real"


async def test_each_query_leaves_from_a_fresh_source_port(nameserver: Callable[..., Nameserver]) -> None:
    server = nameserver(lambda q: [(answer(q, 'TXT "v=STSv1; id=1"').to_wire(), False)])
    dns_client = client(server)
    for i in range(30):
        assert (await dns_client.txt(f"_mta-sts.d{i}.test")).found
    ports = [port for _, port in server.sources]
    assert len(ports) == 30
    assert len(set(ports)) >= 28  # random ephemeral ports: two collisions in 30 are already unlikely


async def test_a_truncated_answer_is_asked_again_over_tcp(nameserver: Callable[..., Nameserver]) -> None:
    parts = [f'TXT "v=STSv1;" " id=part{i:03d}" "{"x" * 60}"' for i in range(9)]

    def truncated(query: dns.message.Message) -> list[Reply]:
        response = answer(query)
        response.flags |= dns.flags.TC
        return [(response.to_wire(), False)]

    server = nameserver(truncated, lambda q: [(answer(q, *parts).to_wire(), False)])
    lookup = await client(server).txt("_mta-sts.split.test")
    assert lookup.found
    assert len(lookup.values) == 9
    assert server.tcp_queries == 1


@pytest.mark.parametrize(
    ("rcode", "status", "detail", "flags"),
    [
        (dns.rcode.NXDOMAIN, LookupStatus.ABSENT, "the name does not exist (NXDOMAIN)", {"nxdomain": True}),
        (dns.rcode.NOERROR, LookupStatus.ABSENT, "no TXT records", {"nxdomain": False}),
        (dns.rcode.SERVFAIL, LookupStatus.FAILED, "the nameserver answered SERVFAIL", {"server_refused": False}),
        (dns.rcode.REFUSED, LookupStatus.FAILED, "the nameserver REFUSED the query", {"server_refused": True}),
        (None, LookupStatus.FAILED, "no answer before the timeout", {"unanswered": True}),
    ],
)
async def test_each_failure_keeps_its_kind(
    nameserver: Callable[..., Nameserver], rcode: int | None, status: LookupStatus, detail: str, flags: dict[str, Any]
) -> None:
    server = nameserver(lambda q: [] if rcode is None else [(answer(q, rcode=rcode).to_wire(), False)])
    lookup = await client(server, timeout=0.6).txt("_mta-sts.example.test")
    assert (lookup.status, lookup.detail) == (status, detail)
    for name, value in flags.items():
        assert getattr(lookup, name) == value


async def test_an_answer_with_edns_is_read_as_well(nameserver: Callable[..., Nameserver]) -> None:
    def with_edns(query: dns.message.Message) -> list[Reply]:
        response = answer(query, "MX 20 mx2.example.test.", "MX 10 MX1.Example.Test.")
        response.use_edns(0, 0, 1232)
        return [(response.to_wire(), False)]

    lookup = await client(nameserver(with_edns)).mx("example.test")
    assert [(m.preference, m.host) for m in lookup.values] == [(10, "mx1.example.test"), (20, "mx2.example.test")]


async def test_cname_chain_tlsa_and_addresses(nameserver: Callable[..., Nameserver]) -> None:
    def zone(query: dns.message.Message) -> list[Reply]:
        question = query.question[0]
        response = dns.message.make_response(query)
        if question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "CNAME", "web.example.test."))
            response.answer.append(dns.rrset.from_text("web.example.test.", 300, "IN", "A", "192.0.2.7"))
        elif question.rdtype == dns.rdatatype.TLSA:
            response.answer.append(dns.rrset.from_text(question.name, 300, "IN", "TLSA", "3 1 1 " + "AB" * 32))
        return [(response.to_wire(), False)]

    dns_client = client(nameserver(zone))
    addresses = await dns_client.addresses("mta-sts.example.test")
    assert addresses.values == ("192.0.2.7",)
    assert addresses.cname_chain == ("mta-sts.example.test",)
    tlsa = await dns_client.tlsa("_25._tcp.mx1.example.test")
    assert tlsa.values == ("3 1 1 " + "ab" * 32,)
