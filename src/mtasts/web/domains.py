"""The domain page (``/domains/{domain}``) and its JSON (``/api/domains/{domain}``).

One page per domain with what its owner asks in one place: the live status (a link that runs
the inspector on it now), where its roll-out stands (``mtasts publish status``: the stage, the
body served, the guard values and what comes next, from the published history in the report
store and the publish configuration), and the TLS-report trend joined with the policy that was
live on each day (its id, mode and MX), so that a change and its effect line up: the chart
marks each day a new policy began, and the table says which policy each day's sessions met.

Below them, what ``mtasts monitor`` saw, from its history in the same database
(:class:`~mtasts.monitor.history.SqlMonitorHistory`): the newest scheduled checks (status,
conclusive or not, the record's id and the policy's mode) and the events they opened and
cleared, open ones first. The publish actions (apply, advance to enforce, retire) and their
audit trail are :mod:`mtasts.web.actions`; this page links to them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mtasts.core.policy import Mode, parse_policy
from mtasts.core.problems import ParseError
from mtasts.publish.history import Served
from mtasts.publish.rollout import Stage, domain_status, evidence_from_rows, evidence_window, stage_of
from mtasts.report.analysis import DayPoint, Totals
from mtasts.web import charts
from mtasts.web.i18n import N_, Reason
from mtasts.web.reports import (
    FORMATTING,
    Page,
    Period,
    PeriodError,
    ReportService,
    ReportView,
    daily_labels,
    domain_param,
    error_json,
    parse_period,
)
from mtasts.web.settings import WebSettings

if TYPE_CHECKING:
    from mtasts.monitor.history import EventRecord, RunRecord
    from mtasts.publish.config import Config
    from mtasts.publish.rollout import DomainStatus
    from mtasts.store.interface import ReportStoreProtocol

__all__ = [
    "MONITOR_EVENTS_SHOWN",
    "MONITOR_RUNS_SHOWN",
    "DomainView",
    "MonitorView",
    "TrendRow",
    "config_path",
    "domain_routes",
    "live_policy",
    "policy_markers",
    "trend_rows",
]

MONITOR_RUNS_SHOWN = 50  # the newest checks on the page (the monitor keeps every one)
MONITOR_EVENTS_SHOWN = 100
_DOMAIN_PAGE = N_("Domain page")  # the heading of a domain page that cannot be shown (the name follows)


@dataclass(frozen=True, slots=True)
class TrendRow:
    """One day of reports and the policy live that day (``None``: none in the history)."""

    day: date
    successful: int
    failed: int
    policy: Served | None
    mx: tuple[str, ...]
    changed: bool  # a new policy began this day

    @property
    def rate(self) -> float | None:
        return Totals(self.successful, self.failed).rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "successful": self.successful,
            "failed": self.failed,
            "success_rate": self.rate,
            "policy_id": None if self.policy is None else self.policy.policy_id,
            "mode": None if self.policy is None else self.policy.mode.value,
            "mx": list(self.mx),
            "policy_changed": self.changed,
        }


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def live_policy(history: Sequence[Served], day: date) -> Served | None:
    """The body a sender could fetch at the end of ``day`` (UTC): the last one served at any time
    that day. A report covers a whole day, so a body that began in the afternoon met that day's
    later sessions; the table says the day changed (:attr:`TrendRow.changed`)."""
    begin, end = _start(day), _start(day + timedelta(days=1))
    live = None
    for entry in history:
        if entry.since < end and (entry.until is None or entry.until > begin):
            live = entry
    return live


def _mx(entry: Served | None) -> tuple[str, ...]:
    if entry is None:
        return ()
    try:
        return tuple(parse_policy(entry.body).mx)
    except ParseError:
        return ()


def trend_rows(daily: Sequence[DayPoint], history: Sequence[Served]) -> tuple[TrendRow, ...]:
    """Each reported day with the policy live that day. Pure."""
    began = {entry.since.date() for entry in history}
    rows = []
    for point in daily:
        entry = live_policy(history, point.day)
        rows.append(TrendRow(point.day, point.successful, point.failed, entry, _mx(entry), point.day in began))
    return tuple(rows)


def policy_markers(history: Sequence[Served]) -> tuple[charts.Marker, ...]:
    """One chart marker per body, on the day it began: its id and mode."""
    return tuple(charts.Marker(e.since.date(), f"{e.policy_id} ({e.mode.value})") for e in history)


@dataclass(frozen=True, slots=True)
class MonitorView:
    """What ``mtasts monitor`` kept of the domain: its newest runs and events, newest first
    (at most :data:`MONITOR_RUNS_SHOWN` and :data:`MONITOR_EVENTS_SHOWN`)."""

    runs: tuple[RunRecord, ...] = ()
    events: tuple[EventRecord, ...] = ()

    @property
    def open_events(self) -> tuple[EventRecord, ...]:
        return tuple(e for e in self.events if e.cleared_at is None)

    @property
    def closed_events(self) -> tuple[EventRecord, ...]:
        return tuple(e for e in self.events if e.cleared_at is not None)

    def title(self, event: EventRecord) -> str:
        """The event kind's title, open or cleared (English, from
        :data:`mtasts.monitor.events.EVENT_KINDS`; the page translates it, the JSON keeps it)."""
        from mtasts.monitor.events import EVENT_KINDS  # noqa: PLC0415

        kind = EVENT_KINDS.get(event.code)
        return event.code if kind is None else kind.titled(cleared=event.cleared_at is not None)

    def to_dict(self) -> dict[str, Any]:
        """The ``monitor`` object of the domain JSON (a public contract, in /openapi.json)."""
        return {
            "last_checked_at": self.runs[0].started_at.isoformat() if self.runs else None,
            "open_events": len(self.open_events),
            "runs": [
                {
                    "checked_at": run.started_at.isoformat(),
                    "status": run.snapshot.status if run.conclusive else "unknown",
                    "conclusive": run.conclusive,
                    "inconclusive_reason": run.snapshot.inconclusive_reason,
                    "elapsed_seconds": run.elapsed,
                    "record_id": run.snapshot.record_id,
                    "policy_mode": run.snapshot.policy_mode,
                    "mx": None if run.snapshot.mx is None else list(run.snapshot.mx),
                    "findings": len(run.snapshot.findings),
                }
                for run in self.runs
            ],
            "events": [{**event.to_dict(), "title": self.title(event)} for event in self.events],
        }


def _monitor(store: ReportStoreProtocol, name: str) -> MonitorView | None:
    """The monitor's history of ``name`` (``None``: a store that keeps none, the in-memory one)."""
    from mtasts.monitor.history import SqlMonitorHistory  # noqa: PLC0415
    from mtasts.store.store import ReportStore  # noqa: PLC0415

    if not isinstance(store, ReportStore):
        return None
    history = SqlMonitorHistory(store)  # not entered: the service keeps the store open
    return MonitorView(
        tuple(history.runs(name, limit=MONITOR_RUNS_SHOWN)), tuple(history.events(name, limit=MONITOR_EVENTS_SHOWN))
    )


