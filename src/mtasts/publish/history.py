"""The published history: every policy body a domain's policy host served, and when.

The roll-out rules (:mod:`mtasts.publish.rollout`) are decided from it: how long a domain has
been in ``testing``, whether ``enforce`` has been served for its ``max_age`` before that grows,
and, when a domain is retired, the longest ``max_age`` a sender may still hold (a sender may
have fetched any body up to the moment it stopped being served, and keeps it for that body's
``max_age``: RFC 8461 §5). So the history keeps, per body: the domain, its id, sha256, mode,
``max_age``, from and until when it was served, and the reason when a guard was overridden.

One small protocol, :class:`PublishHistory`, two implementations under one contract suite
(``tests/publish/test_history.py``): :class:`MemoryPublishHistory` (tests, previews) and
:class:`SqlPublishHistory`, a table in the project's database beside the reports (SQLite by
default, PostgreSQL by URL), so the state survives restarts and several hosts can share it.

Rules every implementation keeps:

- at most one body per domain is served at a time: :meth:`PublishHistory.record` ends the one
  being served at the moment the new one starts;
- an id is never reused for a domain (a sender holding id X must never be able to get two
  bodies under it), and time never runs backwards within a domain's history; either raises
  :class:`HistoryConflict` and changes nothing.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from mtasts.core.hostname import to_alabel
from mtasts.core.policy import Mode

if TYPE_CHECKING:  # SQLAlchemy loads only for the SQL history
    from sqlalchemy.orm import Session

    from mtasts.store.models import PublishedPolicyRow
    from mtasts.store.store import ReportStore

__all__ = [
    "HistoryConflict",
    "MemoryPublishHistory",
    "PublishHistory",
    "Served",
    "SqlPublishHistory",
    "body_sha256",
    "history_domain",
]


def body_sha256(body: bytes) -> str:
    """The hex SHA-256 of a policy body, as the history and ``plan`` show it."""
    return hashlib.sha256(body).hexdigest()


def history_domain(name: str) -> str:
    """The one spelling of a domain in the history: A-labels, lower case, no trailing dot (so
    ``Example.COM.`` and ``example.com`` share one history)."""
    return to_alabel(name.strip()) or name.strip().rstrip(".").lower()


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("history times must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Served:
    """One body served for ``domain`` under ``policy_id`` from ``since`` until ``until``
    (``None``: still served). ``forced_reason`` is set when a guard was overridden for it."""

    domain: str
    policy_id: str
    body: bytes = field(repr=False)
    mode: Mode
    max_age: int
    since: datetime
    until: datetime | None = None
    forced_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain", history_domain(self.domain))
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "since", _utc(self.since))
        if self.until is not None:
            object.__setattr__(self, "until", _utc(self.until))
            if self.until < self.since:
                raise ValueError("a body cannot stop being served before it started")

    @property
    def sha256(self) -> str:
        return body_sha256(self.body)

    @property
    def current(self) -> bool:
        """Whether it is still served."""
        return self.until is None

    def held_until(self) -> datetime | None:
        """The latest moment a sender may still hold this body (fetched at the last moment it was
        served, kept ``max_age`` seconds); ``None`` while it is still served."""
        if self.until is None:
            return None
        return self.until + timedelta(seconds=self.max_age)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of a history entry (keys are a public contract)."""
        return {
            "domain": self.domain,
            "policy_id": self.policy_id,
            "sha256": self.sha256,
            "mode": self.mode.value,
            "max_age": self.max_age,
            "from": self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "forced_reason": self.forced_reason,
        }


class HistoryConflict(ValueError):
    """A write would break a rule of the history (an id reused, time running backwards)."""


@runtime_checkable
class PublishHistory(Protocol):
    """Where the served bodies are kept. Building one does no I/O; :meth:`open` (or ``with``) does."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def entries(self, domain: str) -> list[Served]:
        """Every body served for ``domain``, oldest first (empty: never published)."""
        ...

    def domains(self) -> list[str]:
        """Every domain with a history, sorted."""
        ...

    def record(self, entry: Served) -> Served:
        """``entry`` (its ``until`` ignored) is served from ``entry.since``: the body served until
        then, if any, ends at that moment. Returns the entry as stored. Raises
        :class:`HistoryConflict` (nothing changed) when the domain used the id before or when
        ``entry.since`` is before the current body's start."""
        ...

    def end(self, domain: str, at: datetime) -> Served | None:
        """The current body of ``domain`` stops being served at ``at`` (the domain is removed);
        returns it as ended, or ``None`` when nothing was served."""
        ...


def _check_new(history: Sequence[Served], entry: Served) -> None:
    """The rules of :meth:`PublishHistory.record`, on the domain's history as it is."""
    if any(old.policy_id == entry.policy_id for old in history):
        raise HistoryConflict(
            f"{entry.domain}: the id {entry.policy_id} was used before; every body needs a new id (RFC 8461 §3.1)"
        )
    if history and entry.since < history[-1].since:
        raise HistoryConflict(
            f"{entry.domain}: a body cannot start at {entry.since.isoformat()}, "
            f"before the last one did ({history[-1].since.isoformat()})"
        )


