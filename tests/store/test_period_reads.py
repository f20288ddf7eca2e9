"""The two ways a SQL store reads a period and the reporters (mtasts.store.store: per key of a
totals table, SQLite's; grouped, PostgreSQL's) give the same rows, on both databases; also for
periods in which some senders and values have no day (they are left out, not read as zero)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from mtasts.store.store import (
    ReportStore,
    _period_senders,
    _period_values,
    _plain_rows,
    _reporters_query,
)
from tests.store.test_store import NOW, generated_reports, on_day

SELECTIONS = [
    (None, None),
    (None, "a.example"),
    (date(2026, 11, 1), None),
    (date(2026, 11, 12), None),
    (date(2026, 11, 19), "b.example"),
    (date(2026, 11, 21), None),  # after the last day (the 20th): nothing
]


def read(store: ReportStore, query: Any) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        return sorted(tuple(str(value) for value in row) for row in _plain_rows(connection, query))


@pytest.mark.parametrize(("since", "domain"), SELECTIONS)
def test_reading_per_key_and_grouped_give_the_same_rows(
    sql_store: ReportStore, since: date | None, domain: str | None
) -> None:
    store = sql_store
    store.add_reports(generated_reports(90, seed=3), source="g", now=NOW)
    store.add_reports([on_day("early", date(2026, 10, 30))], source="early", now=NOW)  # a sender of one old day
    reporters = read(store, _reporters_query(since, domain, by_key=True))
    assert reporters == read(store, _reporters_query(since, domain, by_key=False))
    if since is None:
        assert len(reporters) == len(read(store, _reporters_query(since, domain, by_key=False))) > 0
        return
    senders = read(store, _period_senders(since, domain, exact=True, by_key=True))
    assert senders == read(store, _period_senders(since, domain, exact=True, by_key=False))
    values = read(store, _period_values(since, domain, exact=True, by_key=True))
    assert values == read(store, _period_values(since, domain, exact=True, by_key=False))
    # the early sender has no day in these periods: left out, not read as zero
    everyone = read(store, _reporters_query(None, domain, by_key=False))
    if since == date(2026, 11, 21):
        assert reporters == senders == values == []
    else:
        assert reporters
        if domain is None:
            assert len(reporters) < len(everyone)
        assert values
        assert "Example Sender" not in {row[1] for row in reporters + senders + values}


def test_the_driver_rows_are_sqlalchemys_rows_cached_or_not(
    sql_store: ReportStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_plain_rows`` compiles a query once per structure by SQLAlchemy's cache key; a
    SQLAlchemy without that method gets every query compiled afresh, with the same rows."""
    store = sql_store
    store.add_reports(generated_reports(30, seed=5), source="g", now=NOW)
    query = _period_values(date(2026, 11, 10), None, exact=True, by_key=False)
    with store.engine.connect() as connection:
        expected = sorted(tuple(str(value) for value in row) for row in connection.execute(query))
    assert expected
    assert read(store, query) == expected  # compiled now
    assert read(store, _period_values(date(2026, 11, 10), None, exact=True, by_key=False)) == expected  # cached
    monkeypatch.setattr(type(query), "_generate_cache_key", None)
    assert read(store, query) == expected
