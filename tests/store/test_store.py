"""The store contract: the same tests on SQLite, PostgreSQL and the in-memory store."""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from mtasts.core.tlsrpt_report import Rollup, TlsRptReport, parse_report, report_rows
from mtasts.report.analysis import (
    failing_senders_rollup,
    readiness_rollup,
    rollup_rows,
    summarise_rollup,
)
from mtasts.report.mail import parse_any
from mtasts.store.errors import StoreMissing, StoreUnavailable, UnsupportedDatabase
from mtasts.store.interface import Reporter, ReportStoreProtocol
from mtasts.store.models import Base
from mtasts.store.store import MIGRATIONS, ReportStore, dedup_key, default_db_url, normalise_url
from tests.conftest import TLSRPT_SAMPLES, require_shared
from tests.report.test_mail import REPORT

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def make_report(**changes: Any) -> TlsRptReport:
    return parse_report(json.dumps({**REPORT, **changes}).encode())


def test_opening_migrates_to_the_schema_of_the_models(sql_store: ReportStore) -> None:
    store = sql_store
    tables = set(inspect(store.engine).get_table_names())
    assert {"tlsrpt_report", "tlsrpt_policy", "tlsrpt_failure", "alembic_version"} <= tables
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_building_a_store_connects_to_nothing() -> None:
    store = ReportStore("postgresql://nobody@127.0.0.1:1/none")
    assert store.url.startswith("postgresql+psycopg://")
    with pytest.raises(RuntimeError, match="not open"):
        _ = store.engine


def test_reopening_is_harmless(store_factory: Callable[..., ReportStoreProtocol]) -> None:
    with store_factory() as first:
        first.add_reports([make_report()], source="a", now=NOW)
    with store_factory() as second:
        assert second.count() == 1


def test_the_same_report_twice_is_stored_once(store: ReportStoreProtocol) -> None:
    (first,) = store.add_reports([make_report()], source="a", now=NOW)
    (second,) = store.add_reports([make_report()], source="b", now=NOW)
    assert first.stored
    assert not second.stored
    assert first.key == second.key
    assert store.count() == 1
    (kept,) = store.reports()
    assert kept.source == "a"


def test_identity_is_organisation_and_report_id(store: ReportStoreProtocol) -> None:
    results = store.add_reports(
        [make_report(), make_report(**{"organization-name": "Other"}), make_report(**{"report-id": "r-2"})],
        source="a",
        now=NOW,
    )
    assert [r.stored for r in results] == [True, True, True]
    assert store.count() == 3


def test_without_report_id_the_content_decides(store: ReportStoreProtocol) -> None:
    one = make_report(**{"report-id": ""})
    other = make_report(**{"report-id": "", "contact-info": "someone@else.example"})
    assert dedup_key(one) == one.digest
    results = store.add_reports([one, one, other], source="a", now=NOW)
    assert [r.stored for r in results] == [True, False, True]
    assert store.count() == 2


def test_a_failure_mid_ingest_leaves_nothing(store: ReportStoreProtocol) -> None:
    def crashing() -> Iterator[TlsRptReport]:
        yield make_report(**{"report-id": "first"})
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        store.add_reports(crashing(), source="a", now=NOW)
    assert store.count() == 0
    assert store.policy_rows() == []


def test_stored_reports_read_back_exactly(store: ReportStoreProtocol) -> None:
    report = make_report()
    store.add_reports([report], source="mail", now=NOW)
    (kept,) = store.reports()
    assert kept.report == report
    assert kept.report.raw == report.raw
    assert kept.received_at == NOW
    policies, failures = report_rows(report)
    assert store.policy_rows() == policies
    assert store.failure_rows() == failures


