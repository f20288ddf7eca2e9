"""An authoritative nameserver for the lab's zone, over UDP and TCP.

:class:`Zone` holds the records and the per-name faults and answers one query message
(sans-I/O, :meth:`Zone.answer`); :func:`handle_wire` adds the wire format and truncation: a
UDP answer larger than the client's payload size (512 bytes, or its EDNS size) goes back empty
with TC set, so the client must ask again over TCP. :class:`DnsServer` is the thin asyncio
layer. A name with :attr:`~mtasts.lab.scenarios.DnsFault.TIMEOUT` never gets an answer.

With a ``delay`` every answer leaves that long after its query arrived, over UDP (a timer per
datagram, so queries overlap as they would on a real network) and TCP (each connection waits on
its own); a query that gets no answer still gets none.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from mtasts.lab._net import DEFAULT_LIMITS, Limits, check_delay, sanitize
from mtasts.lab.plan import Record
from mtasts.lab.scenarios import DnsFault
from mtasts.net.server import Listener, StreamServer

__all__ = ["DnsServer", "Zone", "handle_wire"]

log = logging.getLogger("mtasts.lab.dns")

UDP_MIN_PAYLOAD = 512  # RFC 1035 §4.2.1, without EDNS
UDP_MAX_PAYLOAD = 4096
TCP_MAX_MESSAGE = 65535
_MAX_CNAME_CHAIN = 8
_BIND_ATTEMPTS = 20

_Key = tuple[dns.name.Name, dns.rdatatype.RdataType]


class Zone:
    """The records and faults of one zone, and how its authoritative server answers."""

    def __init__(self, apex: str, records: Iterable[Record], faults: Mapping[str, DnsFault] | None = None) -> None:
        self.apex = dns.name.from_text(apex)
        self.rrsets: dict[_Key, dns.rrset.RRset] = {}
        for record in records:
            name = dns.name.from_text(record.name)
            rdtype = dns.rdatatype.from_text(record.rdtype)
            rrset = self.rrsets.get((name, rdtype))
            if rrset is None:
                rrset = self.rrsets[(name, rdtype)] = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
            rrset.add(
                dns.rdata.from_text(dns.rdataclass.IN, rdtype, record.data, origin=dns.name.root, relativize=False),
                record.ttl,
            )
        self.faults = {dns.name.from_text(name): fault for name, fault in (faults or {}).items()}
        # every name that owns records, and every empty non-terminal above one (NOERROR, no data)
        self.names: set[dns.name.Name] = set()
        for owner, _ in self.rrsets:
            name = owner
            while name != self.apex and name.is_subdomain(self.apex) and name not in self.names:
                self.names.add(name)
                name = name.parent()
        self.names.add(self.apex)

    def replace(self, name: str, rdtype: str, datas: Iterable[str], ttl: int = 300) -> None:
        """Make the RRset of ``name`` and ``rdtype`` ``datas`` (none: remove it), while serving:
        the hook tests use to change the world between two checks (``mtasts monitor``)."""
        owner, kind = dns.name.from_text(name), dns.rdatatype.from_text(rdtype)
        root = dns.name.root
        rdatas = [dns.rdata.from_text(dns.rdataclass.IN, kind, d, origin=root, relativize=False) for d in datas]
        if not rdatas:
            self.rrsets.pop((owner, kind), None)
            return
        self.rrsets[(owner, kind)] = dns.rrset.from_rdata_list(owner, ttl, rdatas)
        while owner != self.apex and owner.is_subdomain(self.apex) and owner not in self.names:
            self.names.add(owner)
            owner = owner.parent()

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to ``query``, or ``None`` when the server must stay silent."""
        response = dns.message.make_response(query)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN or not question.name.is_subdomain(self.apex):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        response.flags |= dns.flags.AA
        name = question.name
        for _ in range(_MAX_CNAME_CHAIN):
            fault = self.faults.get(name)
            if fault is DnsFault.TIMEOUT:
                return None
            if fault is DnsFault.SERVFAIL:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            if fault is DnsFault.NXDOMAIN or name not in self.names:
                response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(response)
                return response
            cname = self.rrsets.get((name, dns.rdatatype.CNAME))
            if cname is not None and question.rdtype != dns.rdatatype.CNAME:
                response.answer.append(cname)
                name = cname[0].target
                if not name.is_subdomain(self.apex):
                    return response
                continue
            found = self._lookup(name, question.rdtype)
            if found:
                response.answer.extend(found)
            else:
                self._add_soa(response)
            return response
        response.set_rcode(dns.rcode.SERVFAIL)  # a CNAME loop
        return response

    def _lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> list[dns.rrset.RRset]:
        if rdtype == dns.rdatatype.ANY:
            return [rrset for (owner, _), rrset in self.rrsets.items() if owner == name]
        rrset = self.rrsets.get((name, rdtype))
        return [] if rrset is None else [rrset]

    def _add_soa(self, response: dns.message.Message) -> None:
        soa = self.rrsets.get((self.apex, dns.rdatatype.SOA))
        if soa is not None:
            response.authority.append(soa)


