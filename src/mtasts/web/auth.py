"""Who is asking, and may they: sessions, a reverse proxy's user header, CSRF, roles.

:class:`AuthMiddleware` runs before every route of the web app and decides, per request:

1. **Who.** A request from a trusted reverse proxy (``trusted_proxies``) that carries the
   proxy's user header (``proxy_user_header``, e.g. ``X-Remote-User``) is that user: the proxy
   authenticated them. The header is ignored from any other address, so nobody can name
   themselves by sending it. Otherwise the signed session cookie names a session in the
   database (:mod:`mtasts.web.accounts`); a revoked, expired or idle one is nobody.
2. **CSRF.** Every state-changing request (POST, PUT, PATCH, DELETE) must carry the CSRF token:
   the hidden ``csrf_token`` field of a form, or the ``X-CSRF-Token`` header of an API call.
   A session's token is its own (kept server-side, made at login); without a session (the login
   form, a proxy's user) it is the signed ``mtasts_csrf`` cookie's, a double-submit token. A
   cross-site ``Origin`` or ``Sec-Fetch-Site: cross-site`` is refused as well.
3. **May they.** Anonymous requests reach only the login page, the static files and, in public
   mode, the inspector (:data:`PUBLIC_INSPECTOR_PATHS`); any other page redirects to the login
   page, any other API call is 401. :func:`require_role` guards an endpoint with a role: a
   read-only user gets 403 where ``admin`` is needed.

Cookies are HttpOnly, SameSite=Lax (a link from a mail to the dashboard still finds the user
signed in; CSRF tokens cover what Lax leaves open) and Secure when the request came over HTTPS
(directly, or ``X-Forwarded-Proto: https`` from a trusted proxy). Their values are signed with
a key kept in the database, so every process sharing it accepts them, and a forged value is
refused before any lookup.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mtasts.net.ratelimit import RateLimit, RateLimiter
from mtasts.web.accounts import (
    MAX_PASSWORD,
    AccountError,
    Accounts,
    Role,
    SessionInfo,
    User,
    check_name,
    hash_password,
    verify_password,
)
from mtasts.web.i18n import N_

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PUBLIC_INSPECTOR_PATHS",
    "SESSION_COOKIE",
    "Auth",
    "AuthMiddleware",
    "AuthSettings",
    "Identity",
    "auth_routes",
    "csrf_token_of",
    "identity_of",
    "require_role",
]

log = logging.getLogger("mtasts.web.auth")

SESSION_COOKIE = "mtasts_session"
CSRF_COOKIE = "mtasts_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_FORM_BYTES = 64 * 1024  # a form of this app is a few hundred bytes; more is not a form of ours

ALWAYS_ANONYMOUS_PATHS = ("/login", "/static/")
PUBLIC_INSPECTOR_PATHS = ("/", "/check", "/check/events", "/result/", "/api/check", "/api/result/")
"""What an anonymous visitor of a public inspector (``--public``) may open: the form, the
checks, their progress and results, and their JSON. Everything else (domain pages, reports,
the audit trail) needs an account. A path ending in ``/`` is a prefix (``/result/<id>``)."""

_IDENTITY = "mtasts.identity"
_CSRF = "mtasts.csrf"
_RENDER = "mtasts.render"
_TOUCH_SECONDS = 60.0  # a session's last use is written at most once a minute

_MESSAGES = {
    "login-required": N_("Sign in first."),
    "forbidden": N_("Your account may only look, not act: this needs the admin role."),
    "csrf-cross-site": N_("A request from another site cannot change anything here."),
    "csrf-missing": N_("The form's security token is missing: reload the page and try again."),
    "csrf-invalid": N_("The form's security token is wrong or out of date: reload the page and try again."),
    "form-too-large": N_("This form is too large."),
}
"""The page of each refusal (the API says the same in English, with the code)."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How people sign in.

    ``proxy_user_header``: trust this request header for the user's name, from the addresses of
    ``trusted_proxies`` only (networks; one is required with a header). A name the proxy gives
    that is not a local account gets ``proxy_default_role`` (read-only unless changed).
    ``session_seconds``: a session's longest life; ``idle_seconds``: it ends earlier when unused
    that long. ``cookie_secure``: ``None`` sets Secure when the request came over HTTPS.
    ``login_per_client``/``login_total``: login attempts, per client address and in total.
    ``public``: the inspector pages are open to anonymous visitors (:data:`PUBLIC_INSPECTOR_PATHS`).
    """

    proxy_user_header: str | None = None
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    proxy_default_role: Role = Role.READ_ONLY
    session_seconds: float = 12 * 3600.0
    idle_seconds: float = 2 * 3600.0
    cookie_secure: bool | None = None
    login_per_client: RateLimit = field(default_factory=lambda: RateLimit(per_minute=5, burst=5))
    login_total: RateLimit = field(default_factory=lambda: RateLimit(per_minute=60, burst=20))
    public: bool = False

    def __post_init__(self) -> None:
        if self.proxy_user_header is not None:
            header = self.proxy_user_header.strip().lower()
            if not header or not all(c.isalnum() or c in "-_" for c in header):
                raise ValueError(f"{self.proxy_user_header!r} is not a header name")
            if not self.trusted_proxies:
                raise ValueError("a proxy's user header is trusted only from the proxy: name its address too")
            object.__setattr__(self, "proxy_user_header", header)
        if self.session_seconds <= 0 or self.idle_seconds <= 0:
            raise ValueError("session lifetimes must be positive")

    @staticmethod
    def parse_networks(texts: Sequence[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``127.0.0.1``, ``10.0.0.0/8``, ``::1`` as networks; ``ValueError`` names a bad one."""
        networks = []
        for text in texts:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not an IP address or network: {exc}") from None
        return tuple(networks)


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind a request: name, role, how we know (``session`` or ``proxy``)."""

    name: str
    role: Role
    via: str
    session: SessionInfo | None = None


class Auth:
    """The accounts, the settings and the state of signing in (the cookie key, the login
    limiter): one per app. ``clock`` is wall-clock seconds (tests step it)."""

    def __init__(
        self,
        accounts: Accounts,
        settings: AuthSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_hashing: int = 2,
    ) -> None:
        self.accounts = accounts
        self.settings = settings or AuthSettings()
        self.clock = clock
        self.limiter = RateLimiter(self.settings.login_per_client, self.settings.login_total)
        self._key: bytes | None = None
        self._hashing = asyncio.Semaphore(max_hashing)  # scrypt needs 128 MiB each: a few at once
        self._dummy_hash: str | None = None
        self.render: Callable[..., Response] | None = None  # the app's page renderer (auth_routes)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def key(self) -> bytes:
        if self._key is None:
            secret = await asyncio.to_thread(self.accounts.secret, "cookie-key")
            self._key = secret.encode()
        return self._key

    async def sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(await self.key(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return f"{value}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    async def unsign(self, purpose: str, signed: str | None) -> str | None:
        """The value of a cookie signed by :meth:`sign`, or ``None`` (absent, forged, damaged)."""
        if not signed or len(signed) > 200 or "." not in signed:
            return None
        value = signed.rsplit(".", 1)[0]
        expected = await self.sign(purpose, value)
        return value if hmac.compare_digest(expected.encode(), signed.encode()) else None

    async def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs; the same cost when ``name`` is unknown."""
        try:
            check_name(name)
        except AccountError:
            return None
        if len(password) > MAX_PASSWORD:
            return None
        found = await asyncio.to_thread(self.accounts.credentials, name)
        async with self._hashing:
            if found is None:
                if self._dummy_hash is None:
                    self._dummy_hash = await asyncio.to_thread(hash_password, secrets.token_urlsafe(16))
                await asyncio.to_thread(verify_password, password, self._dummy_hash)
                return None
            user, encoded = found
            ok = await asyncio.to_thread(verify_password, password, encoded)
        return user if ok else None

    def peer(self, scope: Scope) -> str:
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    def from_trusted_proxy(self, scope: Scope) -> bool:
        try:
            address = ipaddress.ip_address(self.peer(scope))
        except ValueError:
            return False
        return any(address in network for network in self.settings.trusted_proxies)

    def client(self, request: Request) -> str:
        """The client's address for rate limits: the proxy's view (the last X-Forwarded-For
        entry, the one the proxy itself added) when the peer is a trusted proxy."""
        if self.from_trusted_proxy(request.scope):
            forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
            if forwarded:
                return forwarded[:64]
        return self.peer(request.scope)

    def secure(self, request: Request) -> bool:
        if self.settings.cookie_secure is not None:
            return self.settings.cookie_secure
        if request.url.scheme == "https":
            return True
        return self.from_trusted_proxy(request.scope) and request.headers.get("x-forwarded-proto") == "https"

    async def identify(self, request: Request) -> Identity | None:
        settings = self.settings
        if settings.proxy_user_header is not None and self.from_trusted_proxy(request.scope):
            name = request.headers.get(settings.proxy_user_header)
            if name:
                try:
                    check_name(name)
                except AccountError:
                    log.warning("the proxy's %s header holds no user name: refused", settings.proxy_user_header)
                    return None
                user = await asyncio.to_thread(self.accounts.user, name)
                return Identity(name, settings.proxy_default_role if user is None else user.role, "proxy")
        token = await self.unsign("session", request.cookies.get(SESSION_COOKIE))
        if token is None:
            return None
        now = self.now()
        session = await asyncio.to_thread(
            self.accounts.session, token, now=now, idle=timedelta(seconds=settings.idle_seconds)
        )
        if session is None:
            return None
        if (now - session.last_seen_at).total_seconds() >= _TOUCH_SECONDS:
            await asyncio.to_thread(self.accounts.touch, session.id, now=now)
        return Identity(session.user.name, session.user.role, "session", session)

    def anonymous_allowed(self, path: str) -> bool:
        allowed = ALWAYS_ANONYMOUS_PATHS + (PUBLIC_INSPECTOR_PATHS if self.settings.public else ())
        return any(path.startswith(p) if p.endswith("/") and p != "/" else path == p for p in allowed)


