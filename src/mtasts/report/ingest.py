"""Ingest: parse each source, commit its reports, and only then mark the source processed.

The order is the whole contract: a crash before the commit leaves the source unprocessed (it
is read again next time and nothing is half-stored); a crash after the commit but before the
source is marked leaves a source that is read again and recognised as a duplicate. So nothing
is lost and nothing is stored twice.

One message never blocks the others. Whatever goes wrong with one message (it is not a
report, or parsing or storing it raised something nobody anticipated) is recorded in its
:class:`IngestOutcome`, the message is set aside (see :mod:`mtasts.report.sources`), and the
run goes on. What is not the message's fault stops the run instead: when the database is down
or stops answering, :class:`~mtasts.store.errors.StoreUnavailable` is raised, the message
being stored is neither marked nor set aside, and the next run takes it again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from mtasts.core.problems import ParseError, Problem, Severity
from mtasts.core.tlsrpt_report import DEFAULT_LIMITS, ReportLimits, TlsRptReport
from mtasts.report.mail import parse_any
from mtasts.report.sources import Skipped, Source, walk
from mtasts.store.errors import StoreError, StoreUnavailable, describe_store_error
from mtasts.store.interface import AddResult, Message, ReportStoreProtocol

__all__ = [
    "UNEXPECTED",
    "IngestOutcome",
    "Parser",
    "ingest_paths",
    "ingest_source",
    "overlaps_by_default",
    "run_level_store_error",
    "unexpected_problem",
    "utc_now",
]

log = logging.getLogger(__name__)

Parser = Callable[[bytes, ReportLimits], tuple[TlsRptReport, ...]]
"""How a source's bytes become reports: :func:`mtasts.report.mail.parse_any` unless a caller
passes another (the seam tests use to make a message fail in a way no input does today)."""

UNEXPECTED: Final = "ingest.unexpected"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What happened to one source.

    * committed: ``results`` holds the reports stored now or found already stored (a
      ``warning`` when the source could not be marked afterwards: it is read again next time);
    * set aside: ``error`` says why it failed, ``moved_to`` where it now is (``None``: left
      where it was, as files are);
    * skipped: only ``warning`` (a special file, a symbolic link loop, a file that vanished).
    """

    label: str
    results: tuple[AddResult, ...] = ()
    error: Problem | None = None
    warning: Problem | None = None
    moved_to: str | None = None

    @property
    def stored(self) -> int:
        return sum(1 for result in self.results if result.stored)

    @property
    def duplicates(self) -> int:
        return sum(1 for result in self.results if not result.stored)

    @property
    def set_aside(self) -> bool:
        return self.error is not None

    @property
    def skipped(self) -> bool:
        return self.error is None and not self.results and self.warning is not None

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of an outcome (``report ingest --json``); keys are a public contract."""
        return {
            "source": self.label,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "error": None if self.error is None else self.error.to_dict(),
            "warning": None if self.warning is None else self.warning.to_dict(),
            "moved_to": self.moved_to,
        }


def unexpected_problem(exc: BaseException) -> Problem:
    """The problem recorded for a message that failed in a way mtasts did not anticipate."""
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return Problem(
        UNEXPECTED,
        f"mtasts failed on this message ({detail[:300]}); it was set aside and the others ingested",
        "This is a bug in mtasts: report it with the message attached. "
        "After an upgrade, 'mtasts report ingest --retry-failed' reads it again.",
    )


def run_level_store_error(exc: BaseException, url: str) -> StoreError | None:
    """``exc`` raised while storing, as a failure of the whole run (the database is down, locked,
    read-only, its schema is broken), or ``None`` when it concerns only the message being stored
    (a value the database refuses)."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, (DataError, IntegrityError)):
        return None  # this message's values
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return None  # a value that could not even be bound (too large for the column type)
    if isinstance(exc, SQLAlchemyError):
        return StoreUnavailable(describe_store_error(exc, url))
    return None


def _not_stored(exc: BaseException, url: str) -> Problem:
    return Problem(
        "ingest.store_refused",
        f"the database refused this message's reports: {describe_store_error(exc, url)}",
        "It was set aside and the others ingested; report it (with the message) if it is a valid report.",
    )


