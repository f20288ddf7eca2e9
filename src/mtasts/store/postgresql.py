"""The PostgreSQL batch writer: one round trip stores a batch of reports with their roll-ups.

Row-by-row inserts cost one network round trip each (≈ 380 reports/s); SQLAlchemy's batched
``INSERT ... RETURNING`` still needs one per table plus ``BEGIN`` and ``COMMIT``, because the
policy rows wait for the report ids and the failure rows for the policy ids. Here the ids are
taken in advance from the tables' own sequences (a block of them per round trip, kept by the
store), so nothing waits for anything, and the whole batch is *one* statement: data-modifying
CTEs insert the reports (``ON CONFLICT (dedup_key) DO NOTHING``), then only the policies,
failure details and roll-up contributions of the reports that statement really inserted (a
report another writer stored first, even one that commits while we wait on its key, adds
nothing), and merge the roll-ups by the rules of :mod:`mtasts.store.rollups`. Each table's rows
travel as one JSON parameter, so the statement text is constant: psycopg prepares it once and
the server plans it once. The roll-ups are not sent as rows of their own where the server has
the numbers already: the day totals are summed from the policies' rows, the sender and
reporter-day totals from one row per report and policy domain, the failure values (per day and
in total) from one row per report and value; sender and day come from the inserted reports.

A statement is atomic by itself, so a call whose reports fit one batch runs in autocommit mode:
no ``BEGIN``, no ``COMMIT``, one round trip in all (plus the disk flush of the commit, which is
then what limits one-transaction-per-message ingest: see ``add_messages``), and another for
ids every few batches. A bigger call runs its batches inside one explicit transaction.

Not chosen, measured (issue 12): psycopg's pipeline mode (``BEGIN``, statement and ``COMMIT``
in one flush: slower on loopback, 2,100 against 3,500 bare one-row transactions/s); ``COPY``
into a temporary staging table (per failure row: 1.7 µs of client and 4.7 µs of server CPU
binary, 2.5 and 3.7 as text, against 0.7 and 1.4 for its JSON row, and more round trips); one
binary array per column (psycopg adapts 2.1 µs per failure row, orjson writes it in 0.05).
What remains on the server is the rows' own work (a profile of the backend: index inserts and
the ``ON CONFLICT`` checks about a third, the foreign-key checks of the policy and failure rows
about 14%, parsing the JSON about 7%).

Reports are inserted in dedup-key order and roll-up keys merged in key order (byte order:
``COLLATE "C"`` sorts faster), so two writers storing overlapping batches wait on each other
instead of deadlocking; should PostgreSQL still break a deadlock, the store runs the rolled-back
transaction again.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import psycopg
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from mtasts.core.tlsrpt_report import TlsRptReport
from mtasts.store.rollups import (
    EPOCH,
    KINDS,
    MAX_COUNT,
    SEEN_SHIFT,
    counted_twice,
    detail_values,
    report_domains,
    tlsa_domains,
)

__all__ = ["BATCH", "PostgresWriter"]

BATCH: Final = 1000  # reports per statement: bounds the statement's memory, not a server limit
_ID_BLOCK: Final = 4096  # ids taken from a sequence per round trip (at least): a round trip every few groups of 200

Entry = tuple[str, TlsRptReport, str]  # dedup key, report, source


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


_MAX: Final = str(MAX_COUNT)


def _add(column: str) -> str:
    """The saturating sum of a stored count and a new one (numeric: no bigint overflow)."""
    return f"{column} = LEAST(t.{column}::numeric + excluded.{column}, {_MAX})"


def _columns(types: str) -> str:
    """``(e->>0)::type0, (e->>1)::type1, ...`` for an element ``e`` of a JSON array of rows."""
    return ", ".join(f"(e->>{index})::{kind}" for index, kind in enumerate(types.split()))


def _rows(name: str, types: str) -> str:
    """The rows of the JSON array given as parameter ``name``, their columns of ``types``."""
    return f"SELECT {_columns(types)} FROM jsonb_array_elements(%({name})s::jsonb) AS e"  # noqa: S608 (constants)


def _compact(sql: str) -> str:
    """``sql`` on one line: psycopg caches the conversion of a query text up to 4 KiB only. (With
    the reporter-day and failure-day inserts the statement is about 6.6 KiB: converting it again
    costs some 30 µs per statement of up to 1,000 reports, measured, so it was not split for
    the cache.)"""
    return " ".join(sql.split())


# The one statement. Each table's rows come as one JSON array of arrays (orjson writes it in
# microseconds; psycopg would adapt one array per column far more slowly), except the raw
# JSON of the reports: one binary ``bytea[]`` beside the reports' rows, zipped with them by
# ``ROWS FROM`` (as hex inside the JSON it cost the server two fifths more to insert them:
# the hex text parsed into the document, then decoded). What the reports' rows hold already
# is not sent again: the roll-ups take each report's sender and day from ``r`` (which returns
# them for the reports it inserted: joining it is also what keeps out those already stored),
# the day totals are summed from the policies' rows (``pr``, with a flag: counted twice), and
# the sender and reporter-day totals from one row per report and policy domain (``dm``).
# LEAST/GREATEST skip NULLs, which is the rule for first and last days; sums are taken as
# numeric and capped, like the saturating merge of the other stores.
_STATEMENT: Final = _compact(f"""
WITH r AS (
    INSERT INTO tlsrpt_report (id, dedup_key, organization_name, report_id, contact_info, start_at, end_at,
                               day, digest, source, raw, received_at)
    SELECT n.*, e.raw, %(received)s::timestamp
    FROM ROWS FROM (jsonb_array_elements(%(reports)s::jsonb), unnest(%(raws)b::bytea[])) AS e(e, raw),
         LATERAL (SELECT {_columns("bigint text text text text timestamp timestamp date text text")})
         AS n(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9)
    ORDER BY n.c1 COLLATE "C"
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, organization_name AS org, day
), pr (c0, c1, c2, c3, c4, c5, c6, c7, c8, twice) AS (
    {_rows("policies", "bigint bigint int text text text text bigint bigint boolean")}
), p AS (
    INSERT INTO tlsrpt_policy (id, report_pk, position, policy_type, policy_domain, policy_string, mx_host,
                               total_successful, total_failure)
    SELECT x.c0, x.c1, x.c2, x.c3, x.c4, x.c5, x.c6, x.c7, x.c8 FROM pr AS x
    WHERE x.c1 IN (SELECT id FROM r)
    RETURNING id
), f AS (
    INSERT INTO tlsrpt_failure (id, policy_pk, position, result_type, failed_session_count, sending_mta_ip,
                                receiving_mx_hostname, receiving_mx_helo, receiving_ip, additional_information,
                                failure_reason_code)
    SELECT * FROM ({_rows("failures", "bigint bigint int text bigint text text text text text text")})
         AS x(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10)
    WHERE x.c1 IN (SELECT id FROM p)
), d AS (
    INSERT INTO tlsrpt_day_total AS t (policy_domain, day, policy_type, successful, failed, twice_successful,
                                       twice_failed)
    SELECT coalesce(x.c4, ''), r.day, x.c3, LEAST(sum(x.c7), {_MAX}), LEAST(sum(x.c8), {_MAX}),
        LEAST(sum(CASE WHEN x.twice THEN x.c7 ELSE 0 END), {_MAX}),
        LEAST(sum(CASE WHEN x.twice THEN x.c8 ELSE 0 END), {_MAX})
    FROM pr AS x JOIN r ON r.id = x.c1
    GROUP BY 1, 2, 3 ORDER BY coalesce(x.c4, '') COLLATE "C", r.day, x.c3 COLLATE "C"
    ON CONFLICT (policy_domain, day, policy_type) DO UPDATE SET {_add("successful")}, {_add("failed")},
        {_add("twice_successful")}, {_add("twice_failed")}
), dm (domain, org, day, twice_ok, twice_bad, ok, bad) AS (
    SELECT x.c1, r.org, r.day, x.c2, x.c3, x.c4, x.c5
    FROM ({_rows("domains", "bigint text bigint bigint bigint bigint")}) AS x(c0, c1, c2, c3, c4, c5)
    JOIN r ON r.id = x.c0
), s AS (
    INSERT INTO tlsrpt_sender_total AS t (policy_domain, organization_name, successful, failed, first_failed,
                                          last_failed, twice_successful, twice_failed, reports)
    SELECT x.domain, x.org, LEAST(sum(x.ok), {_MAX}), LEAST(sum(x.bad), {_MAX}),
        min(CASE WHEN x.bad > 0 THEN x.day END), max(CASE WHEN x.bad > 0 THEN x.day END),
        LEAST(sum(x.twice_ok), {_MAX}), LEAST(sum(x.twice_bad), {_MAX}), count(*)
    FROM dm AS x
    GROUP BY 1, 2 ORDER BY x.domain COLLATE "C", x.org COLLATE "C"
    ON CONFLICT (policy_domain, organization_name) DO UPDATE SET {_add("successful")}, {_add("failed")},
        first_failed = LEAST(t.first_failed, excluded.first_failed),
        last_failed = GREATEST(t.last_failed, excluded.last_failed),
        {_add("twice_successful")}, {_add("twice_failed")}, {_add("reports")}
), g AS (
    INSERT INTO tlsrpt_reporter_day AS t (policy_domain, organization_name, day, reports, twice_successful,
                                          twice_failed, successful, failed)
    SELECT x.domain, x.org, x.day, count(*), LEAST(sum(x.twice_ok), {_MAX}), LEAST(sum(x.twice_bad), {_MAX}),
        LEAST(sum(x.ok), {_MAX}), LEAST(sum(x.bad), {_MAX})
    FROM dm AS x
    GROUP BY 1, 2, 3 ORDER BY x.domain COLLATE "C", x.org COLLATE "C", x.day
    ON CONFLICT (policy_domain, organization_name, day) DO UPDATE SET {_add("reports")},
        {_add("twice_successful")}, {_add("twice_failed")}, {_add("successful")}, {_add("failed")}
), fv (domain, org, kind, value, failed, day, seen) AS (
    SELECT x.c1, r.org, x.c2, x.c3, x.c4, r.day, x.c5
    FROM ({_rows("values", "bigint text text text bigint bigint")}) AS x(c0, c1, c2, c3, c4, c5)
    JOIN r ON r.id = x.c0
), w AS (
    INSERT INTO tlsrpt_failure_day AS t (policy_domain, organization_name, kind, value, day, failed, first_seen)
    SELECT x.domain, x.org, x.kind, x.value, x.day, LEAST(sum(x.failed), {_MAX}), min(x.seen)
    FROM fv AS x
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY x.domain COLLATE "C", x.org COLLATE "C", x.kind COLLATE "C", x.value COLLATE "C", x.day
    ON CONFLICT (policy_domain, organization_name, kind, value, day) DO UPDATE SET {_add("failed")},
        first_seen = LEAST(t.first_seen, excluded.first_seen)
), v AS (
    INSERT INTO tlsrpt_failure_total AS t (policy_domain, organization_name, kind, value, failed, first_day,
                                           last_day, first_seen)
    SELECT x.domain, x.org, x.kind, x.value, LEAST(sum(x.failed), {_MAX}), min(x.day), max(x.day), min(x.seen)
    FROM fv AS x
    GROUP BY 1, 2, 3, 4 ORDER BY x.domain COLLATE "C", x.org COLLATE "C", x.kind COLLATE "C", x.value COLLATE "C"
    ON CONFLICT (policy_domain, organization_name, kind, value) DO UPDATE SET {_add("failed")},
        first_day = LEAST(t.first_day, excluded.first_day),
        last_day = GREATEST(t.last_day, excluded.last_day),
        first_seen = LEAST(t.first_seen, excluded.first_seen)
)
SELECT id FROM r
""")  # noqa: S608 (nothing interpolated but constants: type names, parameter names, MAX_COUNT)

_SEQUENCES: Final = (
    "SELECT pg_get_serial_sequence('tlsrpt_report', 'id'), pg_get_serial_sequence('tlsrpt_policy', 'id'), "
    "pg_get_serial_sequence('tlsrpt_failure', 'id')"
)


def _next_ids(sequences: Sequence[str]) -> sql.Composed:
    """The query taking ids from the three sequences, named as constants (resolving a name per
    id, ``pg_get_serial_sequence`` in each row, made taking ids cost more than storing them):
    one row of three arrays, which the driver reads several times faster than a row per id."""
    parts = [
        sql.SQL("ARRAY(SELECT nextval({sequence}::regclass) FROM generate_series(1, {count}))").format(
            sequence=sql.Literal(sequence), count=sql.Placeholder(f"n{table}")
        )
        for table, sequence in enumerate(sequences)
    ]
    return sql.SQL("SELECT ") + sql.SQL(", ").join(parts)


class PostgresWriter:
    """The batch writer of one store: it keeps the ids taken in advance (thread-safe: ``report
    serve`` stores from several worker threads at once). Ids never used leave gaps, as a
    rolled-back insert does; ids are unique, which is all the schema asks of them. They follow
    the order of this store's writes; two stores writing at once (two processes) take blocks
    in turn, so "the order stored" that reads sort by holds for each writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: tuple[list[int], list[int], list[int]] = ([], [], [])
        self._next_ids: sql.Composed | None = None  # once the sequences' names are known

    def store(self, engine: Engine, entries: Iterable[Entry], received: datetime) -> set[str]:
        """Store ``entries`` (none repeating a key) in one transaction; the keys stored now.

        Raises SQLAlchemy's exceptions (``DBAPIError`` and its kinds, as if the statement had
        gone through SQLAlchemy); then nothing of the call is kept.
        """
        received = _naive_utc(received)
        iterator = iter(entries)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            raw: psycopg.Connection[Any] = connection.connection.dbapi_connection  # type: ignore[assignment]
            try:
                first = list(itertools.islice(iterator, BATCH))
                if len(first) < BATCH:  # the whole call is one statement: atomic on its own
                    return self._execute(raw, first, received)
                stored: set[str] = set()
                with raw.transaction():
                    batch = first
                    while batch:
                        stored |= self._execute(raw, batch, received)
                        batch = list(itertools.islice(iterator, BATCH))
                return stored
            except psycopg.Error as exc:
                if raw.broken or raw.closed:
                    connection.invalidate(exc)  # not back into the pool
                raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc

    def _take_ids(self, raw: psycopg.Connection[Any], wanted: tuple[int, int, int]) -> tuple[list[int], ...]:
        with self._lock:
            missing = [max(0, need - len(have)) for need, have in zip(wanted, self._ids, strict=True)]
            if any(missing):
                if self._next_ids is None:
                    names = raw.execute(_SEQUENCES).fetchone()
                    if names is None or None in names:
                        raise RuntimeError("the report tables have no id sequences: is the schema mtasts'?")
                    self._next_ids = _next_ids([str(name) for name in names])
                params = {f"n{table}": max(gap, _ID_BLOCK) if gap else 0 for table, gap in enumerate(missing)}
                row = raw.execute(self._next_ids, params).fetchone()
                if row is None:  # pragma: no cover (a SELECT without FROM returns one row)
                    raise RuntimeError("taking ids from the sequences returned nothing")
                for table, values in enumerate(row):
                    self._ids[table].extend(values)
            taken = []
            for need, have in zip(wanted, self._ids, strict=True):
                taken.append(have[:need])
                del have[:need]
            return tuple(taken)

    def _execute(self, raw: psycopg.Connection[Any], batch: Sequence[Entry], received: datetime) -> set[str]:
        if not batch:
            return set()
        policies = sum(len(report.policies) for _, report, _ in batch)
        failures = sum(len(policy.failure_details) for _, report, _ in batch for policy in report.policies)
        report_ids, policy_ids, failure_ids = self._take_ids(raw, (len(batch), policies, failures))
        params = _parameters(batch, report_ids, iter(policy_ids), failure_ids)
        params["received"] = received
        inserted = {row[0] for row in raw.execute(_STATEMENT, params).fetchall()}
        return {key for (key, _, _), pk in zip(batch, report_ids, strict=True) if pk in inserted}


