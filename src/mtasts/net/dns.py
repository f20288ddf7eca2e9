"""DNS lookups through dnspython, with outcomes that keep "does not exist" apart from
"could not find out" (a temporary failure must never read as "no policy")."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Generic, TypeVar

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mtasts.core.addresses import is_public_address, refusal_reason
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

    async def _query(self, name: str, rdtype: str) -> tuple[Lookup[object], dns.resolver.Answer | None]:
        start = time.monotonic()
        qname = dns.name.from_text(name)
        try:
            async with self._slots:
                answer = await self._get_resolver().resolve(qname, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return self._outcome(
                name, rdtype, LookupStatus.ABSENT, "the name does not exist (NXDOMAIN)", start, True
            ), None
        except dns.resolver.NoNameservers as exc:
            detail = _no_nameservers(exc)
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
        chain = tuple(
            rrset.name.to_text(omit_final_dot=True)
            for rrset in answer.response.answer
            if rrset.rdtype == dns.rdatatype.CNAME
        )
        if answer.rrset is None:
            outcome = self._outcome(name, rdtype, LookupStatus.ABSENT, f"no {rdtype} records", start)
            return replace(outcome, cname_chain=chain), None
        return Lookup(name, rdtype, LookupStatus.FOUND, (), "", False, time.monotonic() - start, chain), answer

    @staticmethod
    def _outcome(
        name: str, rdtype: str, status: LookupStatus, detail: str, start: float, nxdomain: bool = False
    ) -> Lookup[object]:
        return Lookup(name, rdtype, status, (), detail, nxdomain, time.monotonic() - start)

    async def txt(self, name: str) -> Lookup[tuple[bytes, ...]]:
        """The TXT RRset at ``name``: each record as its tuple of character-strings."""
        outcome, answer = await self._query(name, "TXT")
        values: tuple[tuple[bytes, ...], ...] = ()
        if answer is not None and answer.rrset is not None:
            values = tuple(tuple(rdata.strings) for rdata in answer.rrset)
        return _with_values(outcome, values)

    async def mx(self, domain: str) -> Lookup[MxHost]:
        """The MX records of ``domain``, sorted by preference. A null MX (RFC 7505) is one
        record with host ``""``."""
        outcome, answer = await self._query(domain, "MX")
        values: tuple[MxHost, ...] = ()
        if answer is not None and answer.rrset is not None:
            values = tuple(
                sorted(
                    MxHost(rdata.preference, rdata.exchange.to_text(omit_final_dot=True).lower().rstrip("."))
                    for rdata in answer.rrset
                )
            )
        return _with_values(outcome, values)

    async def tlsa(self, name: str) -> Lookup[str]:
        outcome, answer = await self._query(name, "TLSA")
        values = () if answer is None or answer.rrset is None else tuple(r.to_text() for r in answer.rrset)
        return _with_values(outcome, values)

    async def addresses(self, host: str) -> Lookup[str]:
        """A and AAAA of ``host``, asked at the same time. Found when either has addresses;
        failed when none was found and either lookup failed. Non-public addresses are dropped
        (and said so) when the settings refuse them."""
        start = time.monotonic()
        results = await asyncio.gather(self._query(host, "A"), self._query(host, "AAAA"))
        found: list[str] = []
        for _, answer in results:
            if answer is not None and answer.rrset is not None:
                found.extend(rdata.to_text() for rdata in answer.rrset)
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


def _no_nameservers(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    for error in errors:
        text = str(error[3] if len(error) > 3 else error)
        if "SERVFAIL" in text:
            return "the nameserver answered SERVFAIL"
        if "REFUSED" in text:
            return "the nameserver REFUSED the query"
    return "no nameserver could answer"
