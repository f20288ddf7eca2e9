"""The monitor: check a domain, compare with its history, store the run and its events, notify.

:class:`Monitor` drives the pure parts (:mod:`mtasts.monitor.snapshot`, :mod:`~mtasts.monitor.rules`)
with thin I/O: the inspector, the history and report store (synchronous SQLAlchemy, called
through ``asyncio.to_thread``) and the notifiers. :class:`Scheduler` is the daemon's loop: it
asks :func:`~mtasts.monitor.schedule.due_domains` what is due, checks it, delivers what is owed
and waits; the clock and the sleep are injected, so a test drives days of schedule in
milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from mtasts.core.problems import Severity
from mtasts.monitor.events import CHECK_CODES, REPORT_CODES, Condition, OpenEvent, Transition
from mtasts.monitor.history import MonitorHistory, RunRecord
from mtasts.monitor.notify import Notifier, NotifyError
from mtasts.monitor.rules import (
    DEFAULT_REPORT_RULES,
    ReportRules,
    check_conditions,
    report_conditions,
    report_window,
    transitions,
)
from mtasts.monitor.schedule import DEFAULT_JITTER, Monitored, due_domains
from mtasts.monitor.snapshot import CheckSnapshot, snapshot_of
from mtasts.report.analysis import success_rate

if TYPE_CHECKING:
    from mtasts.check.inspect import DomainReport
    from mtasts.store.interface import ReportStoreProtocol

__all__ = ["Checker", "Delivery", "DomainOutcome", "DomainStatus", "Monitor", "Scheduler"]

log = logging.getLogger("mtasts.monitor")


class Checker(Protocol):
    """What the monitor needs of the inspector."""

    async def check(self, domain_text: str) -> DomainReport: ...


@dataclass(frozen=True, slots=True)
class DomainStatus:
    """A domain's state after its latest run, for the metrics page."""

    domain: str
    status: str  # ok, warning, error, or unknown (the run was inconclusive)
    checked_at: datetime
    certificates: tuple[tuple[str, str, datetime], ...]  # (role, host, not after)
    success_rate: float | None
    open_events: dict[str, int]  # severity -> count
    elapsed: float