def test_a_report_large_enough_to_be_compressed_reads_back_exactly(sql_store: ReportStore) -> None:
    """A report's JSON over 2 KiB is compressed in the database (on PostgreSQL with LZ4 where the
    server has it, revision 0008): it reads back byte for byte, with its rows."""
    details = [
        {"result-type": "validation-failure", "failed-session-count": 1, "sending-mta-ip": f"192.0.2.{n}"}
        for n in range(1, 200)
    ]
    policy = {
        "policy": {"policy-type": "sts", "policy-domain": "example.com"},
        "summary": {"total-successful-session-count": 7, "total-failure-session-count": len(details)},
        "failure-details": details,
    }
    report = make_report(policies=[policy])
    assert len(report.raw) > 8192
    sql_store.add_reports([report], source="mail", now=NOW)
    (kept,) = sql_store.reports()
    assert kept.report.raw == report.raw
    assert len(sql_store.failure_rows()) == len(details)
    if sql_store.engine.dialect.name == "postgresql":
        with sql_store.engine.connect() as connection:
            lz4 = connection.execute(
                text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            ).scalar()
            method = connection.execute(text("SELECT pg_column_compression(raw) FROM tlsrpt_report")).scalar()
        assert method == ("lz4" if lz4 else "pglz")


def test_rows_filter_by_day_and_domain(store: ReportStoreProtocol) -> None:
    early = make_report(
        **{
            "report-id": "early",
            "date-range": {"start-datetime": "2026-11-01T00:00:00Z", "end-datetime": "2026-11-01T23:59:59Z"},
        }
    )
    store.add_reports([early, make_report()], source="a", now=NOW)
    assert [r.day for r in store.policy_rows(since=date(2026, 11, 20))] == [date(2026, 11, 28)]
    assert store.policy_rows(domain="other.example") == []
    assert len(store.failure_rows(domain="example.com")) == 2
    assert [s.report.report_id for s in store.reports(since=date(2026, 11, 20))] == ["r-1"]


def test_concurrent_writers_store_a_report_once(store_factory: Callable[..., ReportStoreProtocol]) -> None:
    stores = [store_factory() for _ in range(4)]
    for one in stores:
        one.open()
    barrier = threading.Barrier(len(stores))
    outcomes: list[bool] = []

    def write(one: ReportStoreProtocol) -> None:
        barrier.wait()
        outcomes.extend(r.stored for r in one.add_reports([make_report()], source="t", now=NOW))

    threads = [threading.Thread(target=write, args=(one,)) for one in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, False, False, True]
    assert stores[0].count() == 1


def test_every_sample_is_stored_with_its_totals(store: ReportStoreProtocol) -> None:
    require_shared(TLSRPT_SAMPLES)
    expected: dict[str, TlsRptReport] = {}
    for path in sorted(TLSRPT_SAMPLES.rglob("*")):
        if not path.is_file() or path.suffix == ".md":
            continue
        try:
            reports = parse_any(path.read_bytes())
        except ValueError:
            continue
        for report in reports:
            expected.setdefault(dedup_key(report), report)
        store.add_reports(reports, source=str(path), now=NOW)
    assert store.count() == len(expected) == 30
    rows = store.policy_rows()
    assert sum(r.total_successful for r in rows) == sum(r.total_successful for r in expected.values())
    assert sum(r.total_failure for r in rows) == sum(r.total_failure for r in expected.values())


def test_default_url_comes_from_the_environment(tmp_path: Any) -> None:
    assert default_db_url({"MTASTS_DB": str(tmp_path / "x.db")}) == f"sqlite:///{tmp_path / 'x.db'}"
    assert default_db_url({"MTASTS_DB": "postgresql://u@h/db"}) == "postgresql+psycopg://u@h/db"
    assert default_db_url({"XDG_DATA_HOME": str(tmp_path)}) == f"sqlite:///{tmp_path / 'mtasts' / 'reports.sqlite3'}"
    assert normalise_url("sqlite:///x") == "sqlite:///x"


