"""The inspector's pages and their JSON API, as one mountable Starlette app.

Routes (relative to where the app is mounted):

- ``GET /``: the form.
- ``GET /check?domain=D``: starts (or joins) the check of D and sends the browser to its
  permanent link, ``/result/<id>`` (303); an invalid name is the form again with the reason.
- ``GET /result/<id>``: while the check runs, a progress page that refreshes itself (a
  ``<noscript>`` meta refresh without JavaScript; with it, ``progress.js`` follows the
  server-sent events); then the result: every finding with its meaning and fix, the sender's
  verdict per MX, enforce readiness, MTA-STS and TLS reporting in separate sections.
- ``GET /check/events?id=ID`` (or ``?domain=D``, which starts the check): server-sent events,
  ``progress`` every half second and one ``done`` with the result's URL.
- ``GET /api/check?domain=D``: waits for the check and answers the JSON object ``mtasts check
  --json`` prints for D (one element of its list); ``Content-Location`` is the result page.
- ``GET /api/result/<id>``: the same object, or 202 ``{"state": ...}`` while it runs.
- ``/static/...``: the stylesheet and script, from the package: no page loads anything from
  elsewhere (the Content-Security-Policy says so to the browser too).

Errors of the API are ``{"error": {"code", "message"}}``, as the report endpoint's. Too many
checks (public mode) are 429 with ``Retry-After``; a full waiting line is 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mtasts.check.inspect import normalize_domain
from mtasts.i18n import Translator
from mtasts.i18n import translator as findings_translator
from mtasts.web.actions import action_routes, translate_list
from mtasts.web.auth import Auth, AuthMiddleware, auth_routes, csrf_token_of, identity_of
from mtasts.web.i18n import COOKIE, LANGUAGES, N_, Reason, choose_language, translations
from mtasts.web.jobs import Busy, CheckService, Job, JobState, Limited
from mtasts.web.reports import ReportService, report_routes
from mtasts.web.settings import WebSettings
from mtasts.web.view import PROBE_TITLES, SEVERITY_TITLES, STATUS_TITLES, result_view

__all__ = ["SECURITY_HEADERS", "create_app"]

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
"""On every response: the browser itself refuses any resource from elsewhere, framing and
inline script (a defence in depth behind the templates' escaping)."""

_EVENT_SECONDS = 0.5
_COOKIE_SECONDS = 365 * 24 * 3600
_MAX_DOMAIN = 300  # longer input is not a domain name (253 octets at most): said without parsing it


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _list_text(translator: Translator, text: str) -> str:
    return translate_list(translator, text).text


def _reason_text(gettext: Callable[[str], str], translator: Translator, reason: Reason | str) -> str:
    """Why a page cannot be shown, in the page's language: a :class:`Reason` of the pages'
    catalogue (a bad ``?days=``, an unknown action), or a sentence of the findings catalogue
    (why a name is not a domain, why the store cannot be used)."""
    return reason.text(gettext) if isinstance(reason, Reason) else translator.text(reason)


def _environments() -> dict[str, Environment]:
    """One template environment per language, each with its catalogue installed (new-style
    gettext: translations are escaped and formatted like any other value)."""
    environments = {}
    for tag in LANGUAGES:
        env = Environment(
            loader=PackageLoader("mtasts.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.install_gettext_translations(translations(tag), newstyle=True)  # type: ignore[attr-defined]
        env.filters["finding_text"] = findings_translator(tag).text  # messages, fixes, verdicts: mtasts.i18n
        env.filters["finding_list"] = partial(_list_text, findings_translator(tag))  # "a; b": the audit trail
        env.filters["reason_text"] = partial(_reason_text, translations(tag).gettext, findings_translator(tag))
        environments[tag] = env
    return environments


def create_app(
    settings: WebSettings, *, clock: Callable[[], float] | None = None, auth: Auth | None = None
) -> Starlette:
    """The inspector app. Mount it anywhere (``Mount("/inspect", create_app(...))``): links
    follow the mount point. ``app.state.checks`` is its :class:`CheckService`; the app's
    lifespan closes it (a program that mounts the app closes it itself)."""
    checks = CheckService(settings) if clock is None else CheckService(settings, clock=clock)
    reports = ReportService.for_settings(settings)  # the report store of the dashboard and domain pages
    environments = _environments()

    def language(request: Request) -> str:
        return choose_language(
            request.query_params.get("lang"),
            request.cookies.get(COOKIE),
            request.headers.get("accept-language"),
            settings.language,
        )

    def path(request: Request, name: str, **params: Any) -> str:
        return str(request.url_for(name, **params).path)

    def remember_language(request: Request, response: Response) -> Response:
        asked = request.query_params.get("lang", "").lower()
        if asked in LANGUAGES:
            response.set_cookie(
                COOKIE, asked, max_age=_COOKIE_SECONDS, path=request.scope.get("root_path") or "/", samesite="lax"
            )
        return response

    def reports_open(request: Request) -> bool:
        """Whether this visitor may open the report and domain pages, so that the header and the
        result page link to them: signed in, or every page open (``--no-login``); never for an
        anonymous visitor of a public inspector, who would only meet the login form."""
        if settings.db is None:
            return False
        return identity_of(request) is not None or (auth is None and not settings.public)

    def page(
        request: Request, template: str, status: int = 200, extra_headers: dict[str, str] | None = None, **context: Any
    ) -> Response:
        tag = language(request)
        switch = {
            other: f"{request.url.path}?{request.url.include_query_params(lang=other).query}" for other in LANGUAGES
        }
        html = (
            environments[tag]
            .get_template(template)
            .render(
                lang=tag,
                languages=LANGUAGES,
                switch=switch,
                home=path(request, "index"),
                check_url=path(request, "check"),
                static=lambda name: path(request, "static", path=name),
                public=settings.public,
                severity_titles={k.value: v for k, v in SEVERITY_TITLES.items()},
                status_titles=STATUS_TITLES,
                csrf_token=csrf_token_of(request),
                user=identity_of(request),
                logout_url=path(request, "logout") if auth is not None else "",
                reports_nav=path(request, "reports") if reports_open(request) else "",
                **context,
            )
        )
        headers = {"content-language": tag, "vary": "accept-language, cookie", **(extra_headers or {})}
        return remember_language(request, HTMLResponse(html, status_code=status, headers=headers))

    def client(request: Request) -> str:
        return request.client.host if request.client is not None else "unknown"

    def domain_of(request: Request) -> tuple[str | None, str, str]:
        """(normalised domain or None, what was typed, why it is not a domain)."""
        typed = request.query_params.get("domain", "").strip()
        if not typed:
            return None, typed, "empty"
        if len(typed) > _MAX_DOMAIN:
            return None, typed[:_MAX_DOMAIN], f"{typed[:60]!r}… is too long to be a domain name"
        name, why = normalize_domain(typed)
        return name, typed, why

    def refusal(request: Request, outcome: Limited | Busy, typed: str) -> Response:
        status = 429 if isinstance(outcome, Limited) else 503
        headers = {"retry-after": str(outcome.retry_after)}
        return page(
            request,
            "index.html",
            status,
            typed=typed,
            error=None,
            empty=False,
            limited=isinstance(outcome, Limited),
            busy=isinstance(outcome, Busy),
            retry_after=outcome.retry_after,
            extra_headers=headers,
        )

    async def index(request: Request) -> Response:
        return page(request, "index.html", typed="", error=None, empty=False, limited=False, busy=False, retry_after=0)

    async def check(request: Request) -> Response:
        name, typed, why = domain_of(request)
        if name is None:
            error = None if why == "empty" else why
            return page(
                request, "index.html", 400, typed=typed, error=error, empty=why == "empty", limited=False, busy=False,
                retry_after=0,
            )  # fmt: skip
        outcome = checks.submit(name, client(request))
        if not isinstance(outcome, Job):
            return refusal(request, outcome, typed)
        response = RedirectResponse(path(request, "result", job_id=outcome.id), status_code=303)
        return remember_language(request, response)

    async def result(request: Request) -> Response:
        job = checks.get(request.path_params["job_id"])
        if job is None:
            return page(request, "gone.html", 404, keep_hours=settings.keep_seconds / 3600)
        if job.report is None:
            return page(
                request,
                "pending.html",
                job=job,
                elapsed=job.elapsed(checks.now()),
                events_url=f"{path(request, 'events')}?id={job.id}",
            )
        view = result_view(job.report)
        return page(
            request,
            "result.html",
            view=view,
            permalink=str(request.url_for("result", job_id=job.id)),
            json_url=path(request, "api_result", job_id=job.id),
            again_url=f"{path(request, 'check')}?domain={view.domain}",
            domain_page_url=path(request, "domain_page", domain=view.domain) if reports_open(request) else "",
            reuse_minutes=settings.reuse_seconds / 60,
            probe_titles=PROBE_TITLES,
        )

    async def events(request: Request) -> Response:
        job_id = request.query_params.get("id")
        if job_id is not None:
            job = checks.get(job_id)
            if job is None:
                return _error(404, "result-unknown", "no such check (results are kept in memory for a while only)")
        else:
            name, _, why = domain_of(request)
            if name is None:
                return _error(400, "domain-invalid", why if why != "empty" else "give a domain: ?domain=example.com")
            outcome = checks.submit(name, client(request))
            if not isinstance(outcome, Job):
                return _refused(outcome)
            job = outcome
        gettext = translations(language(request)).gettext
        done_url = path(request, "result", job_id=job.id)

        async def stream() -> AsyncIterator[str]:
            while True:
                if job.state is JobState.DONE:
                    yield _event("done", {"url": done_url, "id": job.id})
                    return
                yield _event("progress", _progress(job, checks.now(), gettext))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(job.done.wait(), _EVENT_SECONDS)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"}
        )

    async def api_check(request: Request) -> Response:
        name, _, why = domain_of(request)
        if name is None:
            return _error(400, "domain-invalid", why if why != "empty" else "give a domain: ?domain=example.com")
        outcome = checks.submit(name, client(request))
        if not isinstance(outcome, Job):
            return _refused(outcome)
        await outcome.done.wait()
        return _report_json(request, outcome)

    async def api_result(request: Request) -> Response:
        job = checks.get(request.path_params["job_id"])
        if job is None:
            return _error(404, "result-unknown", "no such check (results are kept in memory for a while only)")
        if job.report is None:
            return JSONResponse({"id": job.id, "domain": job.domain, "state": job.state.value}, status_code=202)
        return _report_json(request, job)

    def _report_json(request: Request, job: Job) -> Response:
        assert job.report is not None
        body = json.dumps(job.report.to_dict(), ensure_ascii=False).encode()
        location = path(request, "result", job_id=job.id)
        return Response(body, media_type="application/json", headers={"content-location": location})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await checks.close()
            reports.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        """An address no route answers: the API's error shape under ``/api/``, else a page in the
        reader's language with the way back (not a bare "Not Found")."""
        root = request.scope.get("root_path", "")
        relative = request.url.path[len(root) :] if root and request.url.path.startswith(root) else request.url.path
        if relative.startswith("/api/"):
            return _error(404, "not-found", "no such API route: /openapi.json lists them")
        return page(request, "not_found.html", 404)

    actions, action_service = action_routes(settings, page, reports, auth)  # publish actions: mtasts.web.actions
    routes = [
        Route("/", index, name="index"),
        Route("/check", check, name="check"),
        Route("/check/events", events, name="events"),
        Route("/result/{job_id}", result, name="result"),
        Route("/api/check", api_check, name="api_check"),
        Route("/api/result/{job_id}", api_result, name="api_result"),
        *report_routes(settings, page, reports),  # /reports, /domains, /api/..., /openapi.json: mtasts.web.reports
        *actions,
        Mount("/static", StaticFiles(packages=[("mtasts.web", "static")]), name="static"),
        *(auth_routes(auth, page) if auth is not None else ()),  # login, logout: mtasts.web.auth
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_SecurityHeaders),
            *([Middleware(AuthMiddleware, auth=auth)] if auth is not None else []),
        ],
        lifespan=lifespan,
        exception_handlers={404: not_found},
    )
    app.state.checks = checks
    app.state.reports = reports
    app.state.actions = action_service
    app.state.auth = auth  # accounts: mtasts.web.auth (None: every page open, as an embedding program wants)
    return app


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _refused(outcome: Limited | Busy) -> JSONResponse:
    headers = {"retry-after": str(outcome.retry_after)}
    if isinstance(outcome, Limited):
        return _error(429, "rate-limited", f"too many checks: retry in {outcome.retry_after} s", headers)
    return _error(503, "busy", f"every check slot is taken: retry in {outcome.retry_after} s", headers)


def _event(name: str, data: dict[str, object]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


_WAITING = N_("Waiting for a free check slot…")
_RUNNING = N_("Checking %(domain)s: %(elapsed)d s (at most %(budget)d s)")


def _progress(job: Job, now: float, gettext: Callable[[str], str]) -> dict[str, object]:
    """One ``progress`` event: the state, the seconds so far and the budget, and the line the
    page shows, in the page's language (the script only copies it)."""
    elapsed = job.elapsed(now)
    if job.state is JobState.WAITING:
        text = gettext(_WAITING)
    else:
        text = gettext(_RUNNING) % {"domain": job.domain, "elapsed": int(elapsed), "budget": round(job.budget)}
    return {"state": job.state.value, "elapsed": round(elapsed, 1), "budget": job.budget, "text": text}
