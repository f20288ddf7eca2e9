"""The inspector: gather everything about a domain concurrently, then analyse it.

Bounded per domain, whatever the domain publishes: every lookup, fetch and probe runs as its
own task under the settings' ``timeout``, at most ``max_mx_hosts`` MX hosts (most preferred
first) and ``max_addresses`` addresses of each are probed, and the whole domain has a time
budget (``domain_timeout``) after which what has not finished is cancelled and reported as
not probed. Nothing that goes wrong while probing one host escapes: an unexpected exception
becomes a finding on that host, and a bulk run always reports every other domain.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from mtasts.check.analysis import Analysis, InternalError, Observations, Unprobed, analyse
from mtasts.check.limits import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_ADDRESSES,
    DEFAULT_MAX_MX_HOSTS,
    DOMAIN_TIMEOUT_FACTOR,
    CheckLimits,
)
from mtasts.core.fetch import FetchFailureKind, policy_host, policy_url
from mtasts.core.findings import Finding
from mtasts.core.hostname import check_host_name, to_alabel
from mtasts.core.problems import Severity
from mtasts.core.verdict import Verdict, sender_verdict, unknown_verdict
from mtasts.net._streams import silence_starttls_eof_warning
from mtasts.net.dns import DnsClient, Lookup, LookupStatus, MxHost
from mtasts.net.https import PolicyFetch, fetch_policy
from mtasts.net.settings import NetworkSettings
from mtasts.net.smtp import MxProbe, SmtpFailureKind, probe_mx

__all__ = [
    "DEFAULT_MAX_ADDRESSES",
    "DEFAULT_MAX_MX_HOSTS",
    "DOMAIN_TIMEOUT_FACTOR",
    "CheckLimits",
    "DomainReport",
    "Inspector",
    "normalize_domain",
]

log = logging.getLogger("mtasts.check")
T = TypeVar("T")

_PORT25_MIN_HOSTS = 3
_PORT25_MIN_DOMAINS = 2


@dataclass(frozen=True, slots=True)
class DomainReport:
    """The result for one domain: findings, the sender's verdict and what was observed."""

    domain: str
    findings: tuple[Finding, ...]
    verdict: Verdict
    analysis: Analysis | None
    observations: Observations | None
    elapsed: float
    checked_at: datetime

    @property
    def worst(self) -> Severity | None:
        severities = {f.severity for f in self.findings}
        for level in (Severity.ERROR, Severity.WARNING):
            if level in severities:
                return level
        return None

    def to_dict(self) -> dict[str, object]:
        """The JSON shape documented in docs/check.md."""
        analysis = self.analysis
        fetch = None if self.observations is None else self.observations.fetch
        return {
            "domain": self.domain,
            "status": "error" if self.worst is Severity.ERROR else "warning" if self.worst else "ok",
            "findings": [f.to_dict() for f in self.findings],
            "verdict": self.verdict.to_dict(),
            "sts_record": None if analysis is None or analysis.sts_record is None else analysis.sts_record.to_text(),
            "policy": None if analysis is None or analysis.policy is None else analysis.policy.to_dict(),
            "policy_url": None if fetch is None else fetch.url,
            "mx": [] if self.observations is None else [m.host for m in self.observations.mx.values],
            "mx_hosts": [] if self.observations is None else mx_states(self.observations),
            "tlsrpt": None if analysis is None or analysis.tlsrpt is None else list(analysis.tlsrpt.rua),
            "checked_at": self.checked_at.isoformat(),
            "elapsed_seconds": round(self.elapsed, 3),
        }


def mx_states(obs: Observations) -> list[dict[str, object]]:
    """Per MX host: what was probed, what was not and why (the ``mx_hosts`` JSON key)."""
    unprobed_hosts = {u.host: u for u in obs.unprobed if u.address is None}
    unprobed_addresses = {(u.host, u.address): u for u in obs.unprobed if u.address is not None}
    out: list[dict[str, object]] = []
    for mx in dict.fromkeys(m for m in obs.mx.values if m.host):
        host = mx.host
        lookup = obs.addresses.get(host)
        entries: list[dict[str, object]] = []
        for probe in (p for p in obs.probes if p.host == host):
            result = "ok" if probe.ok else (probe.failure.value if probe.failure else "tls-failed")
            entries.append({"address": probe.address, "state": "probed", "result": result})
        for (h, address), skipped in unprobed_addresses.items():
            if h == host:
                entries.append({"address": address, "state": "not-probed", "reason": skipped.reason})
        if host in unprobed_hosts:
            state, reason = "not-probed", unprobed_hosts[host].reason
        elif lookup is None or not lookup.found:
            state, reason = "no-address", "" if lookup is None else lookup.detail
        elif any(e["state"] == "not-probed" for e in entries):
            state, reason = "partly-probed", ""
        else:
            state, reason = "probed", ""
        out.append({"host": host, "preference": mx.preference, "state": state, "reason": reason, "addresses": entries})
    return out


