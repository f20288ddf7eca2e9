"""DNS lookups, with outcomes that keep "does not exist" apart from "could not find out" (a
temporary failure must never read as "no policy").

dnspython configures the resolver (``/etc/resolv.conf`` or ``--nameserver``) and is the
reference for every rule; the resolution loop here follows ``dns.asyncresolver.Resolver.resolve``
step for step, but sends each query from a fresh socket of its own (a new random source port
per query, as dnspython does: it resists off-path spoofing) and reads the common responses with
:mod:`mtasts.net._dnswire`, which costs a tenth of dnspython's message objects. TCP after a
truncated answer and every unusual response go through dnspython itself.
"""

from __future__ import annotations

import _socket
import asyncio
import functools
import random
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Generic, TypeVar, cast

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

from mtasts.core.addresses import is_public_address, refusal_reason
from mtasts.net import _dnswire
from mtasts.net.settings import NetworkSettings

__all__ = ["DnsClient", "Lookup", "LookupStatus", "MxHost", "is_public_address"]

T = TypeVar("T")


class LookupStatus(StrEnum):
    FOUND = "found"
    ABSENT = "absent"  # NXDOMAIN or no records of that type: an authoritative "no"
    FAILED = "failed"  # SERVFAIL, timeout, refused: nothing is known


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """The outcome of one lookup. ``detail`` says what happened in words."""

    name: str
    rdtype: str
    status: LookupStatus
    values: tuple[T, ...] = ()
    detail: str = ""
    nxdomain: bool = False
    elapsed: float = 0.0
    cname_chain: tuple[str, ...] = field(default=())
    refused: tuple[str, ...] = ()  # addresses found but not to be contacted (non-public)
    unanswered: bool = False  # FAILED without any answer (timeout, network error): maybe our resolver is dead
    server_refused: bool = False  # FAILED because the nameserver answered REFUSED

    @property
    def found(self) -> bool:
        return self.status is LookupStatus.FOUND


@dataclass(frozen=True, slots=True, order=True)
class MxHost:
    """One MX record: ``host`` in lower case A-labels without the root dot."""

    preference: int
    host: str


