"""Built-in ACME (RFC 8555) for the policy host: a certificate per ``mta-sts.<domain>``, by HTTP-01
or TLS-ALPN-01 (RFC 8737: answered on the policy listeners, see :mod:`mtasts.publish.alpn`).

Three parts, each small:

- :class:`ChallengeTokens` and :func:`answer_challenge`: what the port-80 listener answers.
  Only ``GET``/``HEAD /.well-known/acme-challenge/<token>`` of a token being validated, for the
  name it was issued for, gets ``200`` and the key authorization (RFC 8555 §8.3); everything
  else is ``404``, never a redirect to HTTPS and never a policy (senders fetch policies over
  HTTPS only, RFC 8461 §3.3).
- :class:`AcmeIssuer`: the thin adapter over certbot's ``acme`` library (account, order with
  one identifier, HTTP-01, finalize). The library is synchronous (``requests``): every call
  runs in one dedicated worker thread (:class:`AcmeManager` owns it), never on the event loop,
  so serving goes on while an order is polled; one thread also means one order at a time,
  which is what CAs' rate limits want anyway. Library errors become two exceptions in one
  place (:meth:`AcmeIssuer.issue`): :class:`AcmeUnavailable` (the CA cannot be used at all:
  unreachable, untrusted TLS, no directory, account refused) and :class:`AcmeRefused` (this
  order failed: the challenge was not validated, the CA said no, it took too long).
- :class:`AcmeManager`: the loop. Each pass (:meth:`AcmeManager.tick`) asks
  :func:`mtasts.publish.renewal.decide` about every domain that has no ``cert``/``key`` of its
  own, orders what is missing or due, stores it (:mod:`mtasts.publish.certstore`) and
  swaps in a new snapshot through the host's reload path (:meth:`PolicyHost.refresh`), so the
  new certificate is used from the next handshake without a restart or a dropped connection.
  Failures back off (per name; per CA when it cannot be reached), the old certificate stays
  served, and a certificate within 14 days of expiry is logged as an alert (once a day) and
  shown in the metrics.

One certificate per name, never a growing SAN list: Let's Encrypt allows 50 certificates per
registered domain a week and 5 duplicates of one name set, and one name per certificate keeps
every domain's renewals independent of the others.

The clock is injected (``clock``): the decisions use it, so a test moves time past two thirds
of a lifetime without sleeping; the waits between passes are real seconds, capped at
``check_every`` so that a clock that jumps is noticed within that time (or at :meth:`wake`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy import errors as jose_errors
from josepy import jwa, jwk

from mtasts import __version__
from mtasts.net.http11 import HttpLimits, HttpRequest, HttpResponse, authority_name, serve_http
from mtasts.net.ratelimit import RateLimit, RateLimiter
from mtasts.net.server import Listener, ServerLimits, StreamServer, sanitize
from mtasts.publish.alpn import AlpnChallenges
from mtasts.publish.certstore import CertificateDates, CertificateStore, write_private
from mtasts.publish.config import AcmeSettings, Challenge, ListenAddress
from mtasts.publish.renewal import Backoff, RenewalDecision, decide

if TYPE_CHECKING:
    from mtasts.publish.host import PolicyHost

__all__ = [
    "CHALLENGE_PREFIX",
    "AcmeError",
    "AcmeIssuer",
    "AcmeManager",
    "AcmeRefused",
    "AcmeUnavailable",
    "ChallengeTokens",
    "Issuer",
    "TickReport",
    "TlsAlpn01",
    "answer_challenge",
    "managed_hosts",
]

log = logging.getLogger("mtasts.publish.acme")
challenge_log = logging.getLogger("mtasts.publish.access")

CHALLENGE_PREFIX = "/" + challenges.HTTP01.URI_ROOT_PATH + "/"
_ORDER_DEADLINE = timedelta(seconds=120)  # polling an order's authorizations and finalization
_HTTP_TIMEOUT = 30  # seconds per request to the CA
_CHECK_EVERY = timedelta(hours=1)
_ALERT_EVERY = timedelta(days=1)
_CHALLENGE_LIMITS = ServerLimits(handshake_timeout=5.0, max_connections=512, max_connections_per_client=16)
_CHALLENGE_HTTP = HttpLimits(max_header_bytes=8 * 1024, header_timeout=10.0, idle_timeout=10.0, max_requests=20)


# --- the HTTP-01 listener ---------------------------------------------------------------------


class ChallengeTokens:
    """The HTTP-01 tokens being validated: token → (name, key authorization). Written by the
    ACME worker thread, read by the event loop, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, str]] = {}

    def put(self, token: str, name: str, key_authorization: str) -> None:
        with self._lock:
            self._tokens[token] = (name, key_authorization)

    def remove(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def get(self, token: str) -> tuple[str, str] | None:
        with self._lock:
            return self._tokens.get(token)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


def answer_challenge(tokens: ChallengeTokens, request: HttpRequest) -> HttpResponse:
    """The port-80 listener's answer (pure apart from reading ``tokens``): the key authorization
    for a pending token asked for under the name it was issued for, ``404`` for anything else."""
    not_found = HttpResponse(404, b"not found\n", label="acme-challenge")
    if request.method not in ("GET", "HEAD") or not request.path.startswith(CHALLENGE_PREFIX):
        return not_found
    token = request.path[len(CHALLENGE_PREFIX) :]
    pending = tokens.get(token) if token and "/" not in token else None
    if pending is None or authority_name(request.header("host") or "") != pending[0]:
        return not_found
    return HttpResponse(
        200, pending[1].encode("ascii"), (("Content-Type", "application/octet-stream"),), label="acme-challenge"
    )


# --- the ACME adapter (runs in the worker thread) ----------------------------------------------


@challenges.ChallengeResponse.register
class TlsAlpn01Response(challenges.KeyAuthorizationChallengeResponse):
    """The answer to a tls-alpn-01 challenge (RFC 8737 §3): an empty object, as for http-01.
    Registered here because certbot's ``acme`` library no longer ships the type."""

    typ = "tls-alpn-01"


@challenges.Challenge.register
class TlsAlpn01(challenges.KeyAuthorizationChallenge):
    """The tls-alpn-01 challenge (RFC 8737 §3); its validation is the key authorization, from
    which :mod:`mtasts.publish.alpn` makes the challenge certificate."""

    response_cls = TlsAlpn01Response
    typ = response_cls.typ

    def validation(self, account_key: jwk.JWK, **unused_kwargs: object) -> str:
        return self.key_authorization(account_key)


class AcmeError(Exception):
    """An ACME attempt failed; the message says why, in one line."""


class AcmeUnavailable(AcmeError):
    """The CA cannot be used at all right now (every name waits: the CA backs off as a whole)."""


class AcmeRefused(AcmeError):
    """This name's order failed (that name backs off; others go on)."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "no detail"


def _transport_reason(exc: requests.exceptions.RequestException) -> str:
    """The cause of a failed request in a few words ("Connection refused", "timed out"), not
    requests' and urllib3's nested reprs: the innermost ``OSError`` with a ``strerror``."""
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    seen: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or item in seen:
            continue
        seen.append(item)
        if isinstance(item, OSError) and item.strerror and not isinstance(item, requests.exceptions.RequestException):
            return item.strerror
        pending.extend([item.__cause__, item.__context__, getattr(item, "reason", None), *item.args])
    return _one_line(exc)


class Issuer:
    """What :class:`AcmeManager` needs from an ACME client (synchronous: it runs in the worker
    thread); :class:`AcmeIssuer` is the real one."""

    def issue(self, host: str) -> tuple[bytes, bytes]:  # pragma: no cover - interface
        """Order a certificate for exactly ``host``; the PEM chain (leaf first) and PEM key."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (called in the worker thread at stop)."""


class AcmeIssuer(Issuer):
    """Orders certificates from the CA of ``settings`` with certbot's ``acme`` library.

    The account key (ECDSA P-256) is created on first use and kept in the storage directory
    (``0600``); the account is found again by its key (RFC 8555 §7.3.1), so nothing else needs
    to be remembered. Each certificate gets a new ECDSA P-256 key. Not thread-safe: one worker
    thread calls it."""

    def __init__(
        self,
        settings: AcmeSettings,
        store: CertificateStore,
        tokens: ChallengeTokens,
        alpn: AlpnChallenges | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if settings.challenge is Challenge.TLS_ALPN_01 and alpn is None:
            raise ValueError("tls-alpn-01 needs the policy host's AlpnChallenges")
        self.settings = settings
        self.store = store
        self.tokens = tokens
        self.alpn = alpn
        self._clock = clock
        self._client: client.ClientV2 | None = None

    def _account_key(self) -> jwk.JWKEC:
        directory = self.store.account_directory(self.settings.directory)
        path = directory / "key.pem"
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            key = ec.generate_private_key(ec.SECP256R1())
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            write_private(path, pem)
            (directory / "directory.txt").write_text(self.settings.directory + "\n")
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise AcmeUnavailable(f"{path}: the account key is not an ECDSA key; move it away to start a new account")
        return jwk.JWKEC(key=key)

    def _connect(self) -> client.ClientV2:
        if self._client is not None:
            return self._client
        url = self.settings.directory
        try:
            network = client.ClientNetwork(
                self._account_key(), alg=jwa.ES256, user_agent=f"mtasts/{__version__}", timeout=_HTTP_TIMEOUT
            )
            if self.settings.ca_file is not None:
                # requests' verify takes a CA bundle path; the library annotates it as bool only
                network.verify_ssl = str(self.settings.ca_file)  # type: ignore[assignment]
            acme_client = client.ClientV2(client.ClientV2.get_directory(url, network), network)
            registration = messages.NewRegistration.from_data(terms_of_service_agreed=True)
            if self.settings.contact:
                registration = registration.update(contact=self.settings.contact)
            try:
                acme_client.new_account(registration)
            except errors.ConflictError as exc:  # the key already has an account: use it
                network.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        except AcmeError:
            raise
        except requests.exceptions.SSLError as exc:
            raise AcmeUnavailable(f"cannot verify the TLS certificate of {url}: {_one_line(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise AcmeUnavailable(f"cannot reach {url}: {_transport_reason(exc)}") from exc
        except (errors.Error, messages.Error, jose_errors.Error, ValueError, OSError) as exc:
            raise AcmeUnavailable(f"cannot use the ACME directory {url}: {_one_line(exc)}") from exc
        self._client = acme_client
        return acme_client

    def issue(self, host: str) -> tuple[bytes, bytes]:
        acme_client = self._connect()
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pending: list[str] = []
        alpn_pending = False
        kind = challenges.HTTP01 if self.settings.challenge is Challenge.HTTP_01 else TlsAlpn01
        try:
            order = acme_client.new_order(crypto_util.make_csr(key_pem, [host]))
            for authorization in order.authorizations:
                if authorization.body.status == messages.STATUS_VALID:
                    continue  # the CA remembers an earlier validation
                offered = [c for c in authorization.body.challenges if isinstance(c.chall, kind)]
                if not offered:
                    raise AcmeRefused(f"{host}: the CA offers no {self.settings.challenge.value} challenge")
                challenge = offered[0]
                response, validation = challenge.response_and_validation(acme_client.net.key)
                if self.alpn is not None and kind is TlsAlpn01:
                    self.alpn.put(host, str(validation), self._clock())
                    alpn_pending = True
                else:
                    token = challenge.chall.encode("token")
                    self.tokens.put(token, host, str(validation))
                    pending.append(token)
                acme_client.answer_challenge(challenge, response)
            order = acme_client.poll_and_finalize(
                order, datetime.now() + _ORDER_DEADLINE
            )  # naive local: the library's own convention
        except AcmeError:
            raise
        except requests.exceptions.RequestException as exc:
            self._drop_client()
            raise AcmeUnavailable(f"cannot reach {self.settings.directory}: {_transport_reason(exc)}") from exc
        except errors.ValidationError as exc:
            details = [
                f"{c.chall.typ}: {_one_line(c.error)}"
                for authz in exc.failed_authzrs
                for c in authz.body.challenges
                if c.error is not None
            ]
            raise AcmeRefused(
                f"{host}: the CA could not validate the name ({'; '.join(details) or 'no detail'})"
            ) from exc
        except errors.TimeoutError as exc:
            raise AcmeRefused(f"{host}: the order was not ready within {_ORDER_DEADLINE.seconds} s") from exc
        except (errors.Error, messages.Error, jose_errors.Error, ValueError) as exc:
            raise AcmeRefused(f"{host}: {_one_line(exc)}") from exc
        finally:
            for token in pending:
                self.tokens.remove(token)
            if alpn_pending and self.alpn is not None:
                self.alpn.remove(host)
        if not order.fullchain_pem:
            raise AcmeRefused(f"{host}: the CA sent no certificate")
        return order.fullchain_pem.encode("ascii"), key_pem

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.net.session.close()
            self._client = None

    def close(self) -> None:
        self._drop_client()


# --- the manager (event loop) ------------------------------------------------------------------


def managed_hosts(host: PolicyHost) -> list[str]:
    """The policy host names whose certificates ACME provides: domains with no ``cert``/``key``
    of their own, in a configuration with ``[acme]`` (and whose body is known)."""
    config = host.snapshot.config
    if config.acme is None:
        return []
    return [d.host for d in config.domains if (d.cert is None or d.key is None) and d.mx is not None]


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one pass did: names ``issued`` (now served), names whose order ``failed``, the CA's
    error when it could not be used (``unavailable``), and when the next pass is due."""

    issued: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    unavailable: str | None = None
    next_pass: datetime | None = None


@dataclass(slots=True)
class _State:
    decisions: dict[str, RenewalDecision] = field(default_factory=dict)
    backoff: dict[str, Backoff] = field(default_factory=dict)
    ca: Backoff = field(default_factory=Backoff)
    alerted: dict[str, datetime] = field(default_factory=dict)
    issued: int = 0
    attempts: int = 0


class AcmeManager:
    """Keeps a certificate for every ACME-managed name of ``host`` (see the module docstring).

    ``issuer`` defaults to :class:`AcmeIssuer` for the configuration's ``[acme]``; ``listen``
    replaces ``[acme] listen`` (``()``: no challenge listener, for an issuer that needs none).
    Construction binds nothing; :meth:`start` binds the port-80 listener and starts the loop,
    :meth:`tick` is one pass of it (tests call it directly)."""

    def __init__(
        self,
        host: PolicyHost,
        *,
        issuer: Issuer | None = None,
        listen: Sequence[ListenAddress] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        check_every: timedelta = _CHECK_EVERY,
    ) -> None:
        settings = host.snapshot.config.acme
        if settings is None:
            raise ValueError("the configuration has no [acme] section")
        self.host = host
        self.settings = settings
        self.store = CertificateStore(settings.storage)
        self.tokens = ChallengeTokens()
        # tls-alpn-01 is answered on the policy listeners (port 443): no port-80 listener then
        self.alpn = AlpnChallenges() if settings.challenge is Challenge.TLS_ALPN_01 else None
        if issuer is None:
            issuer = AcmeIssuer(settings, self.store, self.tokens, self.alpn, clock=clock)
        self.issuer = issuer
        default_listen = settings.listen if self.alpn is None else ()
        self.listen = tuple(default_listen if listen is None else listen)
        self._clock = clock
        self._check_every = check_every
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mtasts-acme")
        self._state = _State()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._server: StreamServer | None = None
        self._rate = RateLimiter(RateLimit.per_second(20.0, 100))
        self._tick_lock = asyncio.Lock()
        self.bound: tuple[ListenAddress, ...] = ()
        self._known: set[str] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, *, run: bool = True) -> None:
        """Bind the challenge listeners (all on one port number), then (``run``) start the loop."""
        if self.listen:
            ports = {a.port for a in self.listen}
            if len(ports) != 1:
                raise ValueError("[acme] listen: give every address the same port (the CA uses one)")
            self._server = StreamServer("publish acme-challenge", limits=_CHALLENGE_LIMITS)
            listeners = [Listener(a.host, self._serve, name=f"acme-challenge {a.to_text()}") for a in self.listen]
            chosen = await self._server.start(listeners, ports.pop())
            self.bound = tuple(ListenAddress(a.host, chosen) for a in self.listen)
        self.host.metric_sources.append(self.render_metrics)
        self.host.swap_listeners.append(self._swapped)
        if self.alpn is not None:
            self.host.alpn_challenges = self.alpn
        self._known = set(managed_hosts(self.host))
        if run:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="publish acme")

    async def stop(self) -> None:
        """Stop the loop and the listener; an order in progress is abandoned (its worker thread
        ends at its next request's timeout) and tried again at the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self.render_metrics in self.host.metric_sources:
            self.host.metric_sources.remove(self.render_metrics)
        if self._swapped in self.host.swap_listeners:
            self.host.swap_listeners.remove(self._swapped)
        if self.alpn is not None and self.host.alpn_challenges is self.alpn:
            self.host.alpn_challenges = None
        loop = asyncio.get_running_loop()
        with contextlib.suppress(RuntimeError):
            await loop.run_in_executor(self._executor, self.issuer.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> AcmeManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _swapped(self, _snapshot: object) -> None:
        """A reload (SIGHUP, ``mtasts publish reload``) may add domains: order theirs now."""
        names = set(managed_hosts(self.host))
        if names - self._known:
            self.wake()
        self._known = names

    def wake(self) -> None:
        """Run a pass now (after a reload added domains; tests after moving the clock)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                report = await self.tick()
                now = self._clock()
                wait = (report.next_pass - now).total_seconds() if report.next_pass else 0.0
            except Exception:  # a bug: log it, keep the host serving, try again later
                log.exception("ACME pass failed")
                wait = 60.0
            wait = min(max(wait, 1.0), self._check_every.total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # --- one pass -----------------------------------------------------------------------------

    async def tick(self) -> TickReport:
        """Decide for every managed name at the clock's time; order what is missing or due (one
        at a time, in the worker thread); serve what was issued. Returns what happened."""
        async with self._tick_lock:
            return await self._tick()

    async def _tick(self) -> TickReport:
        loop = asyncio.get_running_loop()
        names = managed_hosts(self.host)
        now = self._clock()
        dates = await loop.run_in_executor(self._executor, lambda: {n: self.store.dates(n) for n in names})
        state = self._state
        for gone in set(state.decisions) - set(names):
            state.decisions.pop(gone, None)
            state.backoff.pop(gone, None)
        issued: list[str] = []
        failed: list[str] = []
        unavailable: str | None = None
        for name in sorted(names, key=lambda n: _urgency(dates[n])):
            found = dates[name]
            decision = decide(now, found.not_before, found.not_after) if found else decide(now)
            state.decisions[name] = decision
            self._alert(name, decision, now)
            if not decision.renew or unavailable is not None:
                continue
            if not state.ca.ready(now) or not state.backoff.get(name, Backoff()).ready(now):
                continue
            state.attempts += 1
            log.info("ordering a certificate for %s (%s)", name, decision.reason.value)
            try:
                chain, key = await loop.run_in_executor(self._executor, self.issuer.issue, name)
                stored = await loop.run_in_executor(self._executor, self.store.save, name, chain, key)
            except AcmeUnavailable as exc:
                state.ca = state.ca.failed(now, str(exc))
                unavailable = str(exc)
                self._log_failure(name, state.ca, found is not None, "the CA cannot be used", now)
                continue
            except AcmeRefused as exc:
                backoff = state.backoff[name] = state.backoff.get(name, Backoff()).failed(now, str(exc), name)
                failed.append(name)
                self._log_failure(name, backoff, found is not None, "the order failed", now)
                continue
            except OSError as exc:
                reason = f"cannot store it in {self.settings.storage}: {exc.strerror or exc}"
                backoff = state.backoff[name] = state.backoff.get(name, Backoff()).failed(now, reason, name)
                failed.append(name)
                self._log_failure(name, backoff, found is not None, "the certificate was issued but", now)
                continue
            state.ca = Backoff.succeeded()
            state.backoff.pop(name, None)
            state.alerted.pop(name, None)
            state.issued += 1
            issued.append(name)
            new_dates = await loop.run_in_executor(self._executor, self.store.dates, name)
            if new_dates is not None:
                state.decisions[name] = decide(now, new_dates.not_before, new_dates.not_after)
            outcome = await self.host.refresh()  # said only once served: a reader of the log may fetch at once
            if outcome.ok:
                log.info("certificate for %s issued (%s), serving it from the next handshake", name, stored.cert.parent)
            else:
                log.error("the new certificate of %s is stored but not served: %s", name, "; ".join(outcome.problems))
        return TickReport(tuple(issued), tuple(failed), unavailable, self._next_pass(names, now))

    def _next_pass(self, names: Sequence[str], now: datetime) -> datetime:
        state = self._state
        times = [now + self._check_every]
        for name in names:
            decision = state.decisions.get(name)
            backoff = state.backoff.get(name)
            if backoff is not None and backoff.next_attempt is not None:
                times.append(backoff.next_attempt)
            elif decision is not None and not decision.renew:
                times.append(decision.renew_at)
        if state.ca.next_attempt is not None:
            times.append(state.ca.next_attempt)
        return max(min(times), now)

    def _log_failure(self, name: str, backoff: Backoff, has_certificate: bool, what: str, now: datetime) -> None:
        assert backoff.next_attempt is not None
        delay = (backoff.next_attempt - now).total_seconds()
        kept = "the current certificate stays served" if has_certificate else "the domain is not served yet"
        log.error(
            "%s: %s (attempt %d): %s; retrying in %.0f s; %s",
            name,
            what,
            backoff.failures,
            backoff.error,
            delay,
            kept,
        )

    def _alert(self, name: str, decision: RenewalDecision, now: datetime) -> None:
        """Log a certificate within 14 days of expiry (or expired) as an alert, once a day."""
        if not decision.alert or decision.days_left is None:
            return
        last = self._state.alerted.get(name)
        if last is not None and now - last < _ALERT_EVERY:
            return
        self._state.alerted[name] = now
        backoff = self._state.backoff.get(name) or self._state.ca
        why = f"; last error: {backoff.error}" if backoff.error else ""
        if decision.days_left < 0:
            log.error("alert: the certificate of %s expired %.1f days ago%s", name, -decision.days_left, why)
        else:
            log.error(
                "alert: the certificate of %s expires in %.1f days and is not renewed%s", name, decision.days_left, why
            )

    # --- observation --------------------------------------------------------------------------

    def backoff(self, name: str | None = None) -> Backoff:
        """The backoff state of ``name``'s orders, or of the CA (``None``)."""
        return self._state.ca if name is None else self._state.backoff.get(name, Backoff())

    def decision(self, name: str) -> RenewalDecision | None:
        return self._state.decisions.get(name)

    @property
    def attempts(self) -> int:
        """Orders started (successful or not) since the start."""
        return self._state.attempts

    def render_metrics(self, now: datetime) -> str:
        """The ACME families appended to the host's ``/metrics`` page."""
        state = self._state
        lines = [
            "# HELP mtasts_publish_certificate_expiring 1 for each ACME-managed policy host whose certificate "
            "expires within 14 days (or has expired): renewal keeps failing.",
            "# TYPE mtasts_publish_certificate_expiring gauge",
            *(
                f'mtasts_publish_certificate_expiring{{name="{n}"}} 1'
                for n, d in sorted(state.decisions.items())
                if d.alert
            ),
            "# HELP mtasts_publish_acme_failures Consecutive failed orders, by policy host name.",
            "# TYPE mtasts_publish_acme_failures gauge",
            *(f'mtasts_publish_acme_failures{{name="{n}"}} {b.failures}' for n, b in sorted(state.backoff.items())),
            "# HELP mtasts_publish_acme_ca_failures Consecutive passes in which the ACME CA could not be used.",
            "# TYPE mtasts_publish_acme_ca_failures gauge",
            f"mtasts_publish_acme_ca_failures {state.ca.failures}",
            "# HELP mtasts_publish_acme_issued_total Certificates issued since the start.",
            "# TYPE mtasts_publish_acme_issued_total counter",
            f"mtasts_publish_acme_issued_total {state.issued}",
            "# HELP mtasts_publish_acme_pending Managed names with no certificate yet.",
            "# TYPE mtasts_publish_acme_pending gauge",
            f"mtasts_publish_acme_pending {sum(1 for d in state.decisions.values() if d.reason.value == 'missing')}",
        ]
        return "\n".join(lines) + "\n"

    # --- the port-80 listener -----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"

        async def app(request: HttpRequest) -> HttpResponse:
            return answer_challenge(self.tokens, request)

        await serve_http(
            reader, writer, app, limits=_CHALLENGE_HTTP, client=client_address, rate=self._rate, observe=self._observe
        )

    def _observe(self, request: HttpRequest | None, response: HttpResponse, sent: int) -> None:
        if request is None or not self.host.log_requests:
            return
        challenge_log.info(
            '%s acme-challenge %s "%s %s" %d %d',
            request.client,
            sanitize(request.header("host") or "-"),
            sanitize(request.method, 16),
            sanitize(request.target),
            response.status,
            sent,
        )


def _urgency(dates: CertificateDates | None) -> datetime:
    """Missing certificates first, then the ones that expire first."""
    return datetime.min.replace(tzinfo=UTC) if dates is None else dates.not_after
