"""The TLS-report dashboard (``/reports``, ``/reports/{domain}``) and its JSON and CSV API.

What the stored reports say, as ``mtasts report summary`` computes it (the same analysis,
:mod:`mtasts.report.analysis`, over the store's roll-up), for a period and a domain: sessions
per day (a chart and its table), the success rate, failures by result type, by sending
organisation, by receiving MX and sending IP, the senders to work with, the reporters and their
last report, and each domain's readiness to enforce.

**Sessions counted once**, by the rule of every summary (:func:`mtasts.report.analysis.count_once`,
docs/report.md): when one report lists the same sessions under both a ``tlsa`` and an ``sts``
result for a policy domain (Microsoft does), they count once, by the ``tlsa`` result, in the
totals, per day, per domain, per sending organisation and among the senders to work with; the
sessions by policy type, the failure details and the readiness to enforce stay as reported.
The store keeps what was counted twice at ingest and hands it out with its roll-up.

The pure part (:func:`report_view`) takes a roll-up and the reporters
(:class:`~mtasts.store.interface.Reporter`); :class:`ReportService` reads both from the store,
through :class:`~mtasts.store.interface.ReportStoreProtocol` only, in a worker thread (the store
is synchronous) and keeps the last views until the store changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import orjson
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from mtasts.check.inspect import normalize_domain
from mtasts.core.spreadsheet import safe_row
from mtasts.core.tlsrpt_report import Rollup
from mtasts.report.analysis import (
    NO_DOMAIN,
    DayPoint,
    Readiness,
    SenderIssue,
    Totals,
    failing_senders_rollup,
    overview_rollup,
    overview_sums,
    readiness_rollup,
    readiness_sums,
)
from mtasts.store.rollups import MAX_COUNT
from mtasts.web import charts
from mtasts.web.i18n import N_, Reason
from mtasts.web.settings import WebSettings

if TYPE_CHECKING:
    from mtasts.store.interface import DaySums, Reporter, ReportStoreProtocol

__all__ = [
    "CSV_TABLES",
    "MAX_DAYS",
    "Period",
    "PeriodError",
    "ReportService",
    "ReportView",
    "parse_period",
    "report_routes",
    "report_view",
    "view_csv",
]

MAX_DAYS: Final = 3660
PERIODS: Final = (7, 30, 90, 365)
"""The periods the filter offers (any ``days`` from 1 to :data:`MAX_DAYS` works)."""

_CACHE_SIZE: Final = 32
_MAX_DOMAIN: Final = 300

Page = Callable[..., Response]
"""The app's page renderer: ``page(request, template, status=200, extra_headers=None, **context)``."""


@dataclass(frozen=True, slots=True)
class Period:
    """The days shown: ``days`` up to ``until`` (``None``: everything stored)."""

    days: int | None
    until: date

    @property
    def since(self) -> date | None:
        return None if self.days is None else self.until - timedelta(days=self.days - 1)


_PERIOD_INVALID: Final = N_("days must be a whole number from 1 to %(limit)s, or 'all' (got %(got)s)")


