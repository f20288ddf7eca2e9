"""The history on SQLite and on the real PostgreSQL: a monitor's runs and events survive a
restart, and the database itself keeps one open event per (domain, code, subject)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mtasts.lab.testing import LabController
from mtasts.monitor.history import SqlMonitorHistory
from mtasts.store.models import MonitorEventRow
from mtasts.store.store import ReportStore
from tests.monitor.conftest import Clock, MonitorFactory, cleared, opened
from tests.store.conftest import postgres_url  # noqa: F401 (the fixture: fresh PostgreSQL schemas)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    if request.param == "sqlite":
        store = ReportStore(f"sqlite:///{tmp_path / 'history.sqlite3'}")
    else:
        make: Callable[[], tuple[str, dict[str, str]]] = request.getfixturevalue("postgres_url")
        url, connect_args = make()
        store = ReportStore(url, connect_args=connect_args)
    with store:
        yield store


async def test_a_restarted_monitor_continues_from_the_stored_history(
    world: LabController, clock: Clock, sql_store: ReportStore
) -> None:
    domain, name = world.domain("two-mx"), f"_mta-sts.{world.domain('two-mx')}"
    first = MonitorFactory(world, clock, sql_store)()
    await first.check(domain)
    world.call(lambda: world.lab.set_records(name, "TXT", []))
    gone = await first.check(domain)
    assert ("sts-record-gone", "") in opened(gone)
    second = MonitorFactory(world, clock, sql_store)()  # a new process, the same database
    assert (await second.check(domain)).transitions == ()
    world.call(lambda: world.lab.set_records(name, "TXT", ['"v=STSv1; id=20261129T081500"']))
    back = await second.check(domain)
    assert ("sts-record-gone", "") in cleared(back)
    history = SqlMonitorHistory(sql_store)
    assert len(history.runs(domain)) == 4
    events = history.events(domain)
    assert {e.code for e in events} == {"sts-record-gone", "finding"}
    assert all(e.cleared_at is not None for e in events)


def test_the_database_refuses_a_second_open_event_with_the_same_key(sql_store: ReportStore) -> None:
    now = datetime(2026, 12, 2, tzinfo=UTC).replace(tzinfo=None)

    def row(cleared: datetime | None = None) -> MonitorEventRow:
        return MonitorEventRow(
            domain="example.com", code="policy-gone", subject="", severity="error", message="m", fix="f",
            data="{}", opened_at=now, opened_run=run_id, cleared_at=cleared,
        )  # fmt: skip

    from mtasts.store.models import MonitorRunRow

    with Session(sql_store.engine) as session, session.begin():
        run = MonitorRunRow(
            domain="example.com", started_at=now, elapsed_ms=1, status="ok", conclusive=1, snapshot="{}"
        )
        session.add(run)
        session.flush()
        run_id = run.id
        session.add_all([row(cleared=now), row(cleared=now), row()])  # cleared ones may repeat
    with pytest.raises(IntegrityError), Session(sql_store.engine) as session, session.begin():
        session.add(row())
