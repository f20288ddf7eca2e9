"""The inspector: gather everything about a domain concurrently, then analyse it.

A slow or tarpitting host costs only its own timeout: every lookup, fetch and probe runs as
its own task under the settings' deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from mtasts.check.analysis import Analysis, Observations, analyse
from mtasts.core.findings import Finding
from mtasts.core.hostname import check_host_name, to_alabel
from mtasts.core.problems import Severity
from mtasts.core.verdict import Verdict, sender_verdict
from mtasts.net._streams import silence_starttls_eof_warning
from mtasts.net.dns import DnsClient, Lookup, MxHost
from mtasts.net.https import fetch_policy
from mtasts.net.settings import NetworkSettings
from mtasts.net.smtp import MxProbe, probe_mx

__all__ = ["DomainReport", "Inspector", "normalize_domain"]


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
            "tlsrpt": None if analysis is None or analysis.tlsrpt is None else list(analysis.tlsrpt.rua),
            "checked_at": self.checked_at.isoformat(),
            "elapsed_seconds": round(self.elapsed, 3),
        }


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


class Inspector:
    """Checks domains. Building one connects to nothing."""

    def __init__(
        self,
        settings: NetworkSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        expiry_warning_days: float = 14,
        probe_concurrency: int = 64,
    ) -> None:
        self.settings = settings
        silence_starttls_eof_warning()
        self._dns = DnsClient(settings)
        self._clock = clock
        self._expiry_warning_days = expiry_warning_days
        self._probe_slots = asyncio.Semaphore(probe_concurrency)

    async def check(self, domain_text: str) -> DomainReport:
        start = time.monotonic()
        now = self._clock()
        domain, why = normalize_domain(domain_text)
        if domain is None:
            finding = Finding("domain-invalid", Severity.ERROR, why, "Give a domain name such as example.com.")
            verdict = sender_verdict(None, [])
            return DomainReport(domain_text, (finding,), verdict, None, None, time.monotonic() - start, now)
        observations = await self.observe(domain, now)
        analysis = analyse(observations, now=now, expiry_warning_days=self._expiry_warning_days)
        return DomainReport(
            domain, analysis.findings, analysis.verdict, analysis, observations, time.monotonic() - start, now
        )

    async def observe(self, domain: str, now: datetime) -> Observations:
        """Run every lookup, the policy fetch and every MX probe at the same time."""
        dns = self._dns
        async with asyncio.TaskGroup() as group:
            sts = group.create_task(dns.txt(f"_mta-sts.{domain}"))
            fetch = group.create_task(fetch_policy(domain, dns, self.settings, now=now))
            tlsrpt = group.create_task(dns.txt(f"_smtp._tls.{domain}"))
            mx_part = group.create_task(self._observe_mx(domain, now))
        mx, addresses, probes, tlsa = mx_part.result()
        return Observations(domain, sts.result(), fetch.result(), mx, addresses, probes, tlsa, tlsrpt.result())

    async def _observe_mx(
        self, domain: str, now: datetime
    ) -> tuple[Lookup[MxHost], dict[str, Lookup[str]], tuple[MxProbe, ...], dict[str, Lookup[str]]]:
        mx = await self._dns.mx(domain)
        hosts = [h for h in dict.fromkeys(m.host for m in mx.values) if h]
        async with asyncio.TaskGroup() as group:
            address_tasks = {h: group.create_task(self._dns.addresses(h)) for h in hosts}
            tlsa_tasks = {h: group.create_task(self._dns.tlsa(f"_25._tcp.{h}")) for h in hosts}
            probe_tasks = [group.create_task(self._probe_all(h, t, now)) for h, t in address_tasks.items()]
        probes = [probe for task in probe_tasks for probe in task.result()]
        return (
            mx,
            {h: t.result() for h, t in address_tasks.items()},
            tuple(probes),
            {h: t.result() for h, t in tlsa_tasks.items()},
        )

    async def _probe_all(self, host: str, addresses: asyncio.Task[Lookup[str]], now: datetime) -> list[MxProbe]:
        lookup = await addresses
        if not lookup.found:
            return []

        async def one(address: str) -> MxProbe:
            async with self._probe_slots:
                return await probe_mx(host, address, self.settings, now=now)

        return list(await asyncio.gather(*(one(a) for a in lookup.values)))

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