class PeriodError(ValueError):
    """A ``?days=`` that is not a period: ``str()`` is the English reason (the JSON's),
    :attr:`reason` the same as a message of the pages' catalogue (a page's language)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(str(reason))
        self.reason = reason


def parse_period(text: str | None, today: date) -> Period:
    """``?days=N`` (1 to :data:`MAX_DAYS`; empty or ``all``: everything). Raises
    :class:`PeriodError` (a ``ValueError``) with the reason otherwise."""
    value = (text or "").strip().lower()
    if value in ("", "all"):
        return Period(None, today)
    if not value.isdigit() or len(value) > 5 or not 1 <= int(value) <= MAX_DAYS:
        raise PeriodError(Reason(_PERIOD_INVALID, {"limit": MAX_DAYS, "got": repr(value[:20])}))
    return Period(int(value), today)


@dataclass(frozen=True, slots=True)
class DomainRow:
    policy_domain: str | None
    totals: Totals
    readiness: Readiness | None


@dataclass(frozen=True, slots=True)
class ReporterRow:
    organization_name: str
    last_report: date
    days_silent: int
    days_reported: int
    domains: tuple[str, ...]
    totals: Totals


@dataclass(frozen=True, slots=True)
class ReportView:
    """Everything a dashboard page shows for one selection, in the order it shows it."""

    domain: str | None
    period: Period
    totals: Totals
    double_counted: Totals
    daily: tuple[DayPoint, ...]
    domains: tuple[DomainRow, ...]
    by_policy_type: Mapping[str, Totals]
    by_result_type: Mapping[str, int]
    by_organization: Mapping[str, Totals]
    by_receiving_mx: Mapping[str, int]
    by_sending_ip: Mapping[str, int]
    senders: tuple[SenderIssue, ...]
    reporters: tuple[ReporterRow, ...]
    store: str = ""
    missing: str = ""  # why there is no data at all (no database yet), else ''

    @property
    def empty(self) -> bool:
        return not self.daily and not self.senders

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``/api/reports`` (keys are a public contract, described by /openapi.json)."""
        return {
            "domain": self.domain,
            "days": self.period.days,
            "since": _iso(self.period.since),
            "until": self.period.until.isoformat(),
            "store": self.store,
            "missing": self.missing or None,
            "totals": _totals(self.totals),
            "double_counted": _totals(self.double_counted),
            "daily": [{"day": p.day.isoformat(), **_totals(Totals(p.successful, p.failed))} for p in self.daily],
            "domains": [
                {
                    "policy_domain": row.policy_domain,
                    **_totals(row.totals),
                    "readiness": None if row.readiness is None else row.readiness.to_dict(),
                }
                for row in self.domains
            ],
            "by_policy_type": {kind: _totals(t) for kind, t in self.by_policy_type.items()},
            "by_result_type": dict(self.by_result_type),
            "by_organization": {org: _totals(t) for org, t in self.by_organization.items()},
            "by_receiving_mx": dict(self.by_receiving_mx),
            "by_sending_ip": dict(self.by_sending_ip),
            "failing_senders": [s.to_dict() for s in self.senders],
            "reporters": [
                {
                    "organization_name": r.organization_name,
                    "last_report": r.last_report.isoformat(),
                    "days_silent": r.days_silent,
                    "days_reported": r.days_reported,
                    "domains": list(r.domains),
                    **_totals(r.totals),
                }
                for r in self.reporters
            ],
        }


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _totals(totals: Totals) -> dict[str, Any]:
    return {"successful": totals.successful, "failed": totals.failed, "success_rate": totals.rate}


def readiness_window(period: Period) -> tuple[date | None, int]:
    """The end (``None``: each domain's newest day) and the days of the readiness windows of a
    view of ``period``: the period itself, or the 30 days to a domain's newest report."""
    return (period.until if period.days is not None else None), period.days or 30