def identity_of(request: Request) -> Identity | None:
    """Who sent ``request`` (``None``: nobody signed in, or the app has no accounts)."""
    found = request.scope.get(_IDENTITY)
    return found if isinstance(found, Identity) else None


def csrf_token_of(request: Request) -> str:
    """The CSRF token a form on this page must carry (empty when the app has no accounts)."""
    return str(request.scope.get(_CSRF, ""))


def _root(scope: Scope) -> str:
    return str(scope.get("root_path") or "")


def _relative(scope: Scope) -> str:
    path, root = str(scope["path"]), _root(scope)
    return path[len(root) :] or "/" if root and path.startswith(root) else path


def _wants_json(scope: Scope) -> bool:
    return _relative(scope).startswith("/api/")


def _deny(scope: Scope, status: int, code: str, message: str) -> Response:
    """A refusal: JSON for the API (the API's error shape), else the app's page for ``code``
    in the reader's language (a bare page when the app gave no renderer)."""
    if _wants_json(scope):
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    render = scope.get(_RENDER)
    if render is not None:
        response: Response = render(Request(scope), "denied.html", status, message=_MESSAGES[code], code=code)
        return response
    html = f'<!DOCTYPE html><html lang="en"><title>{status}</title><h1>{status}</h1><p id="error">{message}</p></html>'
    return HTMLResponse(html, status_code=status)