def _parameters(
    batch: Sequence[Entry], report_ids: Sequence[int], policy_ids: Iterator[int], failure_ids: Sequence[int]
) -> dict[str, Any]:
    """The statement's JSON documents for ``batch``, with the ids taken for it."""
    reports: list[tuple[Any, ...]] = []
    policies: list[tuple[Any, ...]] = []
    failures: list[tuple[Any, ...]] = []
    domains: list[tuple[Any, ...]] = []
    values: list[tuple[Any, ...]] = []
    dumps = orjson.dumps
    failure_index = 0
    for (key, report, source), report_pk in zip(batch, report_ids, strict=True):
        day = report.day
        reports.append(
            (
                report_pk,
                key,
                report.organization_name,
                report.report_id,
                report.contact_info,
                _naive_utc(report.start),
                _naive_utc(report.end),
                day,
                report.digest,
                source,
            )
        )
        # what this report adds to the roll-ups: the statement sums the rows of the reports it
        # really inserted (and summing there costs less than merging here)
        seen_day = (day - EPOCH).days << SEEN_SHIFT
        tlsa = tlsa_domains(report)
        found: dict[tuple[str, str, str], list[int]] = {}  # (domain, kind, value) -> [failed, first seen]
        for position, policy in enumerate(report.policies):
            policy_pk = next(policy_ids)
            domain = policy.policy_domain
            policies.append(
                (
                    policy_pk,
                    report_pk,
                    position,
                    policy.policy_type,  # orjson writes an enum as its value
                    domain,
                    dumps(policy.policy_string).decode(),
                    dumps(policy.mx_host).decode(),
                    policy.total_successful,
                    policy.total_failure,
                    counted_twice(policy, tlsa),
                )
            )
            domain = domain or ""
            for index, detail in enumerate(policy.failure_details):
                failure_pk = failure_ids[failure_index]
                failure_index += 1
                count = detail.failed_session_count
                failures.append(
                    (
                        failure_pk,
                        policy_pk,
                        index,
                        str(detail.result_type),
                        count,
                        detail.sending_mta_ip,
                        detail.receiving_mx_hostname,
                        detail.receiving_mx_helo,
                        detail.receiving_ip,
                        detail.additional_information,
                        detail.failure_reason_code,
                    )
                )
                seen = seen_day + failure_pk
                for kind, value in zip(KINDS, detail_values(detail), strict=True):
                    if value is None:
                        continue
                    known = found.get((domain, kind, value))
                    if known is None:
                        found[domain, kind, value] = [count, seen]
                    else:
                        total = known[0] + count
                        known[0] = total if total < MAX_COUNT else MAX_COUNT
                        if seen < known[1]:  # noqa: PLR1730 (a comparison costs less than min())
                            known[1] = seen
        # one row per policy domain of the report (its reporter-day and sender rows: the same
        # sums), and one per value and report: the statement parses and sums a sixth of the
        # rows it did with one per detail and value
        domains += [
            (report_pk, d, twice_ok, twice_bad, ok, bad)
            for d, (_, twice_ok, twice_bad, ok, bad) in report_domains(report).items()
        ]
        values += [(report_pk, d, k, v, n, seen) for (d, k, v), (n, seen) in found.items()]
    documents = {"reports": reports, "policies": policies, "failures": failures, "domains": domains, "values": values}
    params: dict[str, Any] = {name: dumps(rows).decode() for name, rows in documents.items()}
    params["raws"] = [report.raw for _, report, _ in batch]
    return params