def _largest(counter: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def report_view(
    rollup: Rollup,
    reporters: Sequence[Reporter],
    *,
    period: Period,
    domain: str | None = None,
    store: str = "",
    sums: DaySums | None = None,
) -> ReportView:
    """The dashboard of ``rollup`` and ``reporters`` (already limited to the period and domain
    by the store), its sessions counted once (as every summary: see the module). ``sums``: the
    day totals as the store summed them (over :func:`readiness_window`'s windows), and then
    ``rollup`` without its day rows (the view of every domain: the same view, see
    :func:`_read`)."""
    if sums is None:
        overview = overview_rollup(rollup)
        until, days = readiness_window(period)
        readiness = readiness_rollup(rollup, until=until, days=days)
    else:
        overview = overview_sums(sums, rollup)
        readiness = readiness_sums(sums)
    verdicts = {v.policy_domain: v for v in readiness}
    rows = [DomainRow(key, totals, verdicts.get(key)) for key, totals in overview.domains.items()]
    result_types, mxs, ips = (
        {name: min(count, MAX_COUNT) for name, count in counts.items()}
        for counts in (overview.by_result_type, overview.by_receiving_mx, overview.by_sending_ip)
    )
    orgs = overview.by_organization
    double = overview.double_counted
    removed = Totals(min(double.successful, MAX_COUNT), min(double.failed, MAX_COUNT))
    per_org: dict[str, list[Reporter]] = {}
    for reporter in reporters:
        per_org.setdefault(reporter.organization_name, []).append(reporter)
    reporter_rows = []
    for org, entries in per_org.items():
        last = max(e.last_report for e in entries)
        reporter_rows.append(
            ReporterRow(
                org,
                last,
                max(0, (period.until - last).days),
                max(e.days_reported for e in entries),
                tuple(sorted(e.policy_domain or NO_DOMAIN for e in entries)),
                orgs.get(org, Totals()),
            )
        )
    reporter_rows.sort(key=lambda r: (-r.days_silent, r.organization_name))
    return ReportView(
        domain=domain,
        period=period,
        totals=Totals(sum(r.totals.successful for r in rows), sum(r.totals.failed for r in rows)),
        double_counted=removed,
        daily=overview.daily,
        domains=tuple(rows),
        by_policy_type=overview.by_policy_type,
        by_result_type=_largest(result_types),
        by_organization=orgs,
        by_receiving_mx=_largest(mxs),
        by_sending_ip=_largest(ips),
        senders=tuple(failing_senders_rollup(rollup)),
        reporters=tuple(reporter_rows),
        store=store,
    )


# --- CSV: one table of a view ---------------------------------------------------------------------


def _rate(totals: Totals) -> str:
    return "" if totals.rate is None else f"{totals.rate:.6f}"


def _csv_daily(view: ReportView) -> Iterator[list[object]]:
    yield ["day", "successful", "failed", "success_rate"]
    for p in view.daily:
        yield [p.day.isoformat(), p.successful, p.failed, _rate(Totals(p.successful, p.failed))]


def _csv_domains(view: ReportView) -> Iterator[list[object]]:
    yield ["policy_domain", "successful", "failed", "success_rate", "readiness", "readiness_explanation"]
    for row in view.domains:
        verdict = row.readiness
        yield [
            row.policy_domain or "",
            row.totals.successful,
            row.totals.failed,
            _rate(row.totals),
            "" if verdict is None else verdict.verdict.value,
            "" if verdict is None else verdict.explanation,
        ]


def _csv_counts(name: str, counts: Callable[[ReportView], Mapping[str, int]]) -> Callable[..., Iterator[list[object]]]:
    def rows(view: ReportView) -> Iterator[list[object]]:
        yield [name, "failed_sessions"]
        for key, count in counts(view).items():
            yield [key, count]

    return rows


def _csv_totals(
    name: str, totals: Callable[[ReportView], Mapping[str, Totals]]
) -> Callable[..., Iterator[list[object]]]:
    def rows(view: ReportView) -> Iterator[list[object]]:
        yield [name, "successful", "failed", "success_rate"]
        for key, value in totals(view).items():
            yield [key, value.successful, value.failed, _rate(value)]

    return rows


def _csv_senders(view: ReportView) -> Iterator[list[object]]:
    yield [
        "policy_domain",
        "organization_name",
        "failed_sessions",
        "successful_sessions",
        "first_failure",
        "last_failure",
        "result_types",
        "sending_ips",
        "receiving_mxs",
        "advice",
    ]
    for s in view.senders:
        yield [
            s.policy_domain or "",
            s.organization_name,
            s.failed_sessions,
            s.successful_sessions,
            s.first_failure.isoformat(),
            s.last_failure.isoformat(),
            " ".join(f"{k}={n}" for k, n in s.result_types.items()),
            " ".join(f"{k}={n}" for k, n in s.sending_ips.items()),
            " ".join(f"{k}={n}" for k, n in s.receiving_mxs.items()),
            s.advice,
        ]


def _csv_reporters(view: ReportView) -> Iterator[list[object]]:
    yield ["organization_name", "last_report", "days_silent", "days_reported", "domains", "successful", "failed"]
    for r in view.reporters:
        yield [
            r.organization_name,
            r.last_report.isoformat(),
            r.days_silent,
            r.days_reported,
            " ".join(r.domains),
            r.totals.successful,
            r.totals.failed,
        ]


CSV_TABLES: Final[Mapping[str, Callable[[ReportView], Iterator[list[object]]]]] = {
    "daily": _csv_daily,
    "domains": _csv_domains,
    "policy-types": _csv_totals("policy_type", lambda v: v.by_policy_type),
    "result-types": _csv_counts("result_type", lambda v: v.by_result_type),
    "organizations": _csv_totals("organization_name", lambda v: v.by_organization),
    "receiving-mx": _csv_counts("receiving_mx", lambda v: v.by_receiving_mx),
    "sending-ips": _csv_counts("sending_ip", lambda v: v.by_sending_ip),
    "senders": _csv_senders,
    "reporters": _csv_reporters,
}
"""The tables a page shows, by the name ``/api/reports.csv?table=`` takes."""


def view_json(view: ReportView) -> bytes:
    """``view.to_dict()`` as UTF-8 JSON: by orjson (a tenth of the time of the standard module on
    a dashboard of a million rows), or by the standard module for what orjson refuses (a sum
    past 2^64, which only sums of saturated counts reach)."""
    document = view.to_dict()
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document, ensure_ascii=False).encode()