class DnsClient:
    """The resolver every part of mtasts uses, so that ``--nameserver`` works end to end.

    Built without I/O; the system configuration (``/etc/resolv.conf``) is read on first use
    when no nameserver is given.
    """

    def __init__(self, settings: NetworkSettings, *, max_in_flight: int = 128) -> None:
        self._settings = settings
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._servers: list[tuple[str, int]] | None = None  # the resolver's, as (address, port)
        self._alive: asyncio.Future[bool] | None = None
        # a bulk run must not burst thousands of UDP queries at once: lost packets read as failures
        self._slots = asyncio.Semaphore(max_in_flight)

    def _get_resolver(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            nameserver = self._settings.nameserver
            resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
            if nameserver is not None:
                resolver.nameservers = [dns.nameserver.Do53Nameserver(nameserver[0], nameserver[1])]
            # the whole lookup may take `timeout`; a lost UDP packet is retried well before that
            resolver.lifetime = self._settings.timeout
            resolver.timeout = max(0.25, min(2.0, self._settings.timeout / 4))
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    def describe_nameservers(self) -> str:
        """The resolver this client asks, in words for a finding about it."""
        if self._settings.nameserver is not None:
            address, port = self._settings.nameserver
            shown = f"[{address}]" if ":" in address else address
            return f"the nameserver {shown}:{port} (--nameserver)"
        servers = ", ".join(_server_text(s) for s in self._get_resolver().nameservers) or "none"
        return f"the system resolver ({servers}, from /etc/resolv.conf)"

    async def nameservers_answer(self) -> bool:
        """Whether any configured nameserver answers at all (any reply, even REFUSED, says it is
        alive). Asked once per client, when lookups come back with no answer: that tells "our
        resolver is dead" (local trouble) from "this domain's servers do not answer"."""
        if self._alive is None:
            self._alive = asyncio.ensure_future(self._probe_nameservers())
        return await asyncio.shield(self._alive)

    async def _probe_nameservers(self) -> bool:
        query = dns.message.make_query(dns.name.root, dns.rdatatype.NS)
        wait = max(0.5, min(3.0, self._settings.timeout / 2))
        for server in self._get_resolver().nameservers:
            address, port = _server_address(server)
            for _ in range(2):  # a lost datagram is not a dead server
                try:
                    await dns.asyncquery.udp(query, address, timeout=wait, port=port, ignore_unexpected=True)
                except (dns.exception.DNSException, OSError, ValueError):
                    continue
                return True
        return False

    async def _query(self, name: str, rdtype: str) -> tuple[Lookup[object], _dnswire.RRset | None]:
        start = time.monotonic()
        query = _Query.parse(name, _RDTYPES.get(rdtype) or dns.rdatatype.from_text(rdtype))  # a bad name raises
        try:
            async with self._slots:
                response, found = await self._resolve(query)
        except _Nxdomain:
            return self._outcome(
                name, rdtype, LookupStatus.ABSENT, "the name does not exist (NXDOMAIN)", start, True
            ), None
        except _NoNameservers as exc:
            detail = _no_nameservers(exc.errors)
            outcome = self._outcome(name, rdtype, LookupStatus.FAILED, detail, start)
            return replace(outcome, server_refused="REFUSED" in detail), None
        except dns.exception.Timeout:
            outcome = self._outcome(name, rdtype, LookupStatus.FAILED, "no answer before the timeout", start)
            return replace(outcome, unanswered=True), None
        except OSError as exc:
            outcome = self._outcome(name, rdtype, LookupStatus.FAILED, f"lookup failed: {exc.strerror or exc}", start)
            return replace(outcome, unanswered=True), None
        except dns.exception.DNSException as exc:
            return self._outcome(name, rdtype, LookupStatus.FAILED, f"lookup failed: {exc}", start), None
        chain = tuple(rrset.name for rrset in response.answer if rrset.rdtype == dns.rdatatype.CNAME)
        if found is None:
            outcome = self._outcome(name, rdtype, LookupStatus.ABSENT, f"no {rdtype} records", start)
            return replace(outcome, cname_chain=chain), None
        elapsed = time.monotonic() - start
        return Lookup(name, rdtype, LookupStatus.FOUND, found.values, "", False, elapsed, chain), found

    async def _resolve(self, query: _Query) -> tuple[_dnswire.Response, _dnswire.RRset | None]:
        """Ask the nameservers as ``dns.asyncresolver.Resolver.resolve`` does (its
        ``_Resolution``: the same order, retries, back-off, TCP after truncation and reasons to
        drop a nameserver), with the messages read by :mod:`mtasts.net._dnswire`."""
        resolver = self._get_resolver()
        query.configure(resolver)
        if self._servers is None:
            self._servers = [_server_address(server) for server in resolver.nameservers]
        servers = self._servers[:]
        if resolver.rotate:
            random.shuffle(servers)
        current = servers[:]
        errors: list[str] = []
        backoff = 0.10
        start = time.monotonic()
        server = ("", 0)
        tcp = retry_tcp = False
        while True:
            delay = 0.0
            if retry_tcp:
                tcp, retry_tcp = True, False
            else:
                if not current:
                    if not servers:
                        raise _NoNameservers(errors)
                    current = servers[:]
                    delay, backoff = backoff, min(backoff * 2, 2)
                server, tcp = current.pop(0), False
            if delay:
                await asyncio.sleep(delay)
            elapsed = time.monotonic() - start
            if elapsed >= resolver.lifetime:
                raise dns.resolver.LifetimeTimeout(timeout=elapsed, errors=[])  # type: ignore[no-untyped-call]
            timeout = min(resolver.lifetime - elapsed, resolver.timeout)
            qid = secrets.randbits(16)
            try:
                if tcp:
                    response = await _tcp(query, qid, server, timeout)
                else:
                    response = await _udp(query, qid, server, timeout)
            except Exception as exc:
                errors.append(str(exc))
                if isinstance(exc, dns.exception.FormError | EOFError | OSError | NotImplementedError):
                    servers.remove(server)
                elif isinstance(exc, dns.message.Truncated):
                    if tcp:
                        servers.remove(server)
                    else:
                        retry_tcp = True
                continue
            rcode = response.rcode
            if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                try:
                    found = _dnswire.chase(response)
                except Exception as exc:
                    errors.append(str(exc))
                    servers.remove(server)
                    continue
                if rcode == dns.rcode.NXDOMAIN:
                    raise _Nxdomain
                return response, found
            if rcode == dns.rcode.YXDOMAIN:
                raise dns.resolver.YXDOMAIN
            if rcode != dns.rcode.SERVFAIL or not resolver.retry_servfail:
                servers.remove(server)
            errors.append(dns.rcode.to_text(cast(dns.rcode.Rcode, rcode)))

    @staticmethod
    def _outcome(
        name: str, rdtype: str, status: LookupStatus, detail: str, start: float, nxdomain: bool = False
    ) -> Lookup[object]:
        return Lookup(name, rdtype, status, (), detail, nxdomain, time.monotonic() - start)

    async def txt(self, name: str) -> Lookup[tuple[bytes, ...]]:
        """The TXT RRset at ``name``: each record as its tuple of character-strings."""
        outcome, _ = await self._query(name, "TXT")  # the values as they are (the RRset's)
        return cast(Lookup[tuple[bytes, ...]], outcome)

    async def mx(self, domain: str) -> Lookup[MxHost]:
        """The MX records of ``domain``, sorted by preference. A null MX (RFC 7505) is one
        record with host ``""``."""
        outcome, answer = await self._query(domain, "MX")
        if answer is None:
            return cast(Lookup[MxHost], outcome)
        values = sorted(MxHost(*value) for value in cast(tuple[tuple[int, str], ...], answer.values))
        return _with_values(outcome, values)

    async def tlsa(self, name: str) -> Lookup[str]:
        outcome, _ = await self._query(name, "TLSA")  # the values as they are: their text
        return cast(Lookup[str], outcome)

    async def addresses(self, host: str) -> Lookup[str]:
        """A and AAAA of ``host``, asked at the same time. Found when either has addresses;
        failed when none was found and either lookup failed. Non-public addresses are dropped
        (and said so) when the settings refuse them."""
        start = time.monotonic()
        results = await asyncio.gather(self._query(host, "A"), self._query(host, "AAAA"))
        found: list[str] = []
        for _, answer in results:
            if answer is not None:
                found.extend(cast(tuple[str, ...], answer.values))
        elapsed = time.monotonic() - start
        chain = tuple(dict.fromkeys(c for outcome, _ in results for c in outcome.cname_chain))
        refused: list[str] = []
        if not self._settings.allow_private:
            refused = [a for a in found if not is_public_address(a)]
            found = [a for a in found if is_public_address(a)]
        if found:
            return Lookup(host, "A/AAAA", LookupStatus.FOUND, tuple(found), "", False, elapsed, chain)
        failed = [o for o, _ in results if o.status is LookupStatus.FAILED]
        if failed:
            return Lookup(
                host,
                "A/AAAA",
                LookupStatus.FAILED,
                (),
                failed[0].detail,
                False,
                elapsed,
                chain,
                unanswered=all(o.unanswered for o in failed),
                server_refused=all(o.server_refused for o in failed),
            )
        if refused:
            detail = (
                f"only non-public addresses ({', '.join(refused)}), which this check refuses to contact "
                f"(--refuse-private: {refusal_reason(refused[0])})"
            )
            return Lookup(host, "A/AAAA", LookupStatus.FAILED, (), detail, False, elapsed, chain, tuple(refused))
        nxdomain = all(o.nxdomain for o, _ in results)
        detail = "the name does not exist (NXDOMAIN)" if nxdomain else "no A or AAAA records"
        return Lookup(host, "A/AAAA", LookupStatus.ABSENT, (), detail, nxdomain, elapsed, chain)


def _with_values(outcome: Lookup[object], values: Sequence[T]) -> Lookup[T]:
    return Lookup(
        outcome.name,
        outcome.rdtype,
        outcome.status,
        tuple(values),
        outcome.detail,
        outcome.nxdomain,
        outcome.elapsed,
        outcome.cname_chain,
        unanswered=outcome.unanswered,
        server_refused=outcome.server_refused,
    )


def _server_address(server: object) -> tuple[str, int]:
    if isinstance(server, dns.nameserver.Do53Nameserver):
        return server.address, server.port
    return str(server), 53


def _server_text(server: object) -> str:
    address, port = _server_address(server)
    shown = f"[{address}]" if ":" in address else address
    return shown if port == 53 else f"{shown}:{port}"


def _no_nameservers(errors: list[str]) -> str:
    """In words, from the errors of each attempt (an rcode's name, or an exception's text)."""
    for text in errors:
        if "SERVFAIL" in text:
            return "the nameserver answered SERVFAIL"
        if "REFUSED" in text:
            return "the nameserver REFUSED the query"
    return "no nameserver could answer"


class _Nxdomain(Exception):
    """The name does not exist (dnspython's ``NXDOMAIN``)."""


class _NoNameservers(Exception):
    """Every nameserver failed or was dropped; ``errors`` says how, attempt by attempt."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("no nameserver could answer")
        self.errors = errors


_RDTYPES = {kind: dns.rdatatype.from_text(kind) for kind in ("TXT", "MX", "TLSA", "A", "AAAA")}
_FLAGS_RD = 0x0100
_QR, _OPCODE = 0x8000, 0x7800
_NO_QUESTION_RCODES = frozenset({dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED})


class _Query:
    """One question, and the request that asks it as dnspython's resolver would."""

    __slots__ = ("flags", "key", "message", "name", "rdtype", "wire_name")

    def __init__(
        self, name: str, rdtype: dns.rdatatype.RdataType, wire_name: bytes | None, key: _dnswire.NameKey
    ) -> None:
        self.name = name
        self.rdtype = rdtype
        self.wire_name = wire_name  # None: dnspython builds the request
        self.key = key
        self.flags = _FLAGS_RD
        self.message: dns.message.QueryMessage | None = None

    @classmethod
    def parse(cls, name: str, rdtype: dns.rdatatype.RdataType) -> _Query:
        """Raises dnspython's error for a name it cannot write (too long, an empty label)."""
        plain = _dnswire.qname_wire(name)
        if plain is not None:
            return cls(name, rdtype, plain[0], plain[1])
        return cls(name, rdtype, None, _dnswire.name_key(dns.name.from_text(name)))

    def configure(self, resolver: dns.resolver.BaseResolver) -> None:
        """EDNS or header flags from the resolver's configuration: dnspython writes that request."""
        if self.wire_name is not None and resolver.edns < 0 and resolver.flags is None:
            return
        message = dns.message.make_query(dns.name.from_text(self.name), self.rdtype)
        message.use_edns(resolver.edns, resolver.ednsflags, resolver.payload, options=resolver.ednsoptions)
        if resolver.flags is not None:
            message.flags = dns.flags.Flag(resolver.flags)
        self.message, self.wire_name, self.flags = message, None, int(message.flags)

    def wire(self, qid: int) -> bytes:
        if self.wire_name is not None:
            return _dnswire.encode_query(qid, self.wire_name, self.rdtype)
        return self.request(qid).to_wire()

    def request(self, qid: int) -> dns.message.QueryMessage:
        message = self.message or dns.message.make_query(dns.name.from_text(self.name), self.rdtype)
        message.id = qid
        return message

    def answered_by(self, response: _dnswire.Response, qid: int) -> bool:
        """``Message.is_response``: the same id and opcode, and the same question."""
        if not response.flags & _QR or response.id != qid or (response.flags ^ self.flags) & _OPCODE:
            return False
        if response.rcode in _NO_QUESTION_RCODES and not response.question:
            return True
        return set(response.question) == {(self.key, self.rdtype, _dnswire.CLASS_IN)}


def _read(wire: bytes) -> _dnswire.Response:
    try:
        return _dnswire.decode(wire)
    except _dnswire.Unusual:
        return _dnswire.from_message(dns.message.from_wire(wire, raise_on_truncation=True))


async def _udp(query: _Query, qid: int, server: tuple[str, int], timeout: float) -> _dnswire.Response:
    """``dns.asyncquery.udp`` as the resolver calls it: datagrams from another address, that do
    not parse, or that answer another query are ignored until the timeout; a truncated answer
    to this query raises ``Truncated``. The socket is new (a fresh random source port) and not
    connected, like dnspython's."""
    family, destination = _destination(*server)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    sock = _datagram_socket(family)
    try:
        wire = query.wire(qid)
        while True:
            try:
                sock.sendto(wire, destination)
                break
            except (BlockingIOError, InterruptedError):
                await _ready(loop, sock, deadline, timeout, write=True)
        # the answer cannot be there yet: wait before the first read (which would only raise
        # BlockingIOError, an exception and a traceback per query)
        await _ready(loop, sock, deadline, timeout, write=False)
        while True:
            try:
                data, source = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                await _ready(loop, sock, deadline, timeout, write=False)
                continue
            if not _same_address(family, source, destination):
                continue
            try:
                response = _read(data)
            except dns.message.Truncated as truncated:
                partial = truncated.message()  # type: ignore[no-untyped-call]
                if partial is not None and query.answered_by(_dnswire.from_message(partial), qid):
                    raise
                continue
            except Exception:  # noqa: S112 - dnspython ignores what does not parse (ignore_errors)
                continue
            if query.answered_by(response, qid):
                return response
    finally:
        sock.close()


async def _ready(
    loop: asyncio.AbstractEventLoop, sock: _socket.socket, deadline: float, timeout: float, *, write: bool
) -> None:
    """Wait until ``sock`` is readable (or writable); ``Timeout`` at the deadline."""
    if loop.time() >= deadline:
        raise dns.exception.Timeout(timeout=timeout)  # type: ignore[no-untyped-call]
    waiter: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    if write:
        loop.add_writer(fd, _wake, waiter)
    else:
        loop.add_reader(fd, _wake, waiter)
    expiry = loop.call_at(deadline, _wake, waiter)
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
        expiry.cancel()


def _datagram_socket(family: int) -> _socket.socket:
    """A new non-blocking UDP socket (the kernel picks a random source port). The C socket
    type, not :class:`socket.socket`: its Python-level constructor and close wrap nothing a
    datagram needs, and cost a tenth of a query's CPU."""
    sock = _socket.socket(family, _DATAGRAM)
    sock.setblocking(False)  # a no-op where SOCK_NONBLOCK already made it so
    return sock


_DATAGRAM = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)


@functools.lru_cache(maxsize=64)
def _destination(address: str, port: int) -> tuple[int, tuple[object, ...]]:
    """The address family and socket address of a nameserver (dnspython parses addresses
    slowly, and every query goes to one of the same few)."""
    family = dns.inet.af_for_address(address)
    return family, dns.inet.low_level_address_tuple((address, port), family)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _same_address(family: int, got: tuple[object, ...], wanted: tuple[object, ...]) -> bool:
    if got == wanted:  # the kernel writes the address as it was given, almost always
        return True
    try:
        same = dns.inet.inet_pton(family, str(got[0])) == dns.inet.inet_pton(family, str(wanted[0]))
    except dns.exception.SyntaxError:
        return False
    return same and got[1:] == wanted[1:]


async def _tcp(query: _Query, qid: int, server: tuple[str, int], timeout: float) -> _dnswire.Response:
    """After a truncated answer: dnspython's own TCP query (rare, so its cost does not matter)."""
    address, port = server
    response = await dns.asyncquery.tcp(query.request(qid), address, timeout=timeout, port=port)
    return _dnswire.from_message(response)
