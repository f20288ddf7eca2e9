"""Where the resolver learns things: the ``_mta-sts`` TXT record, the MX RRset, the policy.

:class:`Sources` is the boundary the driver talks to (tests put counting or scripted twins in
its place); :class:`NetworkSources` is the real one, built on the inspector's adapters
(:class:`~mtasts.net.dns.DnsClient` and :func:`~mtasts.net.https.fetch_policy`: validated
HTTPS, no redirects, the 64 KiB cap) and honouring :class:`~mtasts.net.settings.NetworkSettings`
(``--nameserver``, ``--ca-file``, the testing ports, ``--refuse-private``).

Discovery is record first: the TXT record is asked alone, and the policy is fetched only when
the decision module says so (a new id, an expired or missing policy, a refresh).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import dns.resolver

from mtasts.core.problems import ParseError
from mtasts.core.record import select_sts_record
from mtasts.net.dns import DnsClient, Lookup, LookupStatus
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


class _TtlDnsClient(DnsClient):
    """The inspector's DNS client, also reporting the answer's TTL (which the cache needs and
    the inspector does not)."""

    async def with_ttl(self, name: str, rdtype: str) -> tuple[Lookup[object], dns.resolver.Answer | None, float | None]:
        outcome, answer = await self._query(name, rdtype)
        ttl = None if answer is None or answer.rrset is None else float(answer.rrset.ttl)
        return outcome, answer, ttl


class NetworkSources:
    """DNS and HTTPS as configured by ``settings``. Building it connects to nothing."""

    def __init__(self, settings: NetworkSettings) -> None:
        self.settings = settings
        self.dns = _TtlDnsClient(settings)

    async def txt(self, domain: str) -> TxtResult:
        outcome, answer, ttl = await self.dns.with_ttl(f"_mta-sts.{domain}", "TXT")
        if outcome.status is LookupStatus.FAILED:
            return TxtResult(TxtStatus.FAILED, detail=f"_mta-sts.{domain} TXT: {outcome.detail}")
        if answer is None or answer.rrset is None:
            return TxtResult(TxtStatus.ABSENT, ttl=ttl, detail=f"_mta-sts.{domain} TXT: {outcome.detail}")
        records = [tuple(rdata.strings) for rdata in answer.rrset]
        try:
            record = select_sts_record(records)
        except ParseError as exc:  # none, several or an invalid one: no policy (RFC 8461 §3.1)
            return TxtResult(TxtStatus.ABSENT, ttl=ttl, detail=f"_mta-sts.{domain} TXT: {exc}")
        return TxtResult(TxtStatus.FOUND, record.id, ttl)

    async def mx(self, domain: str) -> MxResult:
        outcome, answer, ttl = await self.dns.with_ttl(domain, "MX")
        if outcome.status is LookupStatus.FAILED:
            return None, None
        if answer is None or answer.rrset is None:
            return (), ttl
        hosts = sorted({rdata.exchange.to_text(omit_final_dot=True).lower() for rdata in answer.rrset} - {"", "."})
        return tuple(hosts), ttl

    async def fetch(self, domain: str) -> FetchResult:
        result = await fetch_policy(domain, self.dns, self.settings, now=dt.datetime.now(dt.UTC))
        if result.failure is not None or result.policy is None:
            return FetchResult(None, detail=f"{result.url}: {result.detail or result.failure}")
        return FetchResult(result.policy, result.body)