def view_csv(view: ReportView, table: str) -> str:
    """One table of ``view`` as CSV (a header line, then the rows)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in CSV_TABLES[table](view):
        writer.writerow(safe_row(row))  # organisation names and reasons: from anyone (see the module)
    return out.getvalue()


@dataclass
class ReportService:
    """The report store of the pages, opened on first use (in a worker thread: the store is
    synchronous) and kept open; the views computed last, until the store holds more reports
    (one ``stamp()`` per request tells; the store only grows).

    ``store_factory`` builds the store (no I/O), or is ``None`` when the app was given no store:
    the pages then say so. ``clock`` says what time it is (aware, UTC): the periods end today,
    and the roll-out guards count days up to now."""

    store_factory: Callable[[], ReportStoreProtocol] | None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _store: ReportStoreProtocol | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _views: dict[tuple[str | None, int | None, date], tuple[int, ReportView]] = field(default_factory=dict)

    @classmethod
    def for_settings(cls, settings: WebSettings) -> ReportService:
        """The service of ``settings.db`` (read only: the pages never create a database)."""
        url = settings.db
        if url is None:
            return cls(None)

        def build() -> ReportStoreProtocol:
            from mtasts.store.store import ReportStore  # noqa: PLC0415

            return ReportStore(url, create=False)

        return cls(build)

    def today(self) -> date:
        return self.clock().astimezone(UTC).date()

    def store(self) -> ReportStoreProtocol:
        """The open store; raises :class:`mtasts.store.errors.StoreError` (no database yet, or
        it cannot be reached) with the sentence to show."""
        from mtasts.store.errors import StoreError, translate_store_errors  # noqa: PLC0415

        if self.store_factory is None:
            raise StoreError("no report store is configured (mtasts web serve --db URL)")
        with self._lock:
            if self._store is None:
                store = self.store_factory()
                with translate_store_errors(store.url):
                    store.open()
                self._store = store
            return self._store

    def view(self, period: Period, domain: str | None) -> ReportView:
        """The dashboard of ``domain`` (``None``: every domain) over ``period``; a store that
        does not exist yet gives an empty view that says so."""
        from mtasts.store.errors import StoreMissing, translate_store_errors  # noqa: PLC0415

        try:
            store = self.store()
        except StoreMissing as exc:
            empty = report_view(Rollup(), (), period=period, domain=domain)
            return _replace_missing(empty, exc.message)
        with translate_store_errors(store.url):
            stamp = store.stamp()
            key = (domain, period.days, period.until)
            known = self._views.get(key)
            if known is not None and known[0] == stamp:
                return known[1]
            with _gc_paused():
                rollup, reporters, sums = _read(store, period, domain)
                view = report_view(rollup, reporters, period=period, domain=domain, store=store.display_url, sums=sums)
                del rollup
        with self._lock:
            self._views[key] = (stamp, view)
            while len(self._views) > _CACHE_SIZE:
                del self._views[next(iter(self._views))]
        return view

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._views.clear()


def _read(
    store: ReportStoreProtocol, period: Period, domain: str | None
) -> tuple[Rollup, Sequence[Reporter], DaySums | None]:
    """The roll-up and the reporters of a view. For every domain, the roll-up without its day
    rows and the day totals summed by the store instead (``dashboard``: a few hundred rows,
    where the day rows are one per domain, day and policy type; the same view: see
    ``tests/store/test_day_sums.py``). For one domain, the reporters on a second connection
    meanwhile, when the store says that this ends sooner (``concurrent_reads``: PostgreSQL,
    whose reads wait on the server, not on Python), else one after the other (SQLite, whose
    reads at once take turns at the GIL for every row, and cost more CPU than one after the
    other)."""
    since = period.since
    if domain is None:
        until, window = readiness_window(period)
        found = store.dashboard(since=since, until=until, window=window)
        return found.rollup, found.reporters, found.sums
    if not getattr(store, "concurrent_reads", False):
        return store.rollup(since=since, domain=domain), store.reporters(since=since, domain=domain), None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtasts-reporters") as pool:
        reporters = pool.submit(store.reporters, since=since, domain=domain)
        return store.rollup(since=since, domain=domain), reporters.result(), None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection while a view is computed, rendered or serialised: a roll-up is tens
    of thousands of small acyclic tuples, a view's JSON as many dicts, and a collection in the
    middle walks them, and the whole heap when it is a full one, for nothing (measured: a third
    of a cold dashboard over 1,000,000 session rows; 70 ms of a cold JSON view). The allocations
    still count: the next collection comes once, afterwards, instead of every 700 of them. The
    previous state afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _replace_missing(view: ReportView, why: str) -> ReportView:
    from dataclasses import replace  # noqa: PLC0415

    return replace(view, missing=why)


# --- the pages -----------------------------------------------------------------------------------

READINESS_TITLES: Final[Mapping[str, str]] = {
    "ready": N_("ready"),
    "almost": N_("almost ready"),
    "not-ready": N_("not ready"),
    "too-few-sessions": N_("too few sessions"),
    "no-policy-seen": N_("no MTA-STS policy seen"),
    "no-data": N_("no data"),
}
READINESS_SYMBOLS: Final[Mapping[str, str]] = {
    "ready": "✓",
    "almost": "!",
    "not-ready": "✗",
    "too-few-sessions": "?",
    "no-policy-seen": "?",
    "no-data": "?",
}
"""Beside each verdict, so that colour is never the only sign."""

STAGE_TITLES: Final[Mapping[str, str]] = {
    "draft": N_("draft (never served)"),
    "testing": N_("testing"),
    "enforce": N_("enforce"),
    "retiring": N_("retiring"),
    "removed": N_("removed"),
}


def pct(rate: float | None) -> str:
    """A success rate as a page shows it: 99.95 %, or — when there were no sessions."""
    if rate is None:
        return "—"
    text = f"{rate * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def num(count: int) -> str:
    return f"{count:,}"


SHOWN_SENDERS: Final = 100
"""How many senders to work with a page lists, the most failed sessions first (the CSV and JSON
list all: over a big store they are thousands, each with dozens of values, a page of megabytes)."""
SHOWN_PER_SENDER: Final = 5
"""How many of a sender's sending IPs and receiving MXs its row lists (the CSV and JSON list all)."""