class MemoryPublishHistory:
    """:class:`PublishHistory` in plain Python: nothing on disk, one lock for atomic writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[Served]] = {}

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def entries(self, domain: str) -> list[Served]:
        with self._lock:
            return list(self._entries.get(history_domain(domain), ()))

    def domains(self) -> list[str]:
        with self._lock:
            return sorted(name for name, entries in self._entries.items() if entries)

    def record(self, entry: Served) -> Served:
        entry = replace(entry, until=None)
        with self._lock:
            history = self._entries.setdefault(entry.domain, [])
            _check_new(history, entry)
            if history and history[-1].current:
                history[-1] = replace(history[-1], until=entry.since)
            history.append(entry)
            return entry

    def end(self, domain: str, at: datetime) -> Served | None:
        with self._lock:
            history = self._entries.get(history_domain(domain), [])
            if not history or not history[-1].current:
                return None
            history[-1] = replace(history[-1], until=max(_utc(at), history[-1].since))
            return history[-1]


class SqlPublishHistory:
    """:class:`PublishHistory` in the project's database: the ``publish_history`` table (Alembic
    revision 0003) beside the reports, through a :class:`~mtasts.store.store.ReportStore`,
    which owns the engine and the schema. The caller may read reports from the same store.

    Each write is one transaction; the unique (domain, id) constraint keeps two writers (two
    hosts sharing a PostgreSQL database) from ever giving one id two bodies.
    """

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

    def entries(self, domain: str) -> list[Served]:
        from sqlalchemy.orm import Session  # noqa: PLC0415

        with Session(self.store.engine) as session:
            return [_row_entry(row) for row in _domain_rows(session, history_domain(domain))]

    def domains(self) -> list[str]:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import PublishedPolicyRow  # noqa: PLC0415

        query = select(PublishedPolicyRow.domain).distinct().order_by(PublishedPolicyRow.domain)
        with Session(self.store.engine) as session:
            return list(session.scalars(query))

    def record(self, entry: Served) -> Served:
        from sqlalchemy.exc import IntegrityError  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        entry = replace(entry, until=None)
        try:
            with Session(self.store.engine) as session, session.begin():
                _check_new([_row_entry(row) for row in _domain_rows(session, entry.domain)], entry)
                current = _current_row(session, entry.domain)
                if current is not None:
                    current.served_until = _naive(entry.since)
                session.add(_entry_row(entry))
        except IntegrityError as exc:  # another writer used the id between our read and our write
            raise HistoryConflict(f"{entry.domain}: the id {entry.policy_id} was used before") from exc
        return entry

    def end(self, domain: str, at: datetime) -> Served | None:
        from sqlalchemy.orm import Session  # noqa: PLC0415

        with Session(self.store.engine) as session, session.begin():
            current = _current_row(session, history_domain(domain))
            if current is None:
                return None
            current.served_until = max(_naive(_utc(at)), current.served_from)
            return _row_entry(current)


# --- SQL rows <-> entries (the database keeps naive UTC, as the report tables do) -------------


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def _row_entry(row: PublishedPolicyRow) -> Served:
    return Served(
        domain=row.domain,
        policy_id=row.policy_id,
        body=row.body.encode("utf-8"),
        mode=Mode(row.mode),
        max_age=row.max_age,
        since=_aware(row.served_from),
        until=None if row.served_until is None else _aware(row.served_until),
        forced_reason=row.forced_reason,
    )


def _entry_row(entry: Served) -> PublishedPolicyRow:
    from mtasts.store.models import PublishedPolicyRow  # noqa: PLC0415

    return PublishedPolicyRow(
        domain=entry.domain,
        policy_id=entry.policy_id,
        sha256=entry.sha256,
        mode=entry.mode.value,
        max_age=entry.max_age,
        body=entry.body.decode("utf-8"),
        served_from=_naive(entry.since),
        served_until=None,
        forced_reason=entry.forced_reason,
    )


def _domain_rows(session: Session, domain: str) -> list[PublishedPolicyRow]:
    from sqlalchemy import select  # noqa: PLC0415

    from mtasts.store.models import PublishedPolicyRow  # noqa: PLC0415

    query = (
        select(PublishedPolicyRow)
        .where(PublishedPolicyRow.domain == domain)
        .order_by(PublishedPolicyRow.served_from, PublishedPolicyRow.id)
    )
    return list(session.scalars(query))


def _current_row(session: Session, domain: str) -> PublishedPolicyRow | None:
    rows = _domain_rows(session, domain)
    return rows[-1] if rows and rows[-1].served_until is None else None