def normalize_domain(text: str) -> tuple[str | None, str]:
    """``(A-label domain, "")`` or ``(None, why it is invalid)``."""
    name = to_alabel(text.strip())
    if name is None:
        return None, f"{text!r} is not a valid domain name (IDNA conversion failed)"
    issue = check_host_name(name)
    if issue is not None:
        return None, f"{text!r} is not a valid domain name: {issue[1]}"
    if "." not in name:
        return None, f"{text!r} is not a fully qualified domain name"
    return name, ""


@dataclass(slots=True)
class _Gathered:
    """What one domain's MX side has produced so far: filled in as results arrive, so that when
    the budget cuts the gathering short, everything already learned is kept."""

    mx: Lookup[MxHost] | None = None
    chosen: list[str] = field(default_factory=list)
    over_cap: list[str] = field(default_factory=list)
    addresses: dict[str, Lookup[str]] = field(default_factory=dict)
    tlsa: dict[str, Lookup[str]] = field(default_factory=dict)
    planned: dict[str, list[str]] = field(default_factory=dict)
    capped: dict[str, list[str]] = field(default_factory=dict)
    probes: dict[tuple[str, str], MxProbe] = field(default_factory=dict)
    errors: list[InternalError] = field(default_factory=list)


async def _guarded(
    query: Callable[[str], Awaitable[Lookup[T]]], name: str, rrtype: str, errors: list[InternalError]
) -> Lookup[T]:
    """``query(name)``; an unexpected error is recorded in ``errors`` (it becomes a finding) and
    the lookup reads as failed, so the rest of the check goes on."""
    try:
        return await query(name)
    except Exception as exc:
        log.debug("%s lookup of %s failed", rrtype, name, exc_info=True)
        errors.append(InternalError(name, None, _describe(exc)))
        return Lookup(name, rrtype, LookupStatus.FAILED, detail=f"unexpected error: {_describe(exc)}")