@dataclass(frozen=True, slots=True)
class DomainView:
    """What the domain page shows."""

    domain: str
    reports: ReportView
    history: tuple[Served, ...]
    status: DomainStatus | None
    trend: tuple[TrendRow, ...]
    notes: tuple[str, ...] = ()  # why a part is missing (no configuration, no history table)
    monitor: MonitorView | None = None  # None: no store that keeps the monitor's history

    def to_dict(self, *, check_url: str, api_check_url: str) -> dict[str, Any]:
        """The JSON of ``/api/domains/{domain}`` (keys are a public contract, in /openapi.json)."""
        return {
            "domain": self.domain,
            "live": {"check_url": check_url, "api_check_url": api_check_url},
            "rollout": None if self.status is None else self.status.to_dict(),
            "history": [entry.to_dict() for entry in self.history],
            "trend": [row.to_dict() for row in self.trend],
            "reports": self.reports.to_dict(),
            "monitor": None if self.monitor is None else self.monitor.to_dict(),
            "notes": list(self.notes),
        }


def config_path(settings: WebSettings) -> tuple[Path | None, str]:
    """The publish configuration's file: ``--publish-config``, else ``mtasts publish``'s own
    when there is one: (path, '') or (None, why not)."""
    from mtasts.publish.config import default_config_path  # noqa: PLC0415

    path = settings.publish_config
    if path is None:
        path = default_config_path()
        if not path.is_file():
            return None, f"no publish configuration at {path} (mtasts web serve --publish-config FILE)"
    return Path(path), ""


def _config_file(settings: WebSettings) -> Path:
    """The publish configuration's file, to name in the next step "add the domain to it": the
    one in use, else where ``mtasts publish`` looks for it."""
    from mtasts.publish.config import default_config_path  # noqa: PLC0415

    path, _ = config_path(settings)
    return default_config_path() if path is None else path


def _config(settings: WebSettings) -> tuple[Config | None, str]:
    """The publish configuration, if there is one: (config, '') or (None, why not)."""
    from mtasts.publish.config import ConfigError  # noqa: PLC0415
    from mtasts.publish.snapshot import read_config  # noqa: PLC0415

    path, why = config_path(settings)
    if path is None:
        return None, why
    try:
        return read_config(path), ""
    except ConfigError as exc:
        return None, f"the publish configuration {path} cannot be used: {exc}"


def _history(store: ReportStoreProtocol, name: str) -> list[Served]:
    from mtasts.publish.history import SqlPublishHistory  # noqa: PLC0415
    from mtasts.store.store import ReportStore  # noqa: PLC0415

    if not isinstance(store, ReportStore):
        return []  # only the SQL stores keep the published history
    return SqlPublishHistory(store).entries(name)