def _cross_site(request: Request) -> bool:
    """Whether the browser says the request comes from another site: ``Sec-Fetch-Site`` (a
    sibling subdomain, ``same-site``, is another site too: it may be someone else's), or an
    ``Origin`` naming another host. ``Origin: null`` proves nothing: the pages' own
    ``Referrer-Policy: no-referrer`` makes browsers send it with every form."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


class AuthMiddleware:
    """See the module: identifies, checks CSRF, keeps anonymous visitors out. ``auth`` is
    :class:`Auth`; the middleware sets :func:`identity_of` and :func:`csrf_token_of`."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = self.auth
        request = Request(scope)
        identity = await auth.identify(request)
        anonymous_token = await auth.unsign("csrf", request.cookies.get(CSRF_COOKIE))
        new_cookies: list[tuple[str, str]] = []
        if anonymous_token is None:
            anonymous_token = secrets.token_urlsafe(32)
            new_cookies.append((CSRF_COOKIE, await auth.sign("csrf", anonymous_token)))
        expected = identity.session.csrf_token if identity and identity.session else anonymous_token
        scope[_IDENTITY] = identity
        scope[_CSRF] = expected
        scope[_RENDER] = auth.render
        stale_session = identity is None and SESSION_COOKIE in request.cookies

        if scope["method"] in UNSAFE_METHODS:
            refusal, receive = await self._check_csrf(request, receive, expected)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if identity is None and not auth.anonymous_allowed(_relative(scope)):
            if _wants_json(scope):
                response: Response = _deny(scope, 401, "login-required", "sign in first (POST /login)")
            else:
                target = _relative(scope) + (
                    f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
                )
                login = f"{_root(scope)}/login?{_query(next=target)}"
                response = RedirectResponse(login, status_code=303)
            await response(scope, receive, self._with_cookies(send, request, new_cookies, stale_session))
            return
        await self.app(scope, receive, self._with_cookies(send, request, new_cookies, stale_session))

    async def _check_csrf(self, request: Request, receive: Receive, expected: str) -> tuple[Response | None, Receive]:
        """(a refusal or ``None``, the ``receive`` the app reads the body from)."""
        scope = request.scope
        if _cross_site(request):
            return _deny(scope, 403, "csrf-cross-site", "a cross-site request cannot change anything here"), receive
        submitted = request.headers.get(CSRF_HEADER)
        if submitted is None and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            body = await _read_body(receive, MAX_FORM_BYTES)
            if body is None:
                return _deny(scope, 413, "form-too-large", "this form is too large"), receive
            receive = _replay(body, receive)
            values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=50).get(CSRF_FIELD, [])
            submitted = values[0] if values else None
        if submitted is None:
            return _deny(
                scope, 403, "csrf-missing", "the CSRF token is missing: reload the page and try again"
            ), receive
        if not hmac.compare_digest(submitted.encode(), expected.encode()):
            return _deny(scope, 403, "csrf-invalid", "the CSRF token is wrong: reload the page and try again"), receive
        return None, receive

    def _with_cookies(self, send: Send, request: Request, cookies: list[tuple[str, str]], clear_session: bool) -> Send:
        if not cookies and not clear_session:
            return send
        path = _root(request.scope) or "/"
        secure = self.auth.secure(request)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = Response()
                for name, value in cookies:
                    extra.set_cookie(name, value, path=path, httponly=True, samesite="lax", secure=secure)
                if clear_session:
                    extra.delete_cookie(SESSION_COOKIE, path=path, httponly=True, samesite="lax", secure=secure)
                headers = list(message.get("headers", []))
                headers += [(k, v) for k, v in extra.raw_headers if k == b"set-cookie"]
                message = {**message, "headers": headers}
            await send(message)

        return sending


