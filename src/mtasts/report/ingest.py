"""Ingest: parse each source, commit its reports, and only then mark the source processed.

The order is the whole contract: a crash before the commit leaves the source unprocessed (it
is read again next time and nothing is half-stored); a crash after the commit but before the
source is marked leaves a source that is read again and recognised as a duplicate. So nothing
is lost and nothing is stored twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mtasts.core.problems import ParseError
from mtasts.core.tlsrpt_report import DEFAULT_LIMITS, ReportLimits
from mtasts.report.mail import parse_any
from mtasts.report.sources import Source, iter_sources
from mtasts.store.store import AddResult, ReportStore

__all__ = ["IngestOutcome", "ingest_paths", "ingest_source", "utc_now"]

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What happened to one source: the reports stored or found already stored, or the error."""

    label: str
    results: tuple[AddResult, ...] = ()
    error: ParseError | None = None

    @property
    def stored(self) -> int:
        return sum(1 for result in self.results if result.stored)

    @property
    def duplicates(self) -> int:
        return sum(1 for result in self.results if not result.stored)


def ingest_source(
    store: ReportStore,
    source: Source,
    *,
    limits: ReportLimits = DEFAULT_LIMITS,
    clock: Callable[[], datetime] = utc_now,
) -> IngestOutcome:
    """Parse, commit, then mark ``source`` done. An unreadable source is left unprocessed."""
    try:
        reports = parse_any(source.data, limits)
    except ParseError as exc:
        log.info("not ingested: %s: %s", source.label, exc)
        return IngestOutcome(source.label, error=exc)
    results = store.add_reports(reports, source=source.label, now=clock())
    source.done()
    return IngestOutcome(source.label, tuple(results))


def ingest_paths(
    store: ReportStore,
    paths: Iterable[Path],
    *,
    limits: ReportLimits = DEFAULT_LIMITS,
    clock: Callable[[], datetime] = utc_now,
) -> Iterator[IngestOutcome]:
    """Ingest every file, mbox message and Maildir message under ``paths``, one source at a time."""
    for path in paths:
        for source in iter_sources(path):
            yield ingest_source(store, source, limits=limits, clock=clock)