@dataclass(frozen=True, slots=True)
class DomainOutcome:
    """One domain's run: what was stored, the transitions, the events still open."""

    run: RunRecord
    transitions: tuple[Transition, ...]
    open_events: tuple[OpenEvent, ...]
    success_rate: float | None = None

    @property
    def domain(self) -> str:
        return self.run.domain

    def to_dict(self) -> dict[str, object]:
        snapshot = self.run.snapshot
        return {
            "domain": self.domain,
            "checked_at": self.run.started_at.isoformat(),
            "status": snapshot.status if snapshot.conclusive else "unknown",
            "conclusive": snapshot.conclusive,
            "inconclusive_reason": snapshot.inconclusive_reason,
            "elapsed_seconds": round(self.run.elapsed, 3),
            "success_rate": self.success_rate,
            "transitions": [t.to_dict() for t in self.transitions],
            "open_events": [
                {"code": e.code, "subject": e.subject, "severity": e.severity.value, "message": e.message}
                for e in self.open_events
            ],
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One channel's delivery of the pending notifications: how many, and the error if it failed."""

    channel: str
    count: int
    error: str = ""


class Monitor:
    """Checks domains and keeps their history. Building one does no I/O.

    ``reports`` is the store whose TLS reports the report events read (``None``: no report
    events); ``clock`` is the one the inspector uses too, so every time in a run agrees.
    """

    def __init__(
        self,
        history: MonitorHistory,
        checker: Checker,
        *,
        reports: ReportStoreProtocol | None = None,
        notifiers: Sequence[Notifier] = (),
        clock: Callable[[], datetime],
        rules: ReportRules = DEFAULT_REPORT_RULES,
        concurrency: int = 16,
    ) -> None:
        self.history = history
        self.checker = checker
        self.reports = reports
        self.notifiers = tuple(notifiers)
        self.clock = clock
        self.rules = rules
        self.concurrency = max(1, concurrency)
        self.statuses: dict[str, DomainStatus] = {}
        self.errors = 0  # runs that failed (the database, a bug), for the metrics
        self.failures: list[tuple[str, str]] = []  # (domain, why) of the failed runs

    async def check(self, domain: str) -> DomainOutcome:
        """Check ``domain`` once, compare, store, and return what changed. Raises the store's
        errors (the caller decides whether one domain's failure stops the run)."""
        started = time.monotonic()
        report = await self.checker.check(domain)
        elapsed = time.monotonic() - started
        snapshot = snapshot_of(report)
        return await asyncio.to_thread(self._record, snapshot, elapsed)

    def _record(self, snapshot: CheckSnapshot, elapsed: float) -> DomainOutcome:
        domain, now = snapshot.domain, snapshot.checked_at
        history = self.history
        previous = history.last_run(domain, conclusive=True)
        open_events = history.open_events(domain)
        conditions: list[Condition] = []
        evaluated: set[str] = set()
        if snapshot.conclusive:
            before = None if previous is None else previous.snapshot
            conditions += check_conditions(before, snapshot, open_events, now=now)
            evaluated |= CHECK_CODES
        rate = None
        publishes = snapshot.tlsrpt if snapshot.conclusive else previous is not None and previous.snapshot.tlsrpt
        if self.reports is not None:
            today = now.date()
            since = report_window(today, self.rules)
            policies = self.reports.policy_rows(since=since, domain=domain)
            recent = today - timedelta(days=self.rules.days - 1)
            window = [row for row in policies if recent <= row.day <= today]
            rate = success_rate(sum(r.total_successful for r in window), sum(r.total_failure for r in window))
            if publishes:
                failures = self.reports.failure_rows(since=since, domain=domain)
                monitored_since = history.first_run_at(domain) or now
                conditions += report_conditions(
                    domain, policies, failures, today=today, monitored_since=monitored_since, rules=self.rules
                )
            if snapshot.conclusive or publishes:
                evaluated |= REPORT_CODES
        change = transitions(open_events, conditions, evaluated=evaluated)
        opened_subjects = {c.subject for c in change.opened if c.code.startswith("cert-expiry-")}
        quiet = [e.key for e in change.cleared if e.code.startswith("cert-expiry-") and e.subject in opened_subjects]
        recorded = history.record_run(
            snapshot,
            elapsed,
            opened=change.opened,
            kept=change.kept,
            cleared=change.cleared,
            notify=[n.channel for n in self.notifiers],
            quiet=quiet,
        )
        still_open = history.open_events(domain)
        severities: dict[str, int] = {s.value: 0 for s in Severity}
        for event in still_open:
            severities[event.severity.value] += 1
        self.statuses[domain] = DomainStatus(
            domain,
            snapshot.status if snapshot.conclusive else "unknown",
            now,
            tuple((c.role, c.host, c.not_after) for c in snapshot.certificates),
            rate,
            severities,
            elapsed,
        )
        return DomainOutcome(recorded.run, recorded.transitions, tuple(still_open), rate)

    async def run(self, domains: Iterable[str]) -> list[DomainOutcome]:
        """Check every domain (``concurrency`` at a time), in input order of the results. A
        domain whose run cannot be stored is logged and left out; the others go on."""
        slots = asyncio.Semaphore(self.concurrency)

        async def one(domain: str) -> DomainOutcome | None:
            async with slots:
                try:
                    return await self.check(domain)
                except Exception as exc:  # one domain's trouble never stops the others
                    self.errors += 1
                    if _store_trouble(exc):
                        why = f"the run could not be stored: {exc}"
                        log.error("monitor: %s: %s", domain, why)
                    else:  # a bug: said with its traceback in the log
                        why = f"internal error: {type(exc).__name__}: {exc}"
                        log.exception("monitor: %s: %s", domain, why)
                    self.failures.append((domain, why))
                    return None

        results = await asyncio.gather(*(one(d) for d in domains))
        return [r for r in results if r is not None]

    async def deliver(self) -> list[Delivery]:
        """Send every pending notification, one batch per channel; record each result."""
        pending = await asyncio.to_thread(self.history.pending)
        out: list[Delivery] = []
        for notifier in self.notifiers:
            batch = [p for p in pending if p.channel == notifier.channel]
            if not batch:
                continue
            ids = [p.id for p in batch]
            now = self.clock()
            try:
                await notifier.send([p.transition for p in batch], now=now)
            except NotifyError as exc:
                log.warning("monitor: %s (kept, sent again at the next run)", exc)
                await asyncio.to_thread(self.history.failed, ids, at=now, error=str(exc))
                out.append(Delivery(notifier.channel, len(batch), str(exc)))
            else:
                await asyncio.to_thread(self.history.delivered, ids, at=now)
                out.append(Delivery(notifier.channel, len(batch)))
        return out


def _store_trouble(exc: Exception) -> bool:
    """Whether ``exc`` is the database's (SQLAlchemy or the store's own errors), not a bug."""
    module = type(exc).__module__
    return module.startswith(("sqlalchemy", "mtasts.store"))


Sleep = Callable[[float], Awaitable[None]]


class Scheduler:
    """The daemon's loop over ``watched`` (see :mod:`mtasts.monitor.schedule`)."""

    MAX_WAIT = 300.0  # seconds: pending notifications are retried at least this often
    RETRY_WAIT = 60.0  # seconds after a cycle that failed (the database unreachable)

    def __init__(
        self,
        monitor: Monitor,
        watched: Sequence[Monitored],
        *,
        clock: Callable[[], datetime],
        sleep: Sleep = asyncio.sleep,
        jitter: float = DEFAULT_JITTER,
    ) -> None:
        self.monitor = monitor
        self.watched = tuple(watched)
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.start = clock()
        self.last_runs: dict[str, datetime] | None = None
        self.cycles = 0

    async def cycle(self) -> float:
        """Check what is due now, deliver what is owed; the seconds to wait before the next cycle."""
        if self.last_runs is None:
            self.last_runs = await asyncio.to_thread(self.monitor.history.last_run_times)
        now = self.clock()
        due, later = due_domains(self.watched, self.last_runs, now=now, start=self.start, jitter=self.jitter)
        if due:
            for outcome in await self.monitor.run([item.domain for item in due]):
                self.last_runs[outcome.domain] = outcome.run.started_at
                for transition in outcome.transitions:
                    log.info("%s", transition.to_text())
            for item in due:  # a run that could not be stored is retried at its next slot, not at once
                self.last_runs.setdefault(item.domain, now)
                self.last_runs[item.domain] = max(self.last_runs[item.domain], now)
        await self.monitor.deliver()
        self.cycles += 1
        if later is None:
            return self.MAX_WAIT if not due else 0.0
        wait = (later - self.clock()).total_seconds()
        return min(max(wait, 0.0), self.MAX_WAIT)

    async def serve(self, stop: asyncio.Event) -> None:
        """Cycle until ``stop`` is set."""
        while not stop.is_set():
            try:
                wait = await self.cycle()
            except Exception:  # the database went away: said, and tried again later
                log.exception("monitor: the cycle failed; trying again in %g s", self.RETRY_WAIT)
                wait = self.RETRY_WAIT
            if wait <= 0:
                continue
            sleeper = asyncio.ensure_future(self.sleep(wait))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