def first_codes(names: Iterable[str], limit: int = SHOWN_PER_SENDER) -> Markup:
    """The first ``limit`` of ``names`` as ``<code>`` items, and ``+N`` for the rest: a sender
    row stays readable (and the page small: a broken sender has dozens of addresses), without
    a sentence to translate. Built here rather than in a template loop, which costs a few
    microseconds per item on a page of thousands of them."""
    listed = list(names)
    shown = ", ".join(f"<code>{escape(name)}</code>" for name in listed[:limit])
    return Markup(shown + (f" +{len(listed) - limit}" if len(listed) > limit else ""))  # noqa: S704 (escaped above)


FORMATTING: Final = {
    "pct": pct,
    "num": num,
    "readiness_titles": READINESS_TITLES,
    "readiness_symbols": READINESS_SYMBOLS,
    "stage_titles": STAGE_TITLES,
}
"""What every report page's template uses beside its view."""

RESULT_TYPE_TITLES: Final = N_("Failed sessions by result type")
ORGANIZATION_TITLES: Final = N_("Failed sessions by sending organisation")
MX_TITLES: Final = N_("Failed sessions by receiving MX")
IP_TITLES: Final = N_("Failed sessions by sending IP")
_CHART_DESCRIPTION: Final = N_("The same numbers are in the table below the chart.")
UNKNOWN: Final = N_("(unknown)")  # report/analysis.py's name for a failure without its MX or sending IP


