"""Where the resolver learns things: the ``_mta-sts`` TXT record, the MX RRset, the policy.

:class:`Sources` is the boundary the driver talks to (tests put counting or scripted twins in
its place); :class:`NetworkSources` is the real one: the policy fetch is the inspector's
(:func:`~mtasts.net.https.fetch_policy` over :class:`~mtasts.net.dns.DnsClient`: validated
HTTPS, no redirects, the 64 KiB cap), the TXT and MX lookups keep their TTLs (which the cache
rules need); all honour :class:`~mtasts.net.settings.NetworkSettings` (``--nameserver``,
``--ca-file``, the testing ports, ``--refuse-private``).

Discovery is record first: the TXT record is asked alone, and the policy is fetched only when
the decision module says so (a new id, an expired or missing policy, a refresh).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol, cast

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.resolver
import dns.rrset

from mtasts.core.problems import ParseError
from mtasts.core.record import select_sts_record
from mtasts.net.dns import DnsClient, LookupStatus
from mtasts.net.https import fetch_policy
from mtasts.net.settings import NetworkSettings
from mtasts.resolver.cache import FetchResult, TxtResult, TxtStatus

__all__ = ["MxResult", "NetworkSources", "Sources"]

MxResult = tuple[tuple[str, ...] | None, float | None]
"""The MX host names (``None``: the lookup failed) and the RRset's TTL."""


class Sources(Protocol):
    async def txt(self, domain: str) -> TxtResult:
        """The ``_mta-sts.<domain>`` record's id, or why there is none."""
        ...

    async def mx(self, domain: str) -> MxResult: ...

    async def fetch(self, domain: str) -> FetchResult: ...


class _RecordLookups:
    """TXT and MX lookups that keep the TTL, through dnspython's resolver configured as the
    inspector's :class:`~mtasts.net.dns.DnsClient` is (``--nameserver``, the timeout).

    The cache needs what the inspector does not: the RRset's TTL, and for a "no" answer the
    negative TTL (RFC 2308: the SOA's TTL bounded by its minimum field). These lookups are off
    the answer path (first lookups and background re-checks), so dnspython's own resolution,
    with its full message objects, costs nothing that matters here.
    """

    def __init__(self, settings: NetworkSettings) -> None:
        self._settings = settings
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _get(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            nameserver = self._settings.nameserver
            resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
            if nameserver is not None:
                resolver.nameservers = [dns.nameserver.Do53Nameserver(nameserver[0], nameserver[1])]
            resolver.lifetime = self._settings.timeout
            resolver.timeout = max(0.25, min(2.0, self._settings.timeout / 4))
            resolver.cache = None
            self._resolver = resolver
        return self._resolver

    async def query(self, name: str, rdtype: str) -> _Looked:
        """(status, the RRset or ``None``, its TTL or the negative TTL, what happened)."""
        try:
            qname = dns.name.from_text(name)
            answer = await self._get().resolve(qname, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as exc:
            response = next(iter(exc.responses().values()), None)  # type: ignore[no-untyped-call]
            return LookupStatus.ABSENT, None, _negative_ttl(response), "the name does not exist (NXDOMAIN)"
        except dns.resolver.LifetimeTimeout:
            return LookupStatus.FAILED, None, None, f"no answer within {self._settings.timeout:g} s"
        except dns.resolver.NoNameservers as exc:
            return LookupStatus.FAILED, None, None, f"no nameserver answered usefully: {exc}"
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            return LookupStatus.FAILED, None, None, f"lookup failed: {exc}"
        if answer.rrset is None:
            return LookupStatus.ABSENT, None, _negative_ttl(answer.response), f"no {rdtype} records"
        return LookupStatus.FOUND, answer.rrset, float(answer.rrset.ttl), ""


_Looked = tuple[LookupStatus, dns.rrset.RRset | None, float | None, str]


def _negative_ttl(response: dns.message.Message | None) -> float | None:
    """How long a "no" may be cached (RFC 2308 §5): the SOA's TTL, at most its minimum field."""
    if response is None:
        return None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            soa = cast(dns.rdtypes.ANY.SOA.SOA, rrset[0])
            return float(min(rrset.ttl, soa.minimum))
    return None


class NetworkSources:
    """DNS and HTTPS as configured by ``settings``. Building it connects to nothing."""

    def __init__(self, settings: NetworkSettings) -> None:
        self.settings = settings
        self.dns = DnsClient(settings)  # the policy host's addresses, for the fetch
        self.records = _RecordLookups(settings)

    async def txt(self, domain: str) -> TxtResult:
        name = f"_mta-sts.{domain}"
        status, rrset, ttl, detail = await self.records.query(name, "TXT")
        if status is LookupStatus.FAILED:
            return TxtResult(TxtStatus.FAILED, detail=f"{name} TXT: {detail}")
        if rrset is None:
            return TxtResult(TxtStatus.ABSENT, ttl=ttl, detail=f"{name} TXT: {detail}")
        records = [tuple(cast(dns.rdtypes.ANY.TXT.TXT, rdata).strings) for rdata in rrset]
        try:
            record = select_sts_record(records)
        except ParseError as exc:  # none, several or an invalid one: no policy (RFC 8461 §3.1)
            return TxtResult(TxtStatus.ABSENT, ttl=ttl, detail=f"{name} TXT: {exc}")
        return TxtResult(TxtStatus.FOUND, record.id, ttl)

    async def mx(self, domain: str) -> MxResult:
        status, rrset, ttl, _ = await self.records.query(domain, "MX")
        if status is LookupStatus.FAILED:
            return None, None
        if rrset is None:
            return (), ttl
        exchanges = (cast(dns.rdtypes.ANY.MX.MX, rdata).exchange for rdata in rrset)
        hosts = sorted({name.to_text(omit_final_dot=True).lower() for name in exchanges} - {"", "."})
        return tuple(hosts), ttl

    async def fetch(self, domain: str) -> FetchResult:
        result = await fetch_policy(domain, self.dns, self.settings, now=dt.datetime.now(dt.UTC))
        if result.failure is not None or result.policy is None:
            return FetchResult(None, detail=f"{result.url}: {result.detail or result.failure}")
        return FetchResult(result.policy, result.body)