class Inspector:
    """Checks domains. Building one connects to nothing."""

    def __init__(
        self,
        settings: NetworkSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        expiry_warning_days: float = 14,
        probe_concurrency: int = 64,
        limits: CheckLimits = DEFAULT_LIMITS,
    ) -> None:
        self.settings = settings
        self.limits = limits
        silence_starttls_eof_warning()
        self._dns = DnsClient(settings)
        self._clock = clock
        self._expiry_warning_days = expiry_warning_days
        self._probe_slots = asyncio.Semaphore(probe_concurrency)
        # port 25 across the run: which (domain, MX host) failed to connect, by error; and
        # whether any MX anywhere answered. Many hosts of several domains failing the same way,
        # none answering, is this machine's network, not the domains.
        self._connect_failures: dict[str, set[tuple[str, str]]] = {}
        self._port25_answered = False

    async def check(self, domain_text: str) -> DomainReport:
        """The report for one domain; never raises (an unexpected error is a finding)."""
        start = time.monotonic()
        now = self._clock()
        domain, why = normalize_domain(domain_text)
        if domain is None:
            finding = Finding("domain-invalid", Severity.ERROR, why, "Give a domain name such as example.com.")
            verdict = sender_verdict(None, [])
            return DomainReport(domain_text, (finding,), verdict, None, None, time.monotonic() - start, now)
        try:
            observations = await self.observe(domain, now)
            analysis = analyse(observations, now=now, expiry_warning_days=self._expiry_warning_days)
        except Exception as exc:  # a bug: this domain says so, the others go on
            log.debug("check of %s failed", domain, exc_info=True)
            finding = Finding(
                "check-internal-error",
                Severity.ERROR,
                f"the check of {domain} stopped on an unexpected error: {_describe(exc)}",
                _BUG_FIX,
            )
            verdict = unknown_verdict("not known: the check stopped on an unexpected error")
            return DomainReport(domain, (finding,), verdict, None, None, time.monotonic() - start, now)
        return DomainReport(
            domain, analysis.findings, analysis.verdict, analysis, observations, time.monotonic() - start, now
        )

    async def observe(self, domain: str, now: datetime) -> Observations:
        """Run every lookup, the policy fetch and every MX probe at the same time, within the
        domain's budget."""
        budget = self.limits.budget(self.settings)
        gathered = _Gathered()
        errors = gathered.errors
        sts_name, tlsrpt_name = f"_mta-sts.{domain}", f"_smtp._tls.{domain}"
        sts = asyncio.create_task(_guarded(self._dns.txt, sts_name, "TXT", errors))
        tlsrpt = asyncio.create_task(_guarded(self._dns.txt, tlsrpt_name, "TXT", errors))
        fetch = asyncio.create_task(self._fetch(domain, now))
        mx_part = asyncio.create_task(self._observe_mx(domain, now, gathered))
        tasks: list[asyncio.Task[Any]] = [sts, tlsrpt, fetch, mx_part]
        _, pending = await asyncio.wait(tasks, timeout=budget)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        late = f"not finished within the domain's time budget of {budget:g} s"

        def lookup(task: asyncio.Task[Lookup[T]], name: str, rdtype: str) -> Lookup[T]:
            if task.cancelled() or task.exception() is not None:
                return Lookup(name, rdtype, LookupStatus.FAILED, detail=late)
            return task.result()

        if fetch.cancelled() or fetch.exception() is not None:
            host = policy_host(domain)
            fetched = PolicyFetch(
                domain,
                host,
                policy_url(domain, self.settings.https_port),
                Lookup(host, "A/AAAA", LookupStatus.FAILED, detail=late),
                failure=FetchFailureKind.TIMEOUT,
                detail=f"{host}: {late}",
            )
        else:
            fetched = fetch.result()
        mx = gathered.mx or Lookup(domain, "MX", LookupStatus.FAILED, detail=late)
        probes, unprobed = self._coverage(gathered, late)
        observations = Observations(
            domain,
            lookup(sts, f"_mta-sts.{domain}", "TXT"),
            fetched,
            mx,
            dict(gathered.addresses),
            probes,
            dict(gathered.tlsa),
            lookup(tlsrpt, f"_smtp._tls.{domain}", "TXT"),
            unprobed=unprobed,
            errors=tuple(errors),
            budget=budget,
        )
        local_dns = await self._local_dns_trouble(observations)
        port25 = self._port25_trouble(domain, probes)
        if local_dns or port25:
            observations = replace(observations, local_dns=local_dns, port25_blocked=port25)
        return observations

    def _coverage(self, gathered: _Gathered, late: str) -> tuple[tuple[MxProbe, ...], tuple[Unprobed, ...]]:
        limits = self.limits
        probes: list[MxProbe] = []
        unprobed: list[Unprobed] = []
        for host in gathered.chosen:
            if host not in gathered.addresses:
                unprobed.append(Unprobed(host, None, f"its address lookup was {late}", budget=True))
                continue
            for address in gathered.planned.get(host, []):
                probe = gathered.probes.get((host, address))
                if probe is None:
                    unprobed.append(Unprobed(host, address, f"the probe was {late}", budget=True))
                else:
                    probes.append(probe)
            for address in gathered.capped.get(host, []):
                why = f"only the first {limits.max_addresses} addresses of each MX host are probed (--max-addresses)"
                unprobed.append(Unprobed(host, address, why, budget=False))
        for host in gathered.over_cap:
            why = f"only the {limits.max_mx_hosts} most preferred MX hosts are probed (--max-mx)"
            unprobed.append(Unprobed(host, None, why, budget=False))
        return tuple(probes), tuple(unprobed)

    async def _fetch(self, domain: str, now: datetime) -> PolicyFetch:
        try:
            return await fetch_policy(domain, self._dns, self.settings, now=now)
        except Exception as exc:
            log.debug("policy fetch for %s failed", domain, exc_info=True)
            host = policy_host(domain)
            return PolicyFetch(
                domain,
                host,
                policy_url(domain, self.settings.https_port),
                Lookup(host, "A/AAAA", LookupStatus.FAILED),
                failure=FetchFailureKind.PROTOCOL,
                detail=_describe(exc),
                internal_error=_describe(exc),
            )

    async def _observe_mx(self, domain: str, now: datetime, gathered: _Gathered) -> None:
        mx = gathered.mx = await _guarded(self._dns.mx, domain, "MX", gathered.errors)
        hosts = [h for h in dict.fromkeys(m.host for m in mx.values) if h]
        gathered.chosen = hosts[: self.limits.max_mx_hosts]
        gathered.over_cap = hosts[self.limits.max_mx_hosts :]
        async with asyncio.TaskGroup() as group:
            for host in gathered.chosen:
                group.create_task(self._tlsa(host, gathered))
                group.create_task(self._probe_host(host, now, gathered))

    async def _tlsa(self, host: str, gathered: _Gathered) -> None:
        try:
            gathered.tlsa[host] = await self._dns.tlsa(f"_25._tcp.{host}")
        except Exception as exc:
            log.debug("TLSA lookup for %s failed", host, exc_info=True)
            gathered.errors.append(InternalError(host, None, _describe(exc)))

    async def _probe_host(self, host: str, now: datetime, gathered: _Gathered) -> None:
        lookup = gathered.addresses[host] = await _guarded(self._dns.addresses, host, "A/AAAA", gathered.errors)
        if not lookup.found:
            return
        chosen, rest = _pick_addresses(lookup.values, self.limits.max_addresses)
        gathered.planned[host] = chosen
        gathered.capped[host] = rest

        async def one(address: str) -> None:
            async with self._probe_slots:
                try:
                    probe = await probe_mx(host, address, self.settings, now=now)
                except Exception as exc:
                    log.debug("probe of %s (%s) failed", host, address, exc_info=True)
                    probe = MxProbe(
                        host, address, self.settings.smtp_port, failure=SmtpFailureKind.INTERNAL, detail=_describe(exc)
                    )
            gathered.probes[(host, address)] = probe

        await asyncio.gather(*(one(a) for a in chosen))

    async def _local_dns_trouble(self, obs: Observations) -> str:
        """A description of our own resolver when it answered nothing at all, else ``""``."""
        lookups: list[Lookup[Any]] = [obs.sts_txt, obs.mx, obs.fetch.addresses]
        if obs.tlsrpt_txt is not None:
            lookups.append(obs.tlsrpt_txt)
        if not all(lk.status is LookupStatus.FAILED for lk in lookups):
            return ""
        if all(lk.server_refused for lk in lookups):
            servers = self._dns.describe_nameservers()
            return f"{servers} refuses every query for {obs.domain} (REFUSED: it does not resolve it for this machine)"
        if not all(lk.unanswered for lk in lookups):
            return ""
        try:
            async with asyncio.timeout(self.settings.timeout * 2):
                alive = await self._dns.nameservers_answer()
        except TimeoutError:
            alive = False
        if alive:
            return ""
        servers = self._dns.describe_nameservers()
        return f"{servers} answered none of the lookups for {obs.domain} (not even a query for the root)"

    def _port25_trouble(self, domain: str, probes: tuple[MxProbe, ...]) -> str:
        """The common connect error when port 25 seems blocked on this machine, else ``""``."""
        for probe in probes:
            if probe.connect_error:
                self._connect_failures.setdefault(probe.connect_error, set()).add((domain, probe.host))
            elif probe.banner or probe.tls is not None:
                self._port25_answered = True
        errors = {p.connect_error for p in probes}
        if not probes or self._port25_answered or len(errors) != 1 or "" in errors:
            return ""
        (error,) = errors
        seen = self._connect_failures[error]
        if len({h for _, h in seen}) >= _PORT25_MIN_HOSTS and len({d for d, _ in seen}) >= _PORT25_MIN_DOMAINS:
            return error
        return ""

    async def check_many(self, domains: Iterable[str], *, concurrency: int = 32) -> AsyncIterator[DomainReport]:
        """Check domains with ``concurrency`` workers, yielding reports as they finish. The
        input is consumed lazily, so a million-line file is never held in memory."""
        source = iter(domains)
        results: asyncio.Queue[DomainReport | None] = asyncio.Queue(maxsize=concurrency * 2)

        async def worker() -> None:
            for domain in source:
                await results.put(await self.check(domain))

        async def watch() -> None:
            await asyncio.gather(*workers, return_exceptions=True)
            await results.put(None)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
        watcher = asyncio.create_task(watch())
        try:
            while (report := await results.get()) is not None:
                yield report
            for task in workers:
                if (error := task.exception()) is not None:
                    raise error
        finally:
            for task in (*workers, watcher):
                task.cancel()
            await asyncio.gather(*workers, watcher, return_exceptions=True)


_BUG_FIX = (
    "This is a bug in mtasts (or input it does not handle yet): rerun with --debug for the traceback "
    "and report it; the other checks are not affected."
)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _pick_addresses(values: Iterable[str], limit: int) -> tuple[list[str], list[str]]:
    """The first ``limit`` addresses, IPv4 and IPv6 in turn; and the rest, in DNS order."""
    all_values = list(dict.fromkeys(values))
    v4 = [a for a in all_values if ":" not in a]
    v6 = [a for a in all_values if ":" in a]
    chosen: list[str] = []
    while len(chosen) < limit and (v4 or v6):
        for family in (v4, v6):
            if family and len(chosen) < limit:
                chosen.append(family.pop(0))
    return chosen, [a for a in all_values if a not in chosen]
