"""The monitor's history in the project's database: runs, events, notifications.

Three tables beside the reports (Alembic revision 0004; SQLite by default, PostgreSQL by URL),
through a :class:`~mtasts.store.store.ReportStore`, which owns the engine and the schema, so the
report-based events read the reports of the same database. :class:`MonitorHistory` is the
protocol the monitor and the web UI type against; :class:`SqlMonitorHistory` implements it.

One run is one transaction (:meth:`SqlMonitorHistory.record_run`): the run, the events it opens
and clears and the notifications owed for them are stored together, so a crash never leaves an
event without its notification or a notification for an event that was not stored. A partial
unique index keeps one open event per (domain, code, subject), also with two monitors on one
PostgreSQL database.

The database is synchronous SQLAlchemy, like the report store; the monitor calls it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from mtasts.core.problems import Severity
from mtasts.monitor.events import Condition, OpenEvent, Transition, TransitionKind
from mtasts.monitor.snapshot import CheckSnapshot

if TYPE_CHECKING:
    from mtasts.store.models import MonitorEventRow
    from mtasts.store.store import ReportStore

__all__ = [
    "EventRecord",
    "MonitorHistory",
    "PendingDelivery",
    "RecordedRun",
    "RunRecord",
    "SqlMonitorHistory",
]


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One stored check run."""

    id: int
    domain: str
    started_at: datetime
    elapsed: float
    snapshot: CheckSnapshot

    @property
    def conclusive(self) -> bool:
        return self.snapshot.conclusive


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as kept, open (``cleared_at`` None) or cleared."""

    id: int
    domain: str
    code: str
    subject: str
    severity: Severity
    message: str
    fix: str
    opened_at: datetime
    cleared_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "domain": self.domain,
            "code": self.code,
            "subject": self.subject,
            "severity": self.severity.value,
            "message": self.message,
            "fix": self.fix,
            "opened_at": self.opened_at.isoformat(),
            "cleared_at": None if self.cleared_at is None else self.cleared_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """What :meth:`MonitorHistory.record_run` stored: the run and its transitions (with ids)."""

    run: RunRecord
    transitions: tuple[Transition, ...]


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A notification not delivered yet."""

    id: int
    channel: str
    attempts: int
    transition: Transition