def _with_set_aside_failure(problem: Problem, exc: OSError) -> Problem:
    return Problem(
        problem.code,
        f"{problem.message}; it could not be set aside ({exc.strerror or exc}) and will be read again next time",
        problem.fix,
        problem.line,
        problem.column,
        problem.severity,
    )


def _set_aside(source: Source, problem: Problem) -> IngestOutcome:
    try:
        moved_to = source.set_aside()
    except OSError as exc:
        return IngestOutcome(source.label, error=_with_set_aside_failure(problem, exc))
    return IngestOutcome(source.label, error=problem, moved_to=moved_to)


GROUP: Final = 200  # messages per commit in ingest_paths: a commit waits for the disk, once per group


def _parse_source(source: Source, limits: ReportLimits, parse: Parser) -> tuple[TlsRptReport, ...] | IngestOutcome:
    """The reports of ``source``, or the outcome of setting it aside (it is not a report)."""
    try:
        return parse(source.data, limits)
    except ParseError as exc:
        log.info("not ingested: %s: %s", source.label, exc)
        return _set_aside(source, exc.errors[0])
    except Exception as exc:  # a bug met on this message: record it, set it aside, go on
        log.debug("parsing %s failed", source.label, exc_info=True)
        return _set_aside(source, unexpected_problem(exc))


def _refused(source: Source, exc: Exception, url: str) -> IngestOutcome:
    """``source`` set aside because storing it raised ``exc`` (the message's fault, not the database's)."""
    log.debug("storing %s failed", source.label, exc_info=exc)
    problem = _not_stored(exc, url) if isinstance(exc, SQLAlchemyError) else unexpected_problem(exc)
    return _set_aside(source, problem)


def _mark_done(source: Source, results: Sequence[AddResult]) -> IngestOutcome:
    """``source`` committed: mark it processed (a warning when that fails)."""
    try:
        source.done()
    except OSError as exc:
        warning = Problem(
            "source.not_marked",
            f"its reports are stored, but it could not be marked processed ({exc.strerror or exc}): "
            "it will be read again next time and recognised as already stored",
            "Check that the folder is writable; nothing to do if another program moved the message.",
            severity=Severity.WARNING,
        )
        return IngestOutcome(source.label, tuple(results), warning=warning)
    return IngestOutcome(source.label, tuple(results))


def ingest_source(
    store: ReportStoreProtocol,
    source: Source,
    *,
    limits: ReportLimits = DEFAULT_LIMITS,
    clock: Callable[[], datetime] = utc_now,
    parse: Parser = parse_any,
) -> IngestOutcome:
    """Parse, commit, then mark ``source`` done; a source that fails is set aside.

    Raises :class:`~mtasts.store.errors.StoreError` (the source untouched) when the database,
    not the source, is at fault.
    """
    parsed = _parse_source(source, limits, parse)
    if isinstance(parsed, IngestOutcome):
        return parsed
    try:
        results = store.add_reports(parsed, source=source.label, now=clock())
    except Exception as exc:
        stop = run_level_store_error(exc, store.url)
        if stop is not None:
            raise stop from exc
        return _refused(source, exc, store.url)
    return _mark_done(source, results)


_Slot = IngestOutcome | tuple[Source, tuple[TlsRptReport, ...]]


def _commit_group(store: ReportStoreProtocol, slots: list[_Slot], now: datetime) -> Iterator[IngestOutcome]:
    """Store the parsed messages of ``slots`` with one commit, then mark each one done; the
    outcomes in the order of ``slots``. Raises ``StoreError`` (nothing of the group marked)
    when the database fails."""
    parsed = [slot for slot in slots if not isinstance(slot, IngestOutcome)]
    if not parsed:
        yield from (slot for slot in slots if isinstance(slot, IngestOutcome))
        return
    try:
        stored = store.add_messages([Message(source.label, reports) for source, reports in parsed], now=now)
    except Exception as exc:
        stop = run_level_store_error(exc, store.url)
        raise (stop or StoreError(describe_store_error(exc, store.url))) from exc
    outcomes = iter(stored)
    for slot in slots:
        if isinstance(slot, IngestOutcome):
            yield slot
            continue
        source, _ = slot
        outcome = next(outcomes)
        if outcome.error is None:
            yield _mark_done(source, outcome.results)
            continue
        stop = run_level_store_error(outcome.error, store.url)
        if stop is not None:
            raise stop from outcome.error
        yield _refused(source, outcome.error, store.url)


