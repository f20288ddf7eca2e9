"""The policy host: ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` for every configured domain.

One process, shared listeners (any number of addresses, IPv4 and IPv6), the certificate chosen
by SNI, over :mod:`mtasts.net.server` (TLS terminated at accept, connection caps, clean stop)
and :mod:`mtasts.net.http11` (keep-alive, bounded head, timeouts, per-client rate). The
policy listeners serve from protocol callbacks (:class:`~mtasts.net.http11.HttpProtocol`:
every answer below but the report endpoint's is made in ``data_received``, no stream or task
per connection); the report endpoint and any request with a body continue on a stream.

Serving rules (docs/publish.md lists them for operators):

=====================================================  =============================================
request                                                answer
=====================================================  =============================================
no SNI, or an SNI name that is not a served host       the fallback certificate (self-signed, no DNS
                                                       name: no client trusts it), then ``421``
a served name whose certificate cannot be loaded       the same (logged once, in the metrics)
``Host`` is not the SNI name                           ``421`` (RFC 9110 §15.5.20)
the connection's name stopped being served (reload)    ``421`` and close: a new connection is told
``[report] path`` on a served name                     the RFC 8460 report endpoint
                                                       (:mod:`mtasts.publish.reports`)
method other than ``GET`` / ``HEAD``                   ``405`` with ``Allow: GET, HEAD``
any path but ``/.well-known/mta-sts.txt``              ``404``
``GET`` / ``HEAD`` of the policy path                  ``200``, the canonical CRLF body (none for
                                                       ``HEAD``), ``Content-Type: text/plain`` once,
                                                       ``Content-Length``, ``Cache-Control:
                                                       max-age=N`` (``[server] cache_max_age``)
=====================================================  =============================================

Never a redirect, and nothing depends on the ``User-Agent``. The ``Content-Type`` is exactly
``text/plain`` without a ``charset``: RFC 8461 §3.3 names that media type, the body is ASCII
(A-labels, RFC 8461 §3.2; the configuration has no free-text fields), for which text/plain's
default charset (US-ASCII, RFC 2046 §4.1.2) is exact, and the bare value is the one no
sender's comparison can trip over.

The state (names, bodies, certificate files) is one immutable :class:`~mtasts.publish.snapshot.
Snapshot`; :meth:`PolicyHost.reload` builds a new one off the event loop and swaps the
reference only when it is valid, so a reload never drops a connection and a bad one changes
nothing. Connections keep their TLS session; each request reads the current snapshot.

The admin listener (plain HTTP, loopback by default) answers ``GET /metrics`` (Prometheus text),
``GET /healthz`` and ``POST /reload`` (from a loopback client only), which is what
``mtasts publish reload`` calls: its answer says whether the new state was taken and, if not,
every problem, so the command can tell the user.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtasts.core.fetch import POLICY_PATH
from mtasts.net.admin import AdminListener
from mtasts.net.http11 import (
    HttpLimits,
    HttpProtocol,
    HttpRequest,
    HttpResponse,
    HttpService,
    authority_name,
)
from mtasts.net.ratelimit import RateLimit, RateLimiter
from mtasts.net.server import BindError, Connections, Listener, ServerLimits, StreamServer, sanitize
from mtasts.publish.alpn import AlpnChallenges, peek_client_hello
from mtasts.publish.config import ConfigError, HostLimits, ListenAddress
from mtasts.publish.metrics import CONTENT_TYPE, Gauges, HostMetrics, render_metrics
from mtasts.publish.snapshot import CertificateFailure, ServedContext, Snapshot, build_snapshot

if TYPE_CHECKING:
    from mtasts.publish.reports import ReportRoute

__all__ = ["EXPIRY_WARNING_DAYS", "ListenFailed", "PolicyHost", "ReloadOutcome", "answer_policy", "refuse_name"]

log = logging.getLogger("mtasts.publish")
access_log = logging.getLogger("mtasts.publish.access")

EXPIRY_WARNING_DAYS = 14
_WARM_UP_BATCH = 64  # certificates read between two yields to the event loop

Loader = Callable[[int], Snapshot]
"""Builds the snapshot of the given generation from the configuration (runs in a thread)."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload did: ``ok`` and the generation now served, or the problems (one line each)
    that made it keep the previous state."""

    ok: bool
    generation: int
    served: int
    problems: tuple[str, ...] = ()
    unreadable: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "generation": self.generation,
            "served": self.served,
            "problems": list(self.problems),
            "unreadable": self.unreadable,
        }


class ListenFailed(OSError):
    """A listener cannot listen: ``listener`` says which (``"policy"``, ``"admin"``; the ACME
    challenge listener's caller says ``"acme"``), ``addresses`` the address at fault (all of the
    listener's when the system did not say which); ``errno`` and ``strerror`` are the system's."""

    def __init__(self, listener: str, addresses: Sequence[ListenAddress], cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.listener = listener
        self.addresses = tuple(addresses)

    @classmethod
    def of(cls, listener: str, addresses: Sequence[ListenAddress], cause: OSError) -> ListenFailed:
        """The failure of ``cause`` (raised binding ``addresses``), naming the one at fault."""
        if isinstance(cause, BindError):
            at_fault = [a for a in addresses if a.host == cause.address]
            if at_fault:
                return cls(listener, at_fault[:1], cause)
        return cls(listener, addresses, cause)


def refuse_name(snapshot: Snapshot, request: HttpRequest) -> HttpResponse | None:
    """``421`` when the connection's name is not served (any more) or ``Host`` names another;
    else ``None``. Every answer of the policy host, the report endpoint's too, passes here."""
    name = request.server_name or ""
    label = name.removeprefix("mta-sts.")
    site = snapshot.site(name)
    if site is None:
        return HttpResponse(421, b"this name is not served now; open a new connection\n", close=True, label=label)
    host = request.header("host")
    if host is None or authority_name(host) != site.host:
        return HttpResponse(421, f"this connection serves {site.host} only\n".encode(), label=label)
    return None


def answer_policy(
    snapshot: Snapshot,
    request: HttpRequest,
    *,
    cache_max_age: int,
    answers: dict[str, HttpResponse] | None = None,
) -> HttpResponse:
    """The answer to one request on the TLS connection whose SNI name is ``request.server_name``
    (pure: the serving rules of the module docstring). ``answers``, when given, keeps the
    ``200`` of each name once made, head rendered and all (:class:`HttpResponse`): the caller
    gives one dictionary per snapshot, so a new body is never answered from it."""
    refused = refuse_name(snapshot, request)
    if refused is not None:
        return refused
    label = (request.server_name or "").removeprefix("mta-sts.")
    site = snapshot.site(request.server_name or "")
    assert site is not None  # refuse_name said so
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(
            405,
            b"only GET and HEAD\n",
            (("Content-Type", "text/plain"), ("Allow", "GET, HEAD")),
            label=label,
        )
    if request.path != POLICY_PATH:
        return HttpResponse(404, b"not found\n", label=label)
    if answers is not None and (made := answers.get(site.host)) is not None:
        return made
    answer = HttpResponse(
        200,
        site.body,
        (("Content-Type", "text/plain"), ("Cache-Control", f"max-age={cache_max_age}")),
        label=label,
    )
    if answers is not None:
        answers[site.host] = answer
    return answer


class PolicyHost:
    """Serves the current :class:`Snapshot` on the policy listeners, metrics on the admin one.

    ``listen`` and ``admin`` override the configuration's ``[server]`` addresses (``None`` for
    ``admin``: no admin listener); they, the limits and the cache hint are fixed at
    :meth:`start` (a reload that changes them logs that a restart is needed). ``loader`` builds
    the snapshot a reload swaps in. ``tune_collector`` is for a process that is this host and
    nothing else (``publish serve``): what it holds after :meth:`start` leaves the cyclic
    garbage collector's sight (:func:`_tune_collector`). Construction binds nothing.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        loader: Loader | None = None,
        listen: Sequence[ListenAddress] | None = None,
        admin: ListenAddress | bool | None = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reports: ReportRoute | None = None,
        tune_collector: bool = False,
    ) -> None:
        self._snapshot = snapshot
        # the process is this host (``publish serve``): freeze what start leaves (_tune_collector)
        self._tune_collector = tune_collector
        # the RFC 8460 report endpoint at its path on every served name ([report]), or none
        self.reports: ReportRoute | None = None
        if reports is not None:
            self.mount_reports(reports)
        self._loader = loader
        server = snapshot.config.server
        self.listen = tuple(listen) if listen else server.listen
        self.admin: ListenAddress | None = server.admin if admin is True else admin or None
        self.limits: HostLimits = server.limits
        self.cache_max_age = server.cache_max_age
        self.log_requests = server.access_log
        self._clock = clock
        self.metrics = HostMetrics()
        # the 200 answer of each name asked for, for the snapshot they were made from
        self._answers: dict[str, HttpResponse] = {}
        self._answers_of: Snapshot | None = None
        per_client = RateLimit.per_second(self.limits.requests_per_second, self.limits.burst)
        self._rate = RateLimiter(per_client, max_clients=100_000)
        self._http = HttpLimits(
            max_header_bytes=self.limits.max_header_bytes,
            header_timeout=self.limits.header_timeout,
            idle_timeout=self.limits.idle_timeout,
            max_requests=self.limits.max_requests_per_connection,
        )
        server_limits = ServerLimits(
            handshake_timeout=self.limits.handshake_timeout,
            max_connections=self.limits.max_connections,
            max_connections_per_client=self.limits.max_connections_per_client,
        )
        self._connections = Connections(
            max_connections=server_limits.max_connections, max_per_client=server_limits.max_connections_per_client
        )
        self._server_limits = server_limits
        # what every policy connection shares (made once: a connection only holds a reference)
        self._service = HttpService(
            answer=self._answer_now,
            app=self._answer,
            limits=self._http,
            rate=self._rate,
            observe=self._observe,
            names=_connection_names,
        )
        self._servers: list[StreamServer] = []
        self._admin_server: AdminListener | None = None
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.bound: tuple[ListenAddress, ...] = ()
        self.admin_bound: ListenAddress | None = None
        # more Prometheus families for /metrics (built-in ACME adds its own), given the time
        self.metric_sources: list[Callable[[datetime], str]] = []
        # told about every new snapshot once it is served (built-in ACME: new domains to order)
        self.swap_listeners: list[Callable[[Snapshot], None]] = []
        # the TLS-ALPN-01 challenges being validated (built-in ACME sets it), or none
        self.alpn_challenges: AlpnChallenges | None = None

    def mount_reports(self, route: ReportRoute) -> None:
        """Serve the report endpoint of ``route`` at its path on every served name, accepting
        reports for the configured domains (kept up to date by every reload)."""
        self.reports = route
        route.allow(frozenset(d.name for d in self._snapshot.config.domains))

    # --- state --------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The state served now."""
        return self._snapshot

    def _tls_context(self) -> ssl.SSLContext:
        """The listening context: it holds only the fallback certificate; the SNI callback
        hands each handshake for a served name the context of that name."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        _load_fallback_certificate(context, self._clock())
        context.sni_callback = self._choose_certificate
        return context

    def _choose_certificate(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        """A served name gets its certificate; anything else keeps the fallback certificate
        (which no client trusts) and, if it goes on anyway, ``421`` for every request.

        Not a handshake alert: asyncio's and uvloop's TLS layers drop the alert an SNI callback
        asks for and just close, which a client reports as a bare "EOF in violation of
        protocol"; the fallback certificate's subject says what happened instead."""
        if not server_name:
            self.metrics.handshake_failed("no_sni")
            return
        chosen = self._snapshot.certificates.context(server_name.rstrip(".").lower())
        if chosen is None:
            self.metrics.handshake_failed("unknown_name")
        elif isinstance(chosen, CertificateFailure):
            self.metrics.handshake_failed("certificate_unusable")
        else:
            connection.context = chosen

    def _choose_tls(self, conn: socket.socket) -> Awaitable[ssl.SSLContext | None] | None:
        """The TLS-ALPN-01 challenge context for the CA's validation handshake of a pending
        name (built-in ACME with ``challenge = "tls-alpn-01"``), else the listening context
        (``None``, at once). Peeks at the ClientHello only while a challenge is pending."""
        challenges = self.alpn_challenges
        if not challenges:
            return None
        return self._challenge_context(conn, challenges)

    async def _challenge_context(self, conn: socket.socket, challenges: AlpnChallenges) -> ssl.SSLContext | None:
        hello = await peek_client_hello(conn, self.limits.handshake_timeout)
        chosen = None if hello is None else challenges.context_for(hello)
        if chosen is not None and hello is not None:
            log.info("tls-alpn-01: the validation handshake for %s gets its challenge certificate", hello.server_name)
        return chosen

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every policy listener (one server per port number, all sharing the connection
        caps) and the admin listener; then read every certificate's expiry in the background.
        An address that cannot be bound is :class:`ListenFailed`, naming it and its listener."""
        by_port: dict[int, list[ListenAddress]] = {}
        for address in self.listen:
            by_port.setdefault(address.port, []).append(address)
        context = self._tls_context()
        bound: list[ListenAddress] = []
        try:
            for port, addresses in by_port.items():
                server = StreamServer("publish", limits=self._server_limits, stream_limit=self.limits.max_header_bytes)
                server.connections = self._connections  # one cap for the whole host, whatever the port
                self._servers.append(server)
                listeners = [
                    Listener(
                        a.host,
                        tls=context,
                        name=f"publish {a.to_text()}",
                        choose_tls=self._choose_tls,
                        protocol=self._policy_connection,
                    )
                    for a in addresses
                ]
                try:
                    chosen = await server.start(listeners, port)
                except OSError as exc:
                    raise ListenFailed.of("policy", addresses, exc) from exc
                bound.extend(ListenAddress(a.host, chosen) for a in addresses)
            if self.admin is not None:
                self._admin_server = AdminListener("publish admin", self._admin_app, self.admin.host, self.admin.port)
                try:
                    chosen = await self._admin_server.start()
                except OSError as exc:
                    raise ListenFailed.of("admin", [self.admin], exc) from exc
                self.admin_bound = ListenAddress(self.admin.host, chosen)
        except BaseException:
            await self.stop()
            raise
        self.bound = tuple(bound)
        if self._tune_collector:
            _tune_collector()
        self._warm_up(self._snapshot)

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        for task in list(self._background):
            task.cancel()
        for server in self._servers:
            await server.stop()
        if self._admin_server is not None:
            await self._admin_server.stop()
        self._servers, self._admin_server = [], None

    async def __aenter__(self) -> PolicyHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connections(self) -> int:
        return len(self._connections)

    @property
    def refused(self) -> int:
        return self._connections.refused

    def _warm_up(self, snapshot: Snapshot) -> None:
        task = asyncio.get_running_loop().create_task(self._read_expiries(snapshot), name="publish warm-up")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _read_expiries(self, snapshot: Snapshot) -> None:
        """Read every certificate's expiry (for the metrics and the 14-day warning), a batch at a
        time so that serving goes on; stops when a newer snapshot replaces this one."""
        now = self._clock()
        for count, name in enumerate(snapshot.sites, 1):
            if snapshot is not self._snapshot:
                return
            expiry = snapshot.certificates.note_expiry(name)
            if isinstance(expiry, CertificateFailure):
                log.warning("certificate of %s cannot be read: %s", name, expiry.reason)
            elif expiry is not None:
                days = (expiry - now).total_seconds() / 86400
                if days < 0:
                    log.warning("certificate of %s expired %.0f days ago", name, -days)
                elif days < EXPIRY_WARNING_DAYS:
                    log.warning("certificate of %s expires in %.1f days: renew it", name, days)
            if count % _WARM_UP_BATCH == 0:
                await asyncio.sleep(0)

    # --- reload -------------------------------------------------------------------------------

    async def reload(self) -> ReloadOutcome:
        """Re-read the configuration, bodies and certificate files; serve the new state when
        it is valid, else keep the previous one and say why. One reload at a time."""
        if self._loader is None:
            current = self._snapshot
            return ReloadOutcome(False, current.generation, len(current.sites), ("no configuration to reload",))
        return await self._swap(self._loader)

    async def refresh(self) -> ReloadOutcome:
        """The reload path for new certificate files (built-in ACME after an issuance): rebuild
        the snapshot from the configuration already served, without reading the file again, so
        a half-edited configuration on disk cannot hold a renewed certificate back."""
        return await self._swap(lambda generation: build_snapshot(self._snapshot.config, generation=generation))

    async def _swap(self, loader: Loader) -> ReloadOutcome:
        async with self._reload_lock:
            current = self._snapshot
            try:
                new = await asyncio.to_thread(loader, current.generation + 1)
            except ConfigError as exc:
                self.metrics.reloads["failed"] += 1
                problems = tuple(p.to_text() for p in exc.problems)
                for line in problems:
                    log.error("reload refused, still serving generation %d: %s", current.generation, line)
                return ReloadOutcome(False, current.generation, len(current.sites), problems, exc.unreadable)
            except Exception as exc:  # a bug: keep serving, say so
                self.metrics.reloads["failed"] += 1
                log.exception("reload failed, still serving generation %d", current.generation)
                return ReloadOutcome(False, current.generation, len(current.sites), (f"internal error: {exc!r}",))
            self._snapshot = new  # the swap: every later handshake and request sees the new state
            self.metrics.reloads["ok"] += 1
            self._note_restart_only(current, new)
            added = new.sites.keys() - current.sites.keys()
            removed = current.sites.keys() - new.sites.keys()
            changed = [n for n in new.sites.keys() & current.sites.keys() if new.sites[n] != current.sites[n]]
            log.info(
                "reloaded: generation %d, %d served (%d added, %d removed, %d changed)",
                new.generation,
                len(new.sites),
                len(added),
                len(removed),
                len(changed),
            )
            self._warm_up(new)
            if self.reports is not None:
                self.reports.allow(frozenset(d.name for d in new.config.domains))
            for listener in list(self.swap_listeners):
                listener(new)
            return ReloadOutcome(True, new.generation, len(new.sites))

    def _note_restart_only(self, old: Snapshot, new: Snapshot) -> None:
        before, after = old.config.server, new.config.server
        for what, a, b in (
            ("listen", before.listen, after.listen),
            ("admin", before.admin, after.admin),
            ("limits", before.limits, after.limits),
            ("cache_max_age", before.cache_max_age, after.cache_max_age),
        ):
            if a != b:
                log.warning("[server] %s changed: it takes effect at the next restart", what)
        if old.config.report != new.config.report:
            log.warning("[report] changed: it takes effect at the next restart")

    # --- serving ------------------------------------------------------------------------------

    def _policy_connection(self, client: str) -> HttpProtocol:
        return HttpProtocol(client, self._service)

    def _answer_now(self, request: HttpRequest) -> HttpResponse | None:
        """The answer made in ``data_received``: all but the report endpoint's (``None``)."""
        snapshot, reports = self._snapshot, self.reports
        if reports is not None and request.path == reports.path:
            return None
        if self._answers_of is not snapshot:  # a reload: the answers of the new bodies
            self._answers, self._answers_of = {}, snapshot
        return answer_policy(snapshot, request, cache_max_age=self.cache_max_age, answers=self._answers)

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        """The answer on a stream (the report endpoint, requests with a body)."""
        snapshot, reports = self._snapshot, self.reports
        if reports is not None and request.path == reports.path:
            return refuse_name(snapshot, request) or await reports.answer(request)
        answer = self._answer_now(request)
        assert answer is not None  # only the report endpoint is left to this path
        return answer

    def _observe(self, request: HttpRequest | None, response: HttpResponse, sent: int) -> None:
        self.metrics.request(response.label, response.status)
        if not self.log_requests:
            return
        if request is None:
            access_log.info('%s - - "-" %d %d', "-", response.status, sent)
            return
        access_log.info(
            '%s %s %s "%s %s" %d %d',
            request.client,
            request.server_name or "-",
            sanitize(request.header("host") or "-"),
            sanitize(request.method, 16),
            sanitize(request.target),
            response.status,
            sent,
        )

    async def _admin_app(self, request: HttpRequest) -> HttpResponse:
        routes = {"/metrics": ("GET", "HEAD"), "/healthz": ("GET", "HEAD"), "/reload": ("POST",)}
        allowed = routes.get(request.path)
        if allowed is None:
            return HttpResponse(404, b"not found: /metrics, /healthz, POST /reload\n")
        if request.method not in allowed:
            return HttpResponse(
                405, b"method not allowed\n", (("Content-Type", "text/plain"), ("Allow", ", ".join(allowed)))
            )
        if request.path == "/metrics":
            return HttpResponse(200, self.render_metrics().encode(), (("Content-Type", CONTENT_TYPE),))
        snapshot = self._snapshot
        if request.path == "/healthz":
            text = f"ok: generation {snapshot.generation}, {len(snapshot.sites)} served\n"
            return HttpResponse(200, text.encode())
        if not _is_loopback(request.client):
            return HttpResponse(403, b"reload is accepted from loopback clients only\n")
        outcome = await self.reload()
        body = json.dumps(outcome.to_dict()).encode() + b"\n"
        return HttpResponse(200 if outcome.ok else 409, body, (("Content-Type", "application/json"),))

    def render_metrics(self) -> str:
        snapshot = self._snapshot
        cache = snapshot.certificates
        gauges = Gauges(
            generation=snapshot.generation,
            served=len(snapshot.sites),
            unserved=len(snapshot.unserved),
            connections=len(self._connections),
            refused=self._connections.refused,
            certificates_loaded=len(cache),
            expiry=dict(cache.expiry),
            unusable=list(cache.failures),
        )
        now = self._clock()
        return render_metrics(self.metrics, gauges, now) + "".join(source(now) for source in self.metric_sources)


def _connection_names(transport: asyncio.BaseTransport) -> tuple[str | None, str]:
    """The served name the TLS handshake chose for a connection (its SNI callback set a
    :class:`ServedContext`; ``None``: the fallback certificate) and its label for metrics."""
    context = getattr(transport.get_extra_info("ssl_object"), "context", None)
    if isinstance(context, ServedContext):
        name = context.served_name
        return name, name.removeprefix("mta-sts.")
    return None, ""


def _tune_collector() -> None:
    """Keep CPython's cyclic garbage collector off what the process holds for good.

    Measured with callgrind (connections one at a time, each a full TLS handshake and one GET):
    3.12 M instructions per connection, against 2.63 M for a bare uvloop TLS server answering
    the same bytes, and about 0.12 M of the difference was the collector's full collections
    walking the modules, functions and snapshot of a 100 MB process again and again; with
    ``gc.freeze`` (everything alive at start moved out of every later collection) 3.00 M.
    Only at start: frozen objects are never collected as cycles, so freezing again at a
    reload would keep the cyclic garbage of every connection open at that moment for good.
    The thresholds stay CPython's: what a connection leaves is cyclic garbage (stream,
    protocol and transport refer to each other), which the young collections must keep
    finding soon."""
    gc.freeze()


FALLBACK_SUBJECT = "mtasts publish: no policy is served for this name"


def _load_fallback_certificate(context: ssl.SSLContext, now: datetime) -> None:
    """Give ``context`` a fresh self-signed certificate with no DNS name, whose subject says
    why: what a client that asked for an unknown name (or for none) is shown."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FALLBACK_SUBJECT)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # load_cert_chain reads files only: a private temporary file, removed at once
    with tempfile.TemporaryDirectory(prefix="mtasts-publish-") as directory:
        path = Path(directory) / "fallback.pem"
        path.write_bytes(pem)
        context.load_cert_chain(path)


def _is_loopback(client: str) -> bool:
    try:
        return ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False