class MonitorHistory(Protocol):
    def open(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def last_run(self, domain: str, *, conclusive: bool = False) -> RunRecord | None:
        """The newest run of ``domain`` (``conclusive``: the newest conclusive one)."""
        ...

    def last_run_times(self) -> dict[str, datetime]:
        """When each domain was last checked (what the schedule needs)."""
        ...

    def first_run_at(self, domain: str) -> datetime | None: ...

    def runs(self, domain: str, *, limit: int = 100) -> list[RunRecord]:
        """The newest runs of ``domain``, newest first."""
        ...

    def open_events(self, domain: str | None = None) -> list[OpenEvent]: ...

    def events(self, domain: str, *, limit: int = 100) -> list[EventRecord]:
        """The newest events of ``domain``, open or cleared, newest first."""
        ...

    def record_run(
        self,
        snapshot: CheckSnapshot,
        elapsed: float,
        *,
        opened: Sequence[Condition],
        kept: Sequence[tuple[OpenEvent, Condition]],
        cleared: Sequence[OpenEvent],
        notify: Sequence[str],
        quiet: Iterable[tuple[str, str]] = (),
    ) -> RecordedRun:
        """Store a run and its transitions in one transaction, with one pending notification per
        transition and channel of ``notify`` (none for a notice's clearing, nor for the keys in
        ``quiet``: clearings superseded by a nearer threshold)."""
        ...

    def pending(self, *, limit: int = 1000) -> list[PendingDelivery]: ...

    def delivered(self, ids: Sequence[int], *, at: datetime) -> None: ...

    def failed(self, ids: Sequence[int], *, at: datetime, error: str) -> None: ...


def _naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("monitor times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


class SqlMonitorHistory:
    """:class:`MonitorHistory` in the ``monitor_*`` tables of a :class:`ReportStore`'s database."""

    def __init__(self, store: ReportStore) -> None:
        self.store = store

    def open(self) -> None:
        self.store.open()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------

    def last_run(self, domain: str, *, conclusive: bool = False) -> RunRecord | None:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorRunRow  # noqa: PLC0415

        query = select(MonitorRunRow).where(MonitorRunRow.domain == domain)
        if conclusive:
            query = query.where(MonitorRunRow.conclusive == 1)
        query = query.order_by(MonitorRunRow.started_at.desc(), MonitorRunRow.id.desc()).limit(1)
        with Session(self.store.engine) as session:
            row = session.scalar(query)
            return None if row is None else _run(row)

    def last_run_times(self) -> dict[str, datetime]:
        from sqlalchemy import func, select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorRunRow  # noqa: PLC0415

        query = select(MonitorRunRow.domain, func.max(MonitorRunRow.started_at)).group_by(MonitorRunRow.domain)
        with Session(self.store.engine) as session:
            return {domain: _aware(when) for domain, when in session.execute(query)}

    def first_run_at(self, domain: str) -> datetime | None:
        from sqlalchemy import func, select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorRunRow  # noqa: PLC0415

        query = select(func.min(MonitorRunRow.started_at)).where(MonitorRunRow.domain == domain)
        with Session(self.store.engine) as session:
            when = session.scalar(query)
            return None if when is None else _aware(when)

    def runs(self, domain: str, *, limit: int = 100) -> list[RunRecord]:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorRunRow  # noqa: PLC0415

        query = (
            select(MonitorRunRow)
            .where(MonitorRunRow.domain == domain)
            .order_by(MonitorRunRow.started_at.desc(), MonitorRunRow.id.desc())
            .limit(limit)
        )
        with Session(self.store.engine) as session:
            return [_run(row) for row in session.scalars(query)]

    def open_events(self, domain: str | None = None) -> list[OpenEvent]:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorEventRow  # noqa: PLC0415

        query = select(MonitorEventRow).where(MonitorEventRow.cleared_at.is_(None))
        if domain is not None:
            query = query.where(MonitorEventRow.domain == domain)
        with Session(self.store.engine) as session:
            return [_open_event(row) for row in session.scalars(query.order_by(MonitorEventRow.id))]

    def events(self, domain: str, *, limit: int = 100) -> list[EventRecord]:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorEventRow  # noqa: PLC0415

        query = (
            select(MonitorEventRow)
            .where(MonitorEventRow.domain == domain)
            .order_by(MonitorEventRow.opened_at.desc(), MonitorEventRow.id.desc())
            .limit(limit)
        )
        with Session(self.store.engine) as session:
            return [
                EventRecord(
                    row.id,
                    row.domain,
                    row.code,
                    row.subject,
                    Severity(row.severity),
                    row.message,
                    row.fix,
                    _aware(row.opened_at),
                    None if row.cleared_at is None else _aware(row.cleared_at),
                )
                for row in session.scalars(query)
            ]

    # -- writing ------------------------------------------------------------------------------

    def record_run(
        self,
        snapshot: CheckSnapshot,
        elapsed: float,
        *,
        opened: Sequence[Condition],
        kept: Sequence[tuple[OpenEvent, Condition]],
        cleared: Sequence[OpenEvent],
        notify: Sequence[str],
        quiet: Iterable[tuple[str, str]] = (),
    ) -> RecordedRun:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorDeliveryRow, MonitorEventRow, MonitorRunRow  # noqa: PLC0415

        at = snapshot.checked_at
        naive = _naive(at)
        silent = set(quiet)
        out: list[Transition] = []
        with Session(self.store.engine) as session, session.begin():
            run = MonitorRunRow(
                domain=snapshot.domain,
                started_at=naive,
                elapsed_ms=round(elapsed * 1000),
                status=snapshot.status,
                conclusive=1 if snapshot.conclusive else 0,
                snapshot=json.dumps(snapshot.to_dict(), separators=(",", ":")),
            )
            session.add(run)
            session.flush()
            owed: list[tuple[MonitorEventRow, TransitionKind]] = []
            ids = [event.id for event in cleared]
            rows = {row.id: row for row in session.scalars(select(MonitorEventRow).where(MonitorEventRow.id.in_(ids)))}
            for event in cleared:
                row = rows[event.id]
                row.cleared_at, row.cleared_run = naive, run.id
                if not event.kind.notice and event.key not in silent:
                    owed.append((row, TransitionKind.CLEARED))
            kept_ids = {event.id: condition for event, condition in kept}
            if kept_ids:
                for row in session.scalars(select(MonitorEventRow).where(MonitorEventRow.id.in_(list(kept_ids)))):
                    condition = kept_ids[row.id]
                    row.message = condition.message  # the newest words ("expires in 12 days")
            for condition in opened:
                row = MonitorEventRow(
                    domain=condition.domain,
                    code=condition.code,
                    subject=condition.subject,
                    severity=condition.severity.value,
                    message=condition.message,
                    fix=condition.fix,
                    data=json.dumps(dict(condition.data), sort_keys=True),
                    opened_at=naive,
                    opened_run=run.id,
                )
                session.add(row)
                owed.append((row, TransitionKind.OPENED))
            session.flush()
            for row, kind in owed:
                transition = _transition(row, kind, at)
                out.append(transition)
                for channel in notify:
                    session.add(
                        MonitorDeliveryRow(
                            event_id=row.id, transition=kind.value, channel=channel, created_at=naive, attempts=0
                        )
                    )
            record = RunRecord(run.id, snapshot.domain, at, elapsed, snapshot)
        return RecordedRun(record, tuple(out))

    def pending(self, *, limit: int = 1000) -> list[PendingDelivery]:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorDeliveryRow, MonitorEventRow  # noqa: PLC0415

        query = (
            select(MonitorDeliveryRow, MonitorEventRow)
            .join(MonitorEventRow, MonitorEventRow.id == MonitorDeliveryRow.event_id)
            .where(MonitorDeliveryRow.delivered_at.is_(None))
            .order_by(MonitorDeliveryRow.id)
            .limit(limit)
        )
        out = []
        with Session(self.store.engine) as session:
            for delivery, event in session.execute(query):
                kind = TransitionKind(delivery.transition)
                at = event.opened_at if kind is TransitionKind.OPENED else (event.cleared_at or event.opened_at)
                transition = _transition(event, kind, _aware(at))
                out.append(PendingDelivery(delivery.id, delivery.channel, delivery.attempts, transition))
        return out

    def delivered(self, ids: Sequence[int], *, at: datetime) -> None:
        self._attempted(ids, at, None)

    def failed(self, ids: Sequence[int], *, at: datetime, error: str) -> None:
        self._attempted(ids, at, error[:2000])

    def _attempted(self, ids: Sequence[int], at: datetime, error: str | None) -> None:
        from sqlalchemy import update  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import MonitorDeliveryRow  # noqa: PLC0415

        if not ids:
            return
        naive = _naive(at)
        values: dict[str, object] = {
            "attempts": MonitorDeliveryRow.attempts + 1,
            "last_attempt_at": naive,
            "last_error": error,
        }
        if error is None:
            values["delivered_at"] = naive
        with Session(self.store.engine) as session, session.begin():
            session.execute(update(MonitorDeliveryRow).where(MonitorDeliveryRow.id.in_(list(ids))).values(**values))


def _run(row: object) -> RunRecord:
    from mtasts.store.models import MonitorRunRow  # noqa: PLC0415

    assert isinstance(row, MonitorRunRow)
    snapshot = CheckSnapshot.from_dict(json.loads(row.snapshot))
    return RunRecord(row.id, row.domain, _aware(row.started_at), row.elapsed_ms / 1000, snapshot)


def _open_event(row: MonitorEventRow) -> OpenEvent:
    return OpenEvent(
        row.id,
        row.domain,
        row.code,
        row.subject,
        Severity(row.severity),
        row.message,
        row.fix,
        _aware(row.opened_at),
        json.loads(row.data),
    )


def _transition(row: MonitorEventRow, kind: TransitionKind, at: datetime) -> Transition:
    return Transition(
        kind,
        row.id,
        row.domain,
        row.code,
        row.subject,
        Severity(row.severity),
        row.message,
        row.fix,
        _aware(row.opened_at),
        at,
    )