def generated_reports(count: int, seed: int) -> list[TlsRptReport]:
    """Reports over a few domains (one of them none), senders and days, with details that repeat,
    lack fields or carry reasons, some added twice (stored once)."""
    rng = random.Random(seed)
    reports = []
    for number in range(count):
        day = date(2026, 11, 1) + timedelta(days=rng.randrange(20))
        policies = []
        for kind in rng.sample(["sts", "tlsa", "no-policy-found"], rng.randint(1, 2)):
            details = [
                {
                    "result-type": rng.choice(["validation-failure", "certificate-expired", "Testing"]),
                    "failed-session-count": rng.choice([0, 1, 4]),
                    **({"sending-mta-ip": rng.choice(["192.0.2.1", "192.0.2.2"])} if rng.random() < 0.7 else {}),
                    **({"receiving-mx-hostname": "mx1.a.example"} if rng.random() < 0.4 else {}),
                    **({"receiving-ip": "198.51.100.1"} if rng.random() < 0.4 else {}),
                    **({"failure-reason-code": rng.choice(["timeout", "tls", "dns"])} if rng.random() < 0.5 else {}),
                }
                for _ in range(rng.choice([0, 0, 1, 3]))
            ]
            policy: dict[str, Any] = {"policy-type": kind}
            if kind != "no-policy-found" or rng.random() < 0.5:
                policy["policy-domain"] = rng.choice(["a.example", "b.example"])
            summary = {"total-successful-session-count": rng.choice([0, 3, 1000])}
            if rng.random() < 0.9:
                summary["total-failure-session-count"] = rng.choice([0, 2, 9])
            policies.append({"policy": policy, "summary": summary, "failure-details": details})
        start = f"{day.isoformat()}T00:00:00Z"
        reports.append(
            make_report(
                **{
                    "organization-name": rng.choice(["G", "M", "X"]),
                    "report-id": f"r-{number}",
                    "date-range": {"start-datetime": start, "end-datetime": f"{day.isoformat()}T23:59:59Z"},
                    "policies": policies,
                }
            )
        )
    return reports + reports[: count // 10]


def counted_twice(
    store: ReportStoreProtocol, since: date | None = None, domain: str | None = None
) -> tuple[list[Any], list[Any], list[Reporter]]:
    """What the store should say was counted twice (per domain and day, per domain and sender)
    and who reported, worked out here from the stored reports themselves: a report's ``sts``
    results for a domain are counted twice when the same report holds a ``tlsa`` result for it."""
    days: dict[tuple[str | None, date], list[int]] = {}
    senders: dict[tuple[str | None, str], list[int]] = {}
    reported: dict[tuple[str | None, str], set[date]] = {}
    for stored in store.reports(since=since, domain=domain):
        report = stored.report
        tlsa = {p.policy_domain for p in report.policies if p.policy_type.value == "tlsa"}
        for policy in report.policies:
            if domain is not None and policy.policy_domain != domain:
                continue
            reported.setdefault((policy.policy_domain, report.organization_name), set()).add(report.day)
            if policy.policy_type.value == "sts" and policy.policy_domain in tlsa:
                for table, key in (
                    (days, (policy.policy_domain, report.day)),
                    (senders, (policy.policy_domain, report.organization_name)),
                ):
                    pair = table.setdefault(key, [0, 0])
                    pair[0] += policy.total_successful
                    pair[1] += policy.total_failure
    return (
        sorted(((*key, *pair) for key, pair in days.items() if any(pair)), key=repr),
        sorted(((*key, *pair) for key, pair in senders.items() if any(pair)), key=repr),
        sorted((Reporter(d, org, max(seen), len(seen)) for (d, org), seen in reported.items()), key=repr),
    )


def expected_rollup(store: ReportStoreProtocol, since: date | None = None, domain: str | None = None) -> Rollup:
    """The roll-up of the stored rows, with what :func:`counted_twice` finds in the reports."""
    rows = rollup_rows(store.policy_rows(since=since, domain=domain), store.failure_rows(since=since, domain=domain))
    days_twice, senders_twice, _ = counted_twice(store, since, domain)
    return replace(rows, days_twice=tuple(days_twice), senders_twice=tuple(senders_twice))


def assert_twice_and_reporters(store: ReportStoreProtocol, since: date | None, domain: str | None) -> None:
    kept = store.rollup(since=since, domain=domain)
    days_twice, senders_twice, reporters = counted_twice(store, since, domain)
    assert sorted(kept.days_twice, key=repr) == days_twice
    assert sorted(kept.senders_twice, key=repr) == senders_twice
    assert sorted(store.reporters(since=since, domain=domain), key=repr) == reporters


def analysed(rollup: Rollup) -> tuple[Any, ...]:
    """What the CLI shows from a roll-up (its order-free content)."""
    return (
        [s.to_dict() for s in summarise_rollup(rollup)],
        [i.to_dict() for i in failing_senders_rollup(rollup)],
        [r.to_dict() for r in readiness_rollup(rollup)],
        [r.to_dict() for r in readiness_rollup(rollup, until=date(2026, 11, 10), days=5)],
    )


@pytest.mark.parametrize("batches", [1, 7])
def test_the_database_rollup_equals_the_rollup_of_the_rows(store: ReportStore, batches: int) -> None:
    reports = generated_reports(120, seed=batches)
    for number in range(batches):
        store.add_reports(reports[number::batches], source="g", now=NOW)
    for since, domain in [
        (None, None),
        (None, "a.example"),
        (date(2026, 11, 8), None),
        (date(2026, 11, 8), "b.example"),
    ]:
        from_rows = expected_rollup(store, since, domain)
        in_database = store.rollup(since=since, domain=domain)
        assert analysed(in_database) == analysed(from_rows)
        assert_twice_and_reporters(store, since, domain)
        assert sorted(in_database.days, key=repr) == sorted(from_rows.days, key=repr)
        assert sorted(in_database.senders, key=repr) == sorted(from_rows.senders, key=repr)
        assert sorted(repr(f[:-1]) for f in in_database.failures) == sorted(repr(f[:-1]) for f in from_rows.failures)
    assert store.rollup(domain="") == Rollup()
    assert store.reporters(domain="") == []
    assert analysed(store.rollup(since=date(2026, 11, 1))) == analysed(store.rollup())
    assert store.rollup().days_twice  # the generated reports do count some sessions twice


def test_the_rollup_of_the_samples_gives_the_summary_of_their_rows(store: ReportStoreProtocol) -> None:
    require_shared(TLSRPT_SAMPLES)
    for path in sorted(TLSRPT_SAMPLES.rglob("*")):
        if path.is_file() and path.suffix != ".md":
            try:
                store.add_reports(parse_any(path.read_bytes()), source=str(path), now=NOW)
            except ValueError:
                continue
    assert analysed(store.rollup()) == analysed(expected_rollup(store))
    assert_twice_and_reporters(store, None, None)
    assert_twice_and_reporters(store, None, "random.net")
    # the samples hold one report (Microsoft's) with both results: random.net's 2 sessions, once
    (random,) = summarise_rollup(store.rollup(domain="random.net"))
    assert (random.totals.successful, random.double_counted.successful) == (2, 2)
    assert random.by_policy_type["sts"].successful == random.by_policy_type["tlsa"].successful == 2


def test_the_migration_fills_the_rollups_of_rows_stored_before_it(
    sql_store_factory: Callable[..., ReportStore],
) -> None:
    with sql_store_factory() as store:
        store.migrate("0001")
        store.add_reports(generated_reports(120, seed=7), source="g", now=NOW)
        with store.engine.begin() as connection:  # rows stored by a version without roll-ups
            first = {"tlsrpt_report", "tlsrpt_policy", "tlsrpt_failure"}  # every later revision's tables go
            for table in [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in first]:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
        store.migrate()
        assert analysed(store.rollup()) == analysed(expected_rollup(store))
        assert_twice_and_reporters(store, None, None)
        assert_twice_and_reporters(store, date(2026, 11, 8), "a.example")
        for since, domain in [(date(2026, 11, 8), None), (date(2026, 11, 8), "a.example")]:  # the per-day tables
            assert analysed(store.rollup(since=since, domain=domain)) == analysed(expected_rollup(store, since, domain))
        assert store.rollup().days_twice  # the backfill kept what was counted twice
        assert store.stamp() == reports_per_domain(store)


def reports_per_domain(store: ReportStoreProtocol) -> int:
    """What :meth:`ReportStoreProtocol.stamp` should say: each stored report once per policy domain."""
    return sum(len({p.policy_domain for p in stored.report.policies}) for stored in store.reports())


def test_the_stamp_grows_with_every_report_and_only_then(store: ReportStoreProtocol) -> None:
    assert store.stamp() == 0
    store.add_reports(generated_reports(30, seed=5), source="g", now=NOW)
    before = store.stamp()
    assert before == reports_per_domain(store) > 0
    store.add_reports(generated_reports(30, seed=5)[:5], source="again", now=NOW)  # stored already
    assert store.stamp() == before
    # no session at all, but a new reporter for the dashboard: the stamp moves
    summary = {"total-successful-session-count": 0, "total-failure-session-count": 0}
    policy = {"policy": {"policy-type": "sts", "policy-domain": "quiet.example"}, "summary": summary}
    store.add_reports([make_report(**{"report-id": "no-sessions", "policies": [policy]})], source="new", now=NOW)
    assert store.stamp() == before + 1


BIG: Final = 2**62  # two of these pass 2^63-1, where SQLite's SUM() raises "integer overflow"
MAX_COUNT: Final = 2**63 - 1
FIRST_DAY: Final = date(2026, 11, 20)


def on_day(report_id: str, day: date) -> TlsRptReport:
    """:data:`REPORT` (7 successful sessions, 1 failed, one failure detail) on ``day``."""
    span = {"start-datetime": f"{day}T00:00:00Z", "end-datetime": f"{day}T23:59:59Z"}
    return make_report(**{"report-id": report_id, "date-range": span})


def hold_huge_counts(store: ReportStore, *days: int) -> None:
    """The per-day roll-up rows of the reports of these days (from :data:`FIRST_DAY`) at 2^62
    sessions, as a store holds them after years of big counts (each one saturated at ingest)."""
    per_day = {"tlsrpt_day_total": "successful", "tlsrpt_reporter_day": "successful", "tlsrpt_failure_day": "failed"}
    chosen = [(FIRST_DAY + timedelta(days=n)).isoformat() for n in days]
    with store.engine.begin() as connection:
        for table, column in per_day.items():
            other = ", failed = :n" if column == "successful" else ""
            for day in chosen:
                statement = f"UPDATE {table} SET {column} = :n{other} WHERE CAST(day AS TEXT) = :day"
                connection.execute(text(statement), {"n": BIG, "day": day})


def test_sums_over_a_period_saturate_instead_of_overflowing(sql_store: ReportStore) -> None:
    store = sql_store
    store.add_reports([on_day(f"r-{n}", FIRST_DAY + timedelta(days=n)) for n in range(4)], source="old", now=NOW)
    hold_huge_counts(store, 1, 2, 3)
    rollup = store.rollup(since=FIRST_DAY + timedelta(days=1))  # three days of 2^62, summed in the database
    assert sorted(day[3:] for day in rollup.days) == [(BIG, BIG)] * 3  # one row a day: nothing to sum
    ((_, _, ok, failed, _, _),) = rollup.senders
    assert (ok, failed) == (MAX_COUNT, MAX_COUNT)
    assert {f[4] for f in rollup.failures} == {MAX_COUNT}


def test_sums_over_a_period_stay_exact_below_the_limit(sql_store: ReportStore) -> None:
    store = sql_store
    store.add_reports([on_day(f"r-{n}", FIRST_DAY + timedelta(days=n)) for n in range(3)], source="new", now=NOW)
    hold_huge_counts(store, 1)
    rollup = store.rollup(since=FIRST_DAY + timedelta(days=1))  # 2^62 and one report of 7 ok, 1 failed
    ((_, _, ok, failed, _, _),) = rollup.senders
    assert (ok, failed) == (BIG + 7, BIG + 1)  # exact: no detour through floating point
    assert {f[4] for f in rollup.failures} == {BIG + 1}


def test_the_migration_saturates_what_it_sums_from_huge_rows(sql_store: ReportStore) -> None:
    """Rows of 2^62 sessions (versions that did not cap counts at parse time accepted them),
    two reports on one day: revision 0007 fills that day's roll-up rows with their sums, saturated."""
    store = sql_store
    day = FIRST_DAY + timedelta(days=1)
    store.add_reports([on_day("small", FIRST_DAY), on_day("old-1", day), on_day("old-2", day)], source="old", now=NOW)
    huge = "report_pk IN (SELECT id FROM tlsrpt_report WHERE report_id LIKE 'old-%')"
    with store.engine.begin() as connection:
        policies = f"UPDATE tlsrpt_policy SET total_successful = :n, total_failure = :n WHERE {huge}"
        details = (
            "UPDATE tlsrpt_failure SET failed_session_count = :n"
            f" WHERE policy_pk IN (SELECT id FROM tlsrpt_policy WHERE {huge})"
        )
        connection.execute(text(policies), {"n": BIG})
        connection.execute(text(details), {"n": BIG})
    downgrade(store, "0006")
    store.migrate()  # 0007 again: fills its tables and columns from the rows
    rollup = store.rollup(since=day)
    ((_, _, ok, failed, _, _),) = rollup.senders
    assert (ok, failed) == (MAX_COUNT, MAX_COUNT)
    assert {f[4] for f in rollup.failures} == {MAX_COUNT}
    assert analysed(store.rollup(since=FIRST_DAY)) == analysed(store.rollup())


def downgrade(store: ReportStore, revision: str) -> None:
    """Run the packaged migrations down to ``revision`` (the store itself only upgrades)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


# --- opening: writers create, readers never do ---------------------------------------------------


def test_a_reader_finds_what_a_writer_stored(store_factory: Callable[..., ReportStoreProtocol]) -> None:
    with store_factory() as writer:
        writer.add_reports([make_report()], source="a", now=NOW)
    with store_factory(create=False) as reader:
        assert reader.count() == 1
        assert reader.rollup().days


def test_a_reader_creates_no_schema(store_factory: Callable[..., ReportStoreProtocol]) -> None:
    for _ in range(2):  # had the first reader made anything, the second would find it
        with pytest.raises(StoreMissing, match=r"no report database at|holds no mtasts reports"):
            store_factory(create=False).open()
    with store_factory() as writer:
        assert writer.count() == 0
    with store_factory(create=False) as reader:
        assert reader.count() == 0


def test_a_reader_creates_no_file_and_no_folder(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "b" / "reports.sqlite3"
    for url in (str(missing), f"sqlite:///{missing}"):
        with pytest.raises(StoreMissing, match=f"no report database at {missing}.*folder does not exist"):
            ReportStore(url, create=False).open()
    (tmp_path / "a" / "b").mkdir(parents=True)
    with pytest.raises(StoreMissing, match="no report database at"):
        ReportStore(str(missing), create=False).open()
    assert [p.name for p in tmp_path.rglob("*")] == ["a", "b"]


def test_a_reader_writes_nothing_into_a_foreign_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreMissing, match="holds no mtasts reports"):
        ReportStore(str(path), create=False).open()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:hunter2@127.0.0.1/db",
        "postgresql+psycopg2://u@h/db",
        "oracle://u@h/db",
        "postgresql://u:hunter2@h/",
    ],
)
def test_unsupported_urls_are_refused_before_connecting(url: str) -> None:
    with pytest.raises(UnsupportedDatabase) as caught:
        ReportStore(url)
    assert "hunter2" not in caught.value.message
    assert "postgresql://" in caught.value.message


def test_an_unreachable_server_is_one_redacted_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = ReportStore(f"postgresql://postgres:hunter2@127.0.0.1:{port}/test")
    assert store.display_url == f"postgresql+psycopg://postgres:***@127.0.0.1:{port}/test"
    with pytest.raises(StoreUnavailable) as caught:
        store.open()
    assert caught.value.message.startswith(f"database postgresql+psycopg://postgres:***@127.0.0.1:{port}/test: ")
    assert "\n" not in caught.value.message
    assert "hunter2" not in caught.value.message
    with pytest.raises(RuntimeError, match="not open"):
        _ = store.engine  # nothing half-open is left behind


def test_a_locked_database_is_unavailable_not_a_bug(tmp_path: Path) -> None:
    path = tmp_path / "reports.sqlite3"
    with ReportStore(str(path)) as store:
        store.add_reports([make_report()], source="a", now=NOW)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("PRAGMA journal_mode=DELETE")  # a rollback journal: an exclusive lock stops readers
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable, match="database is locked"):
            ReportStore(str(path), connect_args={"timeout": 0.1}, create=False).open()
    finally:
        locker.rollback()
        locker.close()


def test_a_broken_schema_is_not_mistaken_for_an_outage(tmp_path: Path) -> None:
    """A query mtasts got wrong (here: a table someone dropped) is a bug to see, with --debug;
    only a database that cannot be used becomes StoreUnavailable (exit status 3)."""
    from sqlalchemy.exc import OperationalError

    from mtasts.store.errors import translate_store_errors

    with ReportStore(str(tmp_path / "r.db")) as store:
        with store.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE tlsrpt_day_total")
        with pytest.raises(OperationalError, match="no such table"), translate_store_errors(store.url):
            store.rollup()


def test_a_sqlite_commit_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    """Ingest marks a message processed only after its commit: the commit must survive a power
    failure, so a writer runs WAL with synchronous=FULL (NORMAL may lose the last commits)."""
    with ReportStore(f"sqlite:///{tmp_path / 'reports.sqlite3'}") as store, store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
