"""Batched writes: several messages per commit, messages larger than one batch, two writers racing
on the same reports, and a failure in the middle of a message. After each, every report is
stored once and the roll-up tables equal a recomputation from the stored rows."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy.exc import DataError, IntegrityError

from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.store.interface import Message, ReportStoreProtocol, dedup_key
from mtasts.store.memory import MemoryReportStore
from mtasts.store.postgresql import BATCH as PG_BATCH
from mtasts.store.sqlite import BATCH as SQLITE_BATCH
from mtasts.store.store import ReportStore
from tests.store.test_store import (
    NOW,
    analysed,
    assert_twice_and_reporters,
    expected_rollup,
    generated_reports,
    make_report,
)

BIG_MESSAGE = max(PG_BATCH, SQLITE_BATCH) + 150  # more than one statement's worth on both


def assert_rollups_match_rows(store: ReportStoreProtocol) -> None:
    """The roll-up tables hold exactly the sums of the stored rows (for every filter)."""
    for since, domain in [(None, None), (None, "a.example"), (date(2026, 11, 8), None)]:
        from_rows = expected_rollup(store, since, domain)
        kept = store.rollup(since=since, domain=domain)
        assert sorted(kept.days, key=repr) == sorted(from_rows.days, key=repr)
        assert sorted(kept.senders, key=repr) == sorted(from_rows.senders, key=repr)
        # first_seen is an order (database ids there, row positions here): compared through analysed()
        assert sorted(repr(f[:-1]) for f in kept.failures) == sorted(repr(f[:-1]) for f in from_rows.failures)
        assert analysed(kept) == analysed(from_rows)
        assert_twice_and_reporters(store, since, domain)


def unique(reports: list[TlsRptReport]) -> dict[str, TlsRptReport]:
    return {dedup_key(report): report for report in reports}


def test_every_store_is_a_report_store(store: ReportStoreProtocol) -> None:
    assert isinstance(store, ReportStoreProtocol)


def test_a_batch_with_reports_already_stored(store: ReportStoreProtocol) -> None:
    reports = generated_reports(60, seed=11)[:60]  # 60 distinct reports
    store.add_reports(reports[:20], source="earlier", now=NOW)
    messages = [Message(f"m{n}", reports[n * 10 : n * 10 + 15]) for n in range(6)]  # each overlaps the next
    outcomes = store.add_messages(messages, now=NOW)
    assert [o.source for o in outcomes] == [m.source for m in messages]
    assert all(o.error is None for o in outcomes)
    stored = [r.key for o in outcomes for r in o.results if r.stored]
    assert sorted(stored) == sorted(dedup_key(r) for r in reports[20:])  # each new report once, in its first message
    assert [r.stored for r in outcomes[0].results] == [False] * 15
    assert [r.stored for r in outcomes[2].results] == [False] * 5 + [True] * 10  # 20-24: in message 1 already
    assert store.count() == 60
    assert {s.source for s in store.reports()} == {"earlier", "m1", "m2", "m3", "m4", "m5"}
    assert_rollups_match_rows(store)


def test_a_message_larger_than_a_batch_is_stored_whole(store: ReportStoreProtocol) -> None:
    reports = generated_reports(BIG_MESSAGE, seed=12)  # the last tenth repeats the first
    store.add_reports(reports[:100], source="earlier", now=NOW)
    results = store.add_reports(reports, source="big", now=NOW)
    assert len(results) == len(reports)
    assert sum(r.stored for r in results) == BIG_MESSAGE - 100
    assert store.count() == BIG_MESSAGE
    assert_rollups_match_rows(store)


def test_a_value_repeated_in_one_report_adds_up(store: ReportStoreProtocol) -> None:
    """One report naming the same sending IP, result type and MX in many details, under two
    policy types, at counts near the largest a report may give (the PostgreSQL store sums a report's
    details per value before the database sees them): each value holds the sum of its details."""
    big = 4 * 10**11  # two of them and 5: just under the 10^12 a count may be
    detail = {"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1", "receiving-ip": "198.51.100.1"}
    details = [{**detail, "failed-session-count": n} for n in (big, big, 5)]
    policies = [
        {
            "policy": {"policy-type": kind, "policy-domain": "a.example"},
            "summary": {"total-successful-session-count": 1, "total-failure-session-count": 2 * big + 5},
            "failure-details": details,
        }
        for kind in ("sts", "tlsa")
    ]
    small = {**detail, "sending-mta-ip": "192.0.2.2", "failed-session-count": 3}
    other = {
        "policy": {"policy-type": "sts", "policy-domain": "b.example"},
        "summary": {"total-successful-session-count": 1, "total-failure-session-count": 6},
        "failure-details": [small, small],
    }
    store.add_reports([make_report(**{"report-id": "repeats", "policies": [*policies, other]})], source="m", now=NOW)
    failed = {(f[0], f[2], f[3]): f[4] for f in store.rollup().failures}
    assert failed[("a.example", "sending_ip", "192.0.2.1")] == 2 * (2 * big + 5)  # sts and tlsa
    assert failed[("a.example", "result_type", "certificate-expired")] == 2 * (2 * big + 5)
    assert failed[("b.example", "sending_ip", "192.0.2.2")] == 6
    assert failed[("b.example", "mx", "198.51.100.1")] == 6
    assert_rollups_match_rows(store)


@pytest.mark.parametrize("mode", ["messages", "one message"])
def test_two_writers_racing_on_the_same_batch_store_each_report_once(
    sql_store_factory: Callable[..., ReportStore], mode: str
) -> None:
    """Two stores (two connections) write overlapping batches at the same moment, several rounds:
    PostgreSQL makes the second wait on each key the first holds, then skip it."""
    reports = generated_reports(400, seed=13)[:400]
    writers = [sql_store_factory(), sql_store_factory()]
    for writer in writers:
        writer.open()
    stored: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    for round_number in range(4):
        chunk = reports[round_number * 100 : (round_number + 1) * 100]
        barrier = threading.Barrier(2)

        def write(
            writer: ReportStore, offset: int, chunk: list[TlsRptReport] = chunk, barrier: threading.Barrier = barrier
        ) -> None:
            mine = chunk[offset:] + chunk[:offset]  # the same reports, another order
            barrier.wait()
            try:
                if mode == "messages":
                    outcomes = writer.add_messages(
                        [Message(f"w{offset}-{n}", [r]) for n, r in enumerate(mine)], now=NOW
                    )
                    results = [r for o in outcomes for r in o.results]
                else:
                    results = writer.add_reports(mine, source=f"w{offset}", now=NOW)
            except BaseException as exc:  # surfaced below, not lost in the thread
                errors.append(exc)
                return
            with lock:
                stored.extend(r.key for r in results if r.stored)

        threads = [threading.Thread(target=write, args=(w, o)) for w, o in zip(writers, (0, 50), strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert sorted(stored) == sorted(unique(reports))  # each stored once, by one of the two
    assert writers[0].count() == 400
    assert_rollups_match_rows(writers[1])
    for writer in writers:
        writer.close()


def fail_on_result_type(store: ReportStore, value: str) -> None:
    """A trigger that refuses a failure detail with result-type ``value``: an error raised by
    the database in the middle of a message, after its first rows went in."""
    with store.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON tlsrpt_failure "
                f"WHEN NEW.result_type = '{value}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.result_type = '{value}' THEN "
                "RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023'; END IF; RETURN NEW; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON tlsrpt_failure FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def poisoned(number: int) -> TlsRptReport:
    policy: dict[str, Any] = {
        "policy": {"policy-type": "sts", "policy-domain": "a.example"},
        "summary": {"total-successful-session-count": 1, "total-failure-session-count": 1},
        "failure-details": [{"result-type": "validation-failure-poison", "failed-session-count": 1}],
    }
    return make_report(**{"report-id": f"poison-{number}", "policies": [policy]})


@pytest.mark.parametrize("position", [1, BIG_MESSAGE - 1])
def test_a_failure_in_the_middle_of_a_message_keeps_nothing_of_it(sql_store: ReportStore, position: int) -> None:
    fail_on_result_type(sql_store, "validation-failure-poison")
    reports = generated_reports(BIG_MESSAGE, seed=14)[:BIG_MESSAGE]
    reports[position] = poisoned(position)
    with pytest.raises((DataError, IntegrityError), match="refused by the test"):
        sql_store.add_reports(reports, source="bad", now=NOW)
    assert sql_store.count() == 0
    assert sql_store.policy_rows() == []
    assert sql_store.rollup().days == ()


def test_a_refused_message_is_left_out_and_the_others_are_stored(sql_store: ReportStore) -> None:
    fail_on_result_type(sql_store, "validation-failure-poison")
    good = generated_reports(30, seed=15)[:30]
    messages = [
        Message("first", good[:10]),
        Message("bad", [good[10], poisoned(1), good[11]]),
        Message("last", good[12:30]),
    ]
    first, bad, last = sql_store.add_messages(messages, now=NOW)
    assert first.error is None
    assert last.error is None
    assert [r.stored for r in first.results + last.results] == [True] * 28
    assert isinstance(bad.error, (DataError, IntegrityError))
    assert bad.results == ()
    assert sql_store.count() == 28
    assert not sql_store.has(dedup_key(good[10]))  # stored before the refused report: rolled back too
    assert_rollups_match_rows(sql_store)


def test_the_memory_store_needs_opening_and_shares_its_database() -> None:
    store = MemoryReportStore()
    with pytest.raises(RuntimeError, match="not open"):
        store.count()
    with store:
        store.add_reports([make_report()], source="a", now=NOW)
    with MemoryReportStore(store.database, create=False) as reader:
        assert reader.count() == 1
