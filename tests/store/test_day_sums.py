"""``day_sums``: the day totals of every domain summed by the store (SQLite, PostgreSQL, in
memory) say what the analysis says from the roll-up's day rows: the dashboard of every domain
shows the same totals, days, policy types and readiness either way."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from mtasts.report.analysis import overview_rollup, overview_sums, readiness_rollup, readiness_sums
from mtasts.store.interface import ReportStoreProtocol
from mtasts.store.store import ReportStore
from tests.store.test_store import BIG, FIRST_DAY, NOW, generated_reports, hold_huge_counts, on_day

SELECTIONS = [
    # since, until, window: every stored day, windows at each domain's newest day (the dashboard
    # of everything stored); a period with its window (the dashboard of N days); odd ones
    (None, None, 30),
    (date(2026, 11, 8), date(2026, 11, 20), 13),
    (date(2026, 11, 8), None, 5),
    (date(2026, 11, 8), None, 30),  # windows that start before the period
    (None, date(2026, 11, 10), 5),
    (date(2026, 11, 15), date(2026, 12, 31), 47),
    (date(2027, 1, 1), None, 30),  # nothing stored then
]


@pytest.mark.parametrize("batches", [1, 7])
def test_the_day_sums_say_what_the_analysis_of_the_day_rows_says(store: ReportStoreProtocol, batches: int) -> None:
    reports = generated_reports(160, seed=10 + batches)
    for number in range(batches):
        store.add_reports(reports[number::batches], source="g", now=NOW)
    for since, until, window in SELECTIONS:
        rollup = store.rollup(since=since)
        sums = store.day_sums(since=since, until=until, window=window)
        assert overview_sums(sums, rollup) == overview_rollup(rollup)
        assert readiness_sums(sums) == readiness_rollup(rollup, until=until, days=window)
        read = store.dashboard(since=since, until=until, window=window)
        assert read.rollup == replace(rollup, days=(), days_twice=())
        assert sorted(read.reporters, key=repr) == sorted(store.reporters(since=since), key=repr)
        assert read.sums == sums
    assert store.rollup().days_twice  # some sessions are counted twice: count_once has work to do
    verdicts = {r.verdict.value for r in readiness_sums(store.day_sums())}
    assert len(verdicts) > 1


def test_the_day_sums_of_nothing_stored_are_empty(store: ReportStoreProtocol) -> None:
    sums = store.day_sums()
    assert (sums.domains, sums.daily, sums.policy_types, sums.double_counted) == ((), (), (), (0, 0))


def test_day_sums_add_up_counts_past_64_bits_exactly(sql_store: ReportStore) -> None:
    """Sums of saturated counts are not saturated again, as the analysis adds them up in Python
    (SQLite's SUM() overflows there: the store then sums in two halves)."""
    store = sql_store
    store.add_reports([on_day(f"r-{n}", FIRST_DAY + timedelta(days=n)) for n in range(4)], source="old", now=NOW)
    hold_huge_counts(store, 1, 2, 3)
    for since in (None, FIRST_DAY + timedelta(days=1)):
        rollup = store.rollup(since=since)
        sums = store.day_sums(since=since)
        assert overview_sums(sums, store.dashboard(since=since).rollup) == overview_rollup(rollup)
        assert readiness_sums(sums) == readiness_rollup(rollup)
        assert sum(row.successful for row in sums.domains) >= 3 * BIG > 2**63