def domain_param(text: str) -> tuple[str | None, str]:
    """(the A-label domain, '') or (None, why ``text`` is not one)."""
    if len(text) > _MAX_DOMAIN:
        return None, f"{text[:60]!r}… is too long to be a domain name"
    return normalize_domain(text)


def error_json(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def daily_labels(gettext: Callable[[str], str], title: str) -> charts.DailyLabels:
    return charts.DailyLabels(
        title=title,
        description=gettext(_CHART_DESCRIPTION),
        successful=gettext("Successful sessions"),
        failed=gettext("Failed sessions (hatched)"),
        all_sessions=gettext("All sessions per day"),
        failed_sessions=gettext("Failed sessions per day (own scale)"),
        no_data=gettext("No reports in this period."),
    )


def view_charts(view: ReportView, gettext: Callable[[str], str]) -> dict[str, str]:
    """The SVG charts of a dashboard page, by name."""
    prefix = "chart-" + (view.domain or "all")
    daily = charts.daily_svg(
        [charts.DayBar(p.day, p.successful, p.failed) for p in view.daily],
        chart_id=f"{prefix}-daily",
        labels=daily_labels(gettext, gettext("Sessions per day")),
    )
    found = {"daily": daily}
    for name, title, counts in (
        ("result-types", RESULT_TYPE_TITLES, view.by_result_type),
        ("organizations", ORGANIZATION_TITLES, {k: t.failed for k, t in view.by_organization.items() if t.failed}),
        ("receiving-mx", MX_TITLES, view.by_receiving_mx),
        ("sending-ips", IP_TITLES, view.by_sending_ip),
    ):
        if counts:
            found[name] = charts.breakdown_svg(
                [charts.Bar(gettext(k) if k == UNKNOWN else k or NO_DOMAIN, v) for k, v in counts.items()],
                chart_id=f"{prefix}-{name}",
                title=gettext(title),
                description=gettext(_CHART_DESCRIPTION),
            )
    return found


async def _view(service: ReportService, period: Period, domain: str | None) -> ReportView:
    return await asyncio.to_thread(service.view, period, domain)


def _query(request: Request, **changes: str | None) -> str:
    """The request's query string with ``changes`` (``None`` removes a parameter)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    from urllib.parse import urlencode  # noqa: PLC0415

    return urlencode(params)


def report_routes(settings: WebSettings, page: Page, service: ReportService) -> list[BaseRoute]:
    """The dashboard's routes, for the app's route list (``*report_routes(...)``)."""
    from mtasts.store.errors import StoreError  # noqa: PLC0415

    def period_of(request: Request) -> Period:
        return parse_period(request.query_params.get("days"), service.today())

    def unavailable_page(request: Request, why: str) -> Response:
        return page(request, "reports_unavailable.html", 503, message=why)

    def render(request: Request, view: ReportView) -> Response:
        from mtasts.web.i18n import COOKIE, choose_language, translations  # noqa: PLC0415

        tag = choose_language(
            request.query_params.get("lang"),
            request.cookies.get(COOKIE),
            request.headers.get("accept-language"),
            settings.language,
        )
        gettext = translations(tag).gettext
        here = request.url.path
        base = str(request.url_for("reports").path)
        api = str(request.url_for("api_reports").path)
        csv_base = str(request.url_for("api_reports_csv").path)
        selection = {"days": str(view.period.days) if view.period.days else None}
        csv_query = _query(request, lang=None, domain=view.domain, **selection)
        with _gc_paused():  # thousands of short-lived objects, no cycles: see _gc_paused
            return page(
                request,
                "reports.html",
                view=view,
                charts=view_charts(view, gettext),
                periods=PERIODS,
                here=here,
                reports_url=base,
                json_url=(str(request.url_for("api_report", domain=view.domain).path) if view.domain else api)
                + (f"?days={view.period.days}" if view.period.days else ""),
                csv_url=lambda table: (
                    f"{csv_base}?{csv_query}&table={table}" if csv_query else f"{csv_base}?table={table}"
                ),
                domain_url=lambda name: str(request.url_for("report", domain=name).path),
                domain_page_url=lambda name: str(request.url_for("domain_page", domain=name).path),
                period_query=lambda days: _query(request, lang=None, days=None if days is None else str(days)),
                no_domain=NO_DOMAIN,
                unknown=UNKNOWN,
                first_codes=first_codes,
                shown_senders=SHOWN_SENDERS,
                **FORMATTING,
            )

    async def reports_page(request: Request) -> Response:
        try:
            period = period_of(request)
        except PeriodError as exc:
            return page(request, "reports_unavailable.html", 400, message=exc.reason)
        typed = request.query_params.get("domain", "").strip()
        if typed:
            name, why = domain_param(typed)
            if name is None:
                return page(request, "reports_unavailable.html", 400, message=why)
            target = str(request.url_for("report", domain=name).path)
            query = _query(request, domain=None)
            return RedirectResponse(f"{target}?{query}" if query else target, status_code=303)
        try:
            view = await _view(service, period, None)
        except StoreError as exc:
            return unavailable_page(request, exc.message)
        return render(request, view)

    async def report_page(request: Request) -> Response:
        name, why = domain_param(request.path_params["domain"])
        if name is None:
            return page(request, "reports_unavailable.html", 400, message=why)
        try:
            period = period_of(request)
        except PeriodError as exc:
            return page(request, "reports_unavailable.html", 400, message=exc.reason, subject=name)
        try:
            view = await _view(service, period, name)
        except StoreError as exc:
            return unavailable_page(request, exc.message)
        return render(request, view)

    async def api_json(request: Request, domain_text: str | None) -> Response:
        name = None
        if domain_text:
            name, why = domain_param(domain_text)
            if name is None:
                return error_json(400, "domain-invalid", why)
        try:
            period = period_of(request)
        except ValueError as exc:
            return error_json(400, "period-invalid", str(exc))
        try:
            view = await _view(service, period, name)
        except StoreError as exc:
            return error_json(503, "store-unavailable", exc.message)
        with _gc_paused():  # see _gc_paused
            body = view_json(view)
        return Response(body, media_type="application/json")

    async def api_reports(request: Request) -> Response:
        return await api_json(request, request.query_params.get("domain", "").strip() or None)

    async def api_report(request: Request) -> Response:
        return await api_json(request, request.path_params["domain"])

    async def api_reports_csv(request: Request) -> Response:
        table = request.query_params.get("table", "")
        if table not in CSV_TABLES:
            return error_json(400, "table-invalid", f"table must be one of {', '.join(CSV_TABLES)}")
        typed = request.query_params.get("domain", "").strip()
        name = None
        if typed:
            name, why = domain_param(typed)
            if name is None:
                return error_json(400, "domain-invalid", why)
        try:
            period = period_of(request)
        except ValueError as exc:
            return error_json(400, "period-invalid", str(exc))
        try:
            view = await _view(service, period, name)
        except StoreError as exc:
            return error_json(503, "store-unavailable", exc.message)
        filename = f"tlsrpt-{name or 'all'}-{table}.csv"
        return Response(
            view_csv(view, table),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    from mtasts.web.domains import domain_routes  # noqa: PLC0415 (it builds on this module)
    from mtasts.web.openapi import openapi_routes  # noqa: PLC0415

    return [
        *domain_routes(settings, page, service),
        *openapi_routes(),
        Route("/reports", reports_page, name="reports"),
        Route("/reports/{domain}", report_page, name="report"),
        Route("/api/reports", api_reports, name="api_reports"),
        Route("/api/reports.csv", api_reports_csv, name="api_reports_csv"),
        Route("/api/reports/{domain}", api_report, name="api_report"),
    ]