def overlaps_by_default(store: ReportStoreProtocol) -> bool:
    """Whether :func:`ingest_paths` parses the next group while the store commits the current
    one, unless told: for a database server (PostgreSQL), whose commit is time this process
    spends waiting, so parsing fills it (measured: about 3,400 against 4,000-4,500 reports/s,
    ``bench/report.py --ingest``). Not for SQLite or memory: their writes are this process's own
    CPU work, and a second thread only adds the GIL's switching (measured slower)."""
    return store.url.startswith("postgresql")


def ingest_paths(
    store: ReportStoreProtocol,
    paths: Iterable[Path],
    *,
    limits: ReportLimits = DEFAULT_LIMITS,
    clock: Callable[[], datetime] = utc_now,
    retry_failed: bool = False,
    parse: Parser = parse_any,
    group: int = GROUP,
    overlap: bool | None = None,
) -> Iterator[IngestOutcome]:
    """Ingest every file, mbox message and Maildir message under ``paths``, in walk order.

    Up to ``group`` messages are stored with one commit (each still all or none, see
    :meth:`~mtasts.store.interface.ReportStoreProtocol.add_messages`) and marked processed only
    after it, so the contract of the module holds for each message. Maildir messages committed
    by an earlier run are not read again; ``retry_failed`` reads the messages set aside by
    earlier runs once more. Raises ``OSError`` when a path given cannot be read at all,
    :class:`~mtasts.store.errors.StoreError` when the database fails.

    ``overlap`` (default: :func:`overlaps_by_default`): one group is committed (and its
    messages marked) in a worker thread while the next one is read and parsed here; at most one
    group is in flight, its outcomes are yielded before anything that comes after it, and an
    error of its commit is raised before the next group is stored, so the order and the
    guarantees stay those of the one-thread loop.
    """
    if overlap is None:
        overlap = overlaps_by_default(store)
    if not overlap:
        yield from _ingest_groups(store, paths, limits, clock, retry_failed, parse, group, None)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtasts-ingest") as pool:
        yield from _ingest_groups(store, paths, limits, clock, retry_failed, parse, group, pool)


def _ingest_groups(
    store: ReportStoreProtocol,
    paths: Iterable[Path],
    limits: ReportLimits,
    clock: Callable[[], datetime],
    retry_failed: bool,
    parse: Parser,
    group: int,
    pool: ThreadPoolExecutor | None,
) -> Iterator[IngestOutcome]:
    """:func:`ingest_paths`; with ``pool``, each group's commit runs there (see ``overlap``)."""
    pending: Future[list[IngestOutcome]] | None = None

    def collect() -> list[IngestOutcome]:
        nonlocal pending
        if pending is None:
            return []
        done, pending = pending, None
        return done.result()  # raises what the commit raised

    def commit(slots: list[_Slot]) -> Iterator[IngestOutcome]:
        nonlocal pending
        now = clock()
        if pool is None:
            yield from _commit_group(store, slots, now)
            return
        yield from collect()
        pending = pool.submit(lambda: list(_commit_group(store, slots, now)))

    slots: list[_Slot] = []
    waiting = 0
    try:
        for path in paths:
            for item in walk(path, skip_marked=True, retry_failed=retry_failed):
                if isinstance(item, Skipped):
                    log.info("skipped %s: %s", item.label, item.problem.message)
                    slots.append(IngestOutcome(item.label, warning=item.problem))
                else:
                    parsed = _parse_source(item, limits, parse)
                    slots.append(parsed if isinstance(parsed, IngestOutcome) else (item, parsed))
                    waiting += not isinstance(parsed, IngestOutcome)
                if waiting >= group:
                    yield from commit(slots)
                    slots, waiting = [], 0
            # the group ends with each path given: a path that cannot be read raises OSError, and
            # what came before it is then committed already
            if slots:
                yield from commit(slots)
            slots, waiting = [], 0
            yield from collect()
    except BaseException:
        if pending is not None:  # committed or failing: wait for it, whatever stops this run
            with contextlib.suppress(Exception):
                pending.result()
        raise
    yield from collect()