def _query(**params: str) -> str:
    from urllib.parse import urlencode  # noqa: PLC0415

    return urlencode(params)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` when it is longer than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replaying() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying


Endpoint = Callable[[Request], Awaitable[Response]]


def require_role(role: Role) -> Callable[[Endpoint], Endpoint]:
    """Guard an endpoint: anonymous is 401 (a page: the login form), a user whose role does not
    allow ``role`` is 403. An app without accounts has nobody signed in: always refused."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            identity = identity_of(request)
            if identity is None:
                if _wants_json(request.scope):
                    return _deny(request.scope, 401, "login-required", "sign in first (POST /login)")
                root = _root(request.scope)
                return RedirectResponse(f"{root}/login?{_query(next=_relative(request.scope))}", status_code=303)
            if not identity.role.allows(role):
                return _deny(
                    request.scope,
                    403,
                    "forbidden",
                    f"this needs the {role.value} role; {identity.name} is {identity.role.value}",
                )
            return await endpoint(request)

        return guarded

    return decorate


# --- the routes: login, logout, who am I, the audit trail --------------------------------------


def _safe_next(scope: Scope, target: str | None) -> str:
    """Where to go after signing in: a path of this app only (never another site: ``//host``,
    ``/\\host`` and absolute URLs are the home page)."""
    root = _root(scope)
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 2000:
        return f"{root}/"
    if any(ord(c) < 0x21 for c in target):
        return f"{root}/"
    return f"{root}{target}"


def auth_routes(auth: Auth, render: Callable[..., Response]) -> list[Route]:
    """``GET/POST /login``, ``POST /logout``, ``GET /api/session`` and ``GET /api/audit``
    (admin). ``render(request, template, status, extra_headers=None, **context)`` is the app's
    page renderer (its language, its layout)."""
    auth.render = render

    def login_page(
        request: Request, status: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> Response:
        values: dict[str, Any] = {"error": None, "retry_after": 0, "typed_name": "", "next": "", **context}
        values["login_url"] = str(request.url_for("login_submit").path)
        return render(request, "login.html", status, extra_headers=headers, **values)

    async def login_form(request: Request) -> Response:
        return login_page(request, next=request.query_params.get("next", "")[:2000])

    async def login(request: Request) -> Response:
        body = await _read_body(request.receive, MAX_FORM_BYTES)
        fields = parse_qs((body or b"").decode("utf-8", "replace"), max_num_fields=50)

        def one(name: str) -> str:
            values = fields.get(name, [])
            return values[0] if values else ""

        name, password, target = one("name").strip(), one("password"), one("next")
        client = auth.client(request)
        wait = auth.limiter.acquire(client, auth.clock())
        if wait:
            log.warning("login attempts from %s rate-limited (retry in %d s)", client, wait)
            return login_page(
                request, 429, {"retry-after": str(wait)}, error="limited", retry_after=wait, typed_name=name[:64],
                next=target,
            )  # fmt: skip
        user = await auth.verify(name, password)
        if user is None:
            log.warning("failed login for %r from %s", name[:64], client)
            return login_page(request, 403, error="wrong", typed_name=name[:64], next=target)
        now = auth.now()
        token, _ = await asyncio.to_thread(
            auth.accounts.create_session, user, now=now, lifetime=timedelta(seconds=auth.settings.session_seconds)
        )
        await asyncio.to_thread(auth.accounts.audit, user.name, "login", f"from {client}", now=now)
        response = RedirectResponse(_safe_next(request.scope, target), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            await auth.sign("session", token),
            max_age=int(auth.settings.session_seconds),
            path=_root(request.scope) or "/",
            httponly=True,
            samesite="lax",
            secure=auth.secure(request),
        )
        return response

    async def logout(request: Request) -> Response:
        identity = identity_of(request)
        token = await auth.unsign("session", request.cookies.get(SESSION_COOKIE))
        if token is not None:
            now = auth.now()
            if await asyncio.to_thread(auth.accounts.revoke, token, now=now) and identity is not None:
                await asyncio.to_thread(auth.accounts.audit, identity.name, "logout", "", now=now)
        response = RedirectResponse(f"{_root(request.scope)}/login", status_code=303)
        response.delete_cookie(
            SESSION_COOKIE, path=_root(request.scope) or "/", httponly=True, samesite="lax", secure=auth.secure(request)
        )
        return response

    async def api_session(request: Request) -> Response:
        identity = identity_of(request)
        if identity is None:
            return _deny(request.scope, 401, "login-required", "sign in first (POST /login)")
        return JSONResponse(
            {
                "user": identity.name,
                "role": identity.role.value,
                "via": identity.via,
                "csrf_token": csrf_token_of(request),
            }
        )

    @require_role(Role.ADMIN)
    async def api_audit(request: Request) -> Response:
        try:
            limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
        except ValueError:
            return _deny(request.scope, 400, "limit-invalid", "limit is a number from 1 to 1000")
        entries = await asyncio.to_thread(auth.accounts.audit_entries, limit=limit)
        return JSONResponse({"entries": [e.to_dict() for e in entries]})

    return [
        Route("/login", login_form, methods=["GET"], name="login"),
        Route("/login", login, methods=["POST"], name="login_submit"),
        Route("/logout", logout, methods=["POST"], name="logout"),
        Route("/api/session", api_session, name="api_session"),
        Route("/api/audit", api_audit, name="api_audit"),
    ]