def handle_wire(zone: Zone, data: bytes, *, udp: bool) -> bytes | None:
    """Answer one query in wire format; ``None`` means send nothing.

    Garbage is answered with FORMERR when it has a header to answer to, else dropped;
    responses (QR set) are never answered, so two servers cannot loop.
    """
    try:
        query = dns.message.from_wire(data)
    except dns.exception.DNSException:
        if len(data) < 12 or data[2] & 0x80:
            return None
        (ident,) = struct.unpack("!H", data[:2])
        return struct.pack("!HHHHHH", ident, 0x8000 | dns.rcode.FORMERR, 0, 0, 0, 0)
    if query.flags & dns.flags.QR:
        return None
    response = zone.answer(query)
    if response is None:
        return None
    if not udp:
        return response.to_wire(max_size=TCP_MAX_MESSAGE)
    size = UDP_MIN_PAYLOAD if query.edns < 0 else min(max(query.payload, UDP_MIN_PAYLOAD), UDP_MAX_PAYLOAD)
    try:
        return response.to_wire(max_size=size)
    except dns.exception.TooBig:
        truncated = dns.message.make_response(query)
        truncated.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
        truncated.set_rcode(response.rcode())
        return truncated.to_wire(max_size=size)


def safe_handle_wire(zone: Zone, data: bytes, *, udp: bool) -> bytes | None:
    """:func:`handle_wire`, with a bug turned into SERVFAIL and a log line instead of a dead server."""
    try:
        return handle_wire(zone, data, udp=udp)
    except Exception:
        log.exception("dns: unexpected error answering %s", sanitize(data))
        if len(data) < 12:
            return None
        (ident,) = struct.unpack("!H", data[:2])
        return struct.pack("!HHHHHH", ident, 0x8000 | dns.rcode.SERVFAIL, 0, 0, 0, 0)


class _UdpProtocol(asyncio.DatagramProtocol):
    """One datagram in, at most one datagram out (``delay`` seconds later, when there is one).

    A delayed answer is a timer, not a task: nothing waits in between, so a thousand queries in
    flight cost a thousand timer entries; one that fires after the socket closed sends nothing.
    """

    def __init__(self, zone: Zone, delay: float = 0.0) -> None:
        self.zone = zone
        self.delay = delay
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = safe_handle_wire(self.zone, data, udp=True)
        if reply is None:
            return
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._send, reply, addr)
        else:
            self._send(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str | object, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %r", exc)


class DnsServer:
    """The zone served on ``address`` over UDP and TCP on the same port (0: any free one), each
    answer ``delay`` seconds after its query (see :func:`~mtasts.lab._net.check_delay`)."""

    def __init__(
        self, zone: Zone, address: str, port: int = 0, *, limits: Limits = DEFAULT_LIMITS, delay: float = 0.0
    ) -> None:
        self.zone = zone
        self.address = address
        self.port = port
        self.limits = limits
        self.delay = check_delay(delay)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp = StreamServer("lab dns", limits=limits.server_limits())

    @property
    def tcp(self) -> StreamServer:
        """The TCP listener and its connections (caps, counts)."""
        return self._tcp

    async def start(self) -> None:
        """Bind UDP then TCP on one port number, retrying when that number is taken for TCP."""
        loop = asyncio.get_running_loop()
        for _ in range(_BIND_ATTEMPTS):
            # bound here, not by create_datagram_endpoint: a taken port is then the kernel's own
            # "Address already in use" on every loop (uvloop rewords it and leaks the transport)
            udp = socket.socket(socket.AF_INET6 if ":" in self.address else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind((self.address, self.port))
            except OSError:
                udp.close()
                raise
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self.zone, self.delay), sock=udp
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                await self._tcp.start([Listener(self.address, self._serve_tcp, name="lab dns")], port)
            except OSError:
                transport.close()
                if self.port != 0:
                    raise
                continue
            self._udp, self.port = transport, port
            return
        raise OSError("no port free for both UDP and TCP")

    async def stop(self) -> None:
        """Stop listening and end every TCP connection."""
        await self._tcp.stop()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
            await asyncio.sleep(0)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Length-prefixed queries (RFC 1035 §4.2.2), answered in order until the client goes."""
        timeout = self.limits.idle_timeout
        for _ in range(self.limits.max_dns_queries_per_connection):
            (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), timeout))
            data = await asyncio.wait_for(reader.readexactly(length), timeout)
            reply = safe_handle_wire(self.zone, data, udp=False)
            if reply is not None:
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await asyncio.wait_for(writer.drain(), timeout)