def build_domain_view(service: ReportService, settings: WebSettings, name: str, period: Period) -> DomainView:
    """Everything of the domain page, read from the store (runs in a worker thread)."""
    from mtasts.store.errors import StoreMissing, translate_store_errors  # noqa: PLC0415

    reports = service.view(period, name)
    notes: list[str] = []
    config, why = _config(settings)
    if why:
        notes.append(why)
    entry = None if config is None else config.domain(name)
    try:
        store = service.store()
    except StoreMissing as exc:
        notes.append(exc.message)
        return DomainView(name, reports, (), None, trend_rows(reports.daily, ()), tuple(notes))
    now = service.clock()
    with translate_store_errors(store.url):
        history = _history(store, name)
        evidence = None
        rules = settings.publish_rules
        if stage_of(history) is Stage.TESTING or (entry is not None and entry.mode is Mode.ENFORCE):
            if entry is not None and entry.policy is not None:
                mx: tuple[str, ...] = tuple(entry.policy.mx)
            else:
                mx = _mx(history[-1] if history else None)
            since, until = evidence_window(history, now, rules)
            evidence = evidence_from_rows(
                name,
                mx,
                store.policy_rows(since=since, domain=name),
                store.failure_rows(since=since, domain=name),
                since=since,
                until=until,
            )
        monitor = _monitor(store, name)
    status = domain_status(name, entry, history, now=now, evidence=evidence, rules=rules)
    trend = trend_rows(reports.daily, history)
    return DomainView(name, reports, tuple(history), status, trend, tuple(notes), monitor)


def domain_routes(settings: WebSettings, page: Page, service: ReportService) -> list[BaseRoute]:
    """The domain page's routes (mounted by :func:`mtasts.web.reports.report_routes`)."""
    from mtasts.store.errors import StoreError  # noqa: PLC0415
    from mtasts.web.i18n import COOKIE, choose_language, translations  # noqa: PLC0415

    async def load(request: Request) -> DomainView | tuple[int, str, Reason | str, str | None]:
        """The view, or (status, code, why, the domain when it is one): ``why`` is English for the
        JSON (``str()``), a page says it in its language (the ``reason_text`` filter)."""
        name, why = domain_param(request.path_params["domain"])
        if name is None:
            return 400, "domain-invalid", why, None
        try:
            period = parse_period(request.query_params.get("days"), service.today())
        except PeriodError as exc:
            return 400, "period-invalid", exc.reason, name
        try:
            return await asyncio.to_thread(build_domain_view, service, settings, name, period)
        except StoreError as exc:
            return 503, "store-unavailable", exc.message, name

    def links(request: Request, name: str) -> tuple[str, str]:
        return (
            f"{request.url_for('check').path}?domain={name}",
            f"{request.url_for('api_check').path}?domain={name}",
        )

    async def domain_page(request: Request) -> Response:
        loaded = await load(request)
        if isinstance(loaded, tuple):
            status, _, why, name = loaded
            return page(request, "reports_unavailable.html", status, message=why, heading=_DOMAIN_PAGE, subject=name)
        view = loaded
        tag = choose_language(
            request.query_params.get("lang"),
            request.cookies.get(COOKIE),
            request.headers.get("accept-language"),
            settings.language,
        )
        gettext = translations(tag).gettext
        chart = charts.daily_svg(
            [charts.DayBar(r.day, r.successful, r.failed) for r in view.trend],
            chart_id=f"chart-{view.domain}-trend",
            labels=daily_labels(gettext, gettext("TLS-report sessions per day and policy changes")),
            markers=policy_markers(view.history),
        )
        _, api_check_url = links(request, view.domain)
        from mtasts.web.actions import ACTION_TITLES, domain_audit  # noqa: PLC0415

        actions = {
            kind.value: (
                ACTION_TITLES[kind],
                str(request.url_for("action_page", domain=view.domain, action=kind.value).path),
            )
            for kind in ACTION_TITLES
        }
        days = view.reports.period.days
        suffix = f"?days={days}" if days else ""
        audit = await domain_audit(request, view.domain)  # None: not an admin (or no accounts)
        return page(
            request,
            "domain.html",
            view=view,
            chart=chart,
            api_check_url=api_check_url,
            history_mx=_mx,
            actions=actions,
            audit=audit,
            may_act=audit is not None,  # the actions' links: only for who may carry them out
            config_file=str(_config_file(settings)),
            **FORMATTING,
            reports_url=str(request.url_for("reports").path),
            domain_reports_url=str(request.url_for("report", domain=view.domain).path) + suffix,
            json_url=str(request.url_for("api_domain", domain=view.domain).path) + suffix,
            periods=(7, 30, 90, 365),
            here=request.url.path,
        )

    async def api_domain(request: Request) -> Response:
        loaded = await load(request)
        if isinstance(loaded, tuple):
            return error_json(loaded[0], loaded[1], str(loaded[2]))
        check_url, api_check_url = links(request, loaded.domain)
        body = loaded.to_dict(check_url=check_url, api_check_url=api_check_url)
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/json")

    return [
        Route("/domains/{domain}", domain_page, name="domain_page"),
        Route("/api/domains/{domain}", api_domain, name="api_domain"),
    ]
