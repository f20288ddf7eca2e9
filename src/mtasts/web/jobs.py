"""Checks the pages ask for, run in the background and kept in memory for their link.

A check is a :class:`Job`: it gets an unguessable id at once (its page, ``/result/<id>``, is
the permanent link), waits for one of ``max_checks`` slots, runs the real inspector, and
keeps its report in a bounded table (``max_results`` jobs, each for ``keep_seconds``). The
same domain asked again while its check runs, or within ``reuse_seconds`` after, gets the same
job: a reload or a crowd never multiplies the probes sent to one domain. Nothing is written
anywhere; a restart forgets every result.

Each check gets its own :class:`~mtasts.check.inspect.Inspector`: one shared by a
long-running server would keep growing its port-25 bookkeeping, which is made for one run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from mtasts.check.inspect import DomainReport, Inspector
from mtasts.core.findings import Finding
from mtasts.core.problems import Severity
from mtasts.core.verdict import unknown_verdict
from mtasts.net.ratelimit import RateLimiter
from mtasts.web.settings import WebSettings

__all__ = ["Busy", "CheckService", "Job", "JobState", "Limited"]

log = logging.getLogger("mtasts.web")


class JobState(StrEnum):
    WAITING = "waiting"  # for a free check slot
    RUNNING = "running"
    DONE = "done"


@dataclass(slots=True, eq=False)
class Job:
    """One check of one (normalised) domain. ``budget`` is its time limit in seconds, for the
    progress display; ``queued``: every check slot was taken when it was asked for (checks
    start in the order they are asked for)."""

    id: str
    domain: str
    created: float
    budget: float
    queued: bool = False
    started: float | None = None
    finished: float | None = None
    report: DomainReport | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> JobState:
        if self.report is not None:
            return JobState.DONE
        return JobState.WAITING if self.started is None and self.queued else JobState.RUNNING

    def elapsed(self, now: float) -> float:
        """Seconds since the check started (0 while it waits for a slot)."""
        if self.state is JobState.WAITING:
            return 0.0
        start = self.started if self.started is not None else self.created
        return max(0.0, (self.finished if self.finished is not None else now) - start)


@dataclass(frozen=True, slots=True)
class Limited:
    """The client or the server as a whole asked for too many checks: retry after this many seconds."""

    retry_after: int


@dataclass(frozen=True, slots=True)
class Busy:
    """Every check slot is taken and the waiting line is full."""

    retry_after: int


class CheckService:
    """Starts, deduplicates, bounds and remembers checks. Building one starts nothing; checks
    run as tasks of the loop that calls :meth:`submit`, and :meth:`close` cancels those left."""

    def __init__(
        self,
        settings: WebSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._limiter = limiter if limiter is not None else RateLimiter(settings.per_client, settings.total)
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._latest: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_checks)

    def now(self) -> float:
        return self._clock()

    def get(self, job_id: str) -> Job | None:
        self._expire()
        return self._jobs.get(job_id)

    def reusable(self, domain: str) -> Job | None:
        """The job a new request for ``domain`` joins: one still running, or (public mode) one
        finished within ``reuse_seconds``."""
        self._expire()
        job = self._latest.get(domain)
        if job is None or job.id not in self._jobs:
            return None
        if job.finished is None or self._clock() - job.finished < self.settings.reuse_seconds:
            return job
        return None

    def submit(self, domain: str, client: str) -> Job | Limited | Busy:
        """The job for ``domain`` (normalised by the caller), joined or started for ``client``.
        Only public mode rate-limits; joining a known job costs nothing."""
        job = self.reusable(domain)
        if job is not None:
            return job
        now = self._clock()
        if self.settings.public:
            wait = self._limiter.acquire(client, now)
            if wait:
                return Limited(wait)
        budget = self.settings.limits.budget(self.settings.check_network)
        unfinished = sum(1 for j in self._jobs.values() if j.finished is None)
        if unfinished >= self.settings.max_checks + self.settings.max_waiting:
            return Busy(retry_after=max(1, math.ceil(budget)))
        job = Job(secrets.token_urlsafe(12), domain, now, budget, queued=unfinished >= self.settings.max_checks)
        self._remember(job)
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"mtasts-web-check {domain}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Job) -> None:
        async with self._slots:
            job.started = self._clock()
            try:
                inspector = Inspector(
                    self.settings.check_network,
                    expiry_warning_days=self.settings.expiry_warning_days,
                    limits=self.settings.limits,
                )
                report = await inspector.check(job.domain)  # a bug in a probe is a finding already
            except Exception as exc:  # a bug around it: the page says so instead of waiting forever
                log.exception("the check of %s failed", job.domain)
                report = _internal_error(job.domain, exc)
            job.report = report
            job.finished = self._clock()
            job.done.set()

    def _remember(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._latest[job.domain] = job
        self._expire()
        while len(self._jobs) > self.settings.max_results:
            oldest = next((j for j in self._jobs.values() if j.finished is not None), None)
            if oldest is None:  # every kept job still runs: they are bounded by the slots
                break
            self._forget(oldest)

    def _expire(self) -> None:
        limit = self._clock() - self.settings.keep_seconds
        for job in [j for j in self._jobs.values() if j.finished is not None and j.finished < limit]:
            self._forget(job)

    def _forget(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if self._latest.get(job.domain) is job:
            del self._latest[job.domain]

    async def close(self) -> None:
        """Cancel the checks still running (the server is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _internal_error(domain: str, exc: Exception) -> DomainReport:
    finding = Finding(
        "check-internal-error",
        Severity.ERROR,
        f"the check of {domain} did not finish: {type(exc).__name__}: {str(exc)[:300]}",
        "This is a bug in mtasts: check this domain with mtasts check DOMAIN --debug and report it.",
    )
    verdict = unknown_verdict("not known: the check did not finish")
    return DomainReport(domain, (finding,), verdict, None, None, 0.0, datetime.now(UTC))
