"""The published history's contract, the same tests in memory, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from mtasts.core.policy import Mode, Policy
from mtasts.publish.history import (
    HistoryConflict,
    MemoryPublishHistory,
    PublishHistory,
    Served,
    SqlPublishHistory,
    body_sha256,
)
from mtasts.store.store import ReportStore
from tests.store.conftest import postgres_url  # noqa: F401 (the fixture the PostgreSQL runs use)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def body(mode: Mode = Mode.TESTING, max_age: int = 86400) -> bytes:
    return Policy(mode=mode, max_age=max_age, mx=("mx1.example.com",)).to_text().encode()


def served(policy_id: str, since: datetime, mode: Mode = Mode.TESTING, max_age: int = 86400) -> Served:
    return Served("example.com", policy_id, body(mode, max_age), mode, max_age, since)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def history_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], PublishHistory]]:
    """Builds (unopened) histories on one fresh database: the same one for every call in a test."""
    if request.param == "memory":
        shared = MemoryPublishHistory()
        yield lambda: shared
        return
    if request.param == "sqlite":
        url, connect_args = f"sqlite:///{tmp_path / 'mtasts.sqlite3'}", {}
    else:
        url, connect_args = request.getfixturevalue("postgres_url")()
    made: list[SqlPublishHistory] = []

    def make() -> PublishHistory:
        history = SqlPublishHistory(ReportStore(url, connect_args=connect_args))
        made.append(history)
        return history

    yield make
    for history in made:
        history.close()


@pytest.fixture
def history(history_factory: Callable[[], PublishHistory]) -> Iterator[PublishHistory]:
    with history_factory() as opened:
        yield opened


def test_a_new_body_ends_the_one_served_before(history: PublishHistory) -> None:
    history.record(served("20261201T120000", T0))
    history.record(served("20261215T120000", T0 + 14 * DAY, Mode.ENFORCE))
    first, second = history.entries("example.com")
    assert (first.policy_id, first.until) == ("20261201T120000", T0 + 14 * DAY)
    assert (second.policy_id, second.until, second.mode) == ("20261215T120000", None, Mode.ENFORCE)
    assert second.body == body(Mode.ENFORCE)
    assert second.sha256 == body_sha256(body(Mode.ENFORCE))
    assert second.since == T0 + 14 * DAY
    assert second.since.tzinfo is not None


def test_everything_survives_reopening(history_factory: Callable[[], PublishHistory]) -> None:
    with history_factory() as writer:
        entry = Served("Example.COM.", "a1", body(), Mode.TESTING, 86400, T0, forced_reason="incident 42")
        writer.record(entry)
    with history_factory() as reader:
        (kept,) = reader.entries("example.com")
        assert kept.domain == "example.com"
        assert kept.forced_reason == "incident 42"
        assert kept.to_dict() == {
            "domain": "example.com",
            "policy_id": "a1",
            "sha256": body_sha256(body()),
            "mode": "testing",
            "max_age": 86400,
            "from": "2026-12-01T12:00:00+00:00",
            "until": None,
            "forced_reason": "incident 42",
        }
        assert reader.domains() == ["example.com"]


def test_an_id_is_never_reused_for_a_domain(history: PublishHistory) -> None:
    history.record(served("a1", T0))
    history.record(served("a2", T0 + DAY))
    with pytest.raises(HistoryConflict, match="the id a1 was used before"):
        history.record(served("a1", T0 + 2 * DAY))
    assert [e.policy_id for e in history.entries("example.com")] == ["a1", "a2"]
    assert history.entries("example.com")[-1].current  # nothing changed
    history.record(Served("other.example", "a1", body(), Mode.TESTING, 86400, T0))  # another domain may
    assert history.domains() == ["example.com", "other.example"]


def test_time_does_not_run_backwards(history: PublishHistory) -> None:
    history.record(served("a1", T0))
    with pytest.raises(HistoryConflict, match="before the last one did"):
        history.record(served("a2", T0 - DAY))
    assert [e.policy_id for e in history.entries("example.com")] == ["a1"]


def test_ending_a_domain_removes_it(history: PublishHistory) -> None:
    assert history.end("example.com", T0) is None
    history.record(served("a1", T0))
    ended = history.end("example.com", T0 + 3 * DAY)
    assert ended is not None
    assert ended.until == T0 + 3 * DAY
    assert ended.held_until() == T0 + 4 * DAY
    assert history.end("example.com", T0 + 4 * DAY) is None
    assert not history.entries("example.com")[-1].current
    assert history.entries("unknown.example") == []


def test_the_sql_history_lives_in_the_report_database(tmp_path: Path) -> None:
    store = ReportStore(f"sqlite:///{tmp_path / 'mtasts.sqlite3'}")
    with SqlPublishHistory(store) as history:
        history.record(served("a1", T0))
        assert "publish_history" in inspect(store.engine).get_table_names()
        assert store.count() == 0  # the reports beside it are untouched


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Served("example.com", "a1", body(), Mode.TESTING, 86400, datetime(2026, 12, 1))
