"""The resolver's Prometheus text exposition (format 0.0.4) and its admin HTTP listener.

:func:`render_metrics` is pure: it reads the resolver's counters and a :class:`Gauges` value
taken at scrape time, so the exact text is testable. :class:`AdminServer` serves it as
``GET /metrics`` beside ``GET /healthz`` on a plain-HTTP listener (loopback unless the
operator names another address), the admin listener every daemon shares
(:mod:`mtasts.net.admin`: capped connections, an 8 KiB request head, idle and header timeouts).

The same listener takes the one control command, ``POST /cache/flush[?domain=D]``
(``mtasts resolver cache flush``), from loopback peers only, whatever address it is bound to:
reading metrics from a management network is fine, emptying the cache from there is not. A
request that carries an ``Origin`` header (a web page's script, which a browser would send
cross-origin without asking) is refused too.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mtasts.net.admin import PROMETHEUS_TEXT as CONTENT_TYPE
from mtasts.net.admin import AdminListener
from mtasts.net.http11 import HttpRequest, HttpResponse
from mtasts.publish.config import parse_address
from mtasts.resolver.answers import NoAnswer, Profile
from mtasts.resolver.cache import CacheEvent
from mtasts.resolver.keys import classify_key
from mtasts.resolver.overrides import OverrideKind
from mtasts.resolver.service import PolicyResolver, Source
from mtasts.resolver.socketmap import Status

__all__ = ["CONTENT_TYPE", "FLUSH_PATH", "AdminServer", "Gauges", "gauges_of", "parse_admin", "render_metrics"]

log = logging.getLogger("mtasts.resolver")

FLUSH_PATH = "/cache/flush"
_READ_ROUTES = {"/metrics", "/healthz"}
_ROUTES_TEXT = b"not found: GET /metrics, GET /healthz, POST /cache/flush\n"
_TEXT = (("Content-Type", "text/plain"),)

# label values always shown (at 0 until something happens), so a dashboard sees every series
_RESULTS = tuple(status.value.lower() for status in Status)
_PROFILES = (*(profile.value for profile in Profile), "unknown")
_FETCH_OUTCOMES = {"ok": CacheEvent.FETCHED, "failed": CacheEvent.FETCH_FAILED, "backoff": CacheEvent.FETCH_BACKOFF}
_DRIFT = {"same-id": CacheEvent.DRIFT_SAME_ID, "same-body": CacheEvent.DRIFT_SAME_BODY}


@dataclass(frozen=True, slots=True)
class Gauges:
    """The values read at scrape time."""

    cached_domains: int
    cached_policies: int
    refresh_backlog: int
    discoveries_in_progress: int
    overrides_configured: int


def gauges_of(resolver: PolicyResolver) -> Gauges:
    """The resolver's gauges now."""
    return Gauges(
        cached_domains=len(resolver),
        cached_policies=resolver.cached_policies(),
        refresh_backlog=resolver.refresh_backlog(),
        discoveries_in_progress=resolver.discoveries_in_progress(),
        overrides_configured=len(resolver.overrides),
    )


def _label(value: str) -> str:
    """A label value escaped as the text format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_label(value)}"' for name, value in labels.items()) + "}"


def render_metrics(counters: Mapping[str, int], results: Counter[tuple[str, str]], gauges: Gauges) -> str:
    """The ``/metrics`` page from the resolver's ``counters`` and ``results`` (see
    :class:`~mtasts.resolver.service.PolicyResolver`) and the scrape-time ``gauges``."""
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, int]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value}" for labels, value in samples)

    def counter(name: str, help_text: str, key: str) -> None:
        family(name, "counter", help_text, (("", counters.get(key, 0)),))

    def gauge(name: str, help_text: str, value: int) -> None:
        family(name, "gauge", help_text, (("", value),))

    seen = {*_RESULTS}
    extra_results = sorted({result for result, _ in results} - seen)
    family(
        "mtasts_resolver_queries_total",
        "counter",
        "Socketmap replies, by result (ok, notfound, temp, timeout, perm) and profile (the map name).",
        (
            (_labels(result=result, profile=profile), results.get((result, profile), 0))
            for result in (*_RESULTS, *extra_results)
            for profile in _PROFILES
        ),
    )
    family(
        "mtasts_resolver_answers_total",
        "counter",
        "Lookups of mail domains, by where the answer came from.",
        (
            (_labels(source=source.value), counters.get(f"queries_{source.value.replace('-', '_')}", 0))
            for source in Source
            if source is not Source.NOT_A_DOMAIN
        ),
    )
    counter(
        "mtasts_resolver_not_a_domain_total",
        "Keys answered NOTFOUND at once: parent probes, IP literals, [host] and host:port.",
        "queries_not_a_domain",
    )
    counter(
        "mtasts_resolver_cache_hits_total", "Lookups answered from a cached policy or negative entry.", "cache_hits"
    )
    counter(
        "mtasts_resolver_cache_misses_total",
        "Lookups that found nothing usable cached and waited for a discovery.",
        "cache_misses",
    )
    family(
        "mtasts_resolver_fetches_total",
        "counter",
        "Policy fetches, by outcome (ok, failed; backoff: due but skipped after a recent failure of that id).",
        (
            (_labels(outcome=outcome), counters.get(f"event_{event.value}", 0))
            for outcome, event in _FETCH_OUTCOMES.items()
        ),
    )
    counter(
        "mtasts_resolver_dns_failures_total",
        "TXT lookups that failed (the cached policy, if any, kept).",
        f"event_{CacheEvent.TXT_FAILED.value}",
    )
    counter(
        "mtasts_resolver_policy_changes_total",
        "Fetched policies that replaced a different cached one.",
        f"event_{CacheEvent.POLICY_CHANGED.value}",
    )
    family(
        "mtasts_resolver_drift_events_total",
        "counter",
        "Policy drift seen: the same id with a different body (same-id), a new id with the same body (same-body).",
        ((_labels(kind=kind), counters.get(f"event_{event.value}", 0)) for kind, event in _DRIFT.items()),
    )
    counter(
        "mtasts_resolver_expired_dropped_total",
        "Expired policies given up (never extended without a fetch).",
        f"event_{CacheEvent.EXPIRED_DROPPED.value}",
    )
    family(
        "mtasts_resolver_no_answer_total",
        "counter",
        "Cached policies answered NOTFOUND instead of a broken answer, by reason.",
        ((_labels(reason=reason.value), counters.get(f"no_answer_{reason.value}", 0)) for reason in NoAnswer),
    )
    family(
        "mtasts_resolver_overrides_applied_total",
        "counter",
        "Answers given by an operator's override, by kind.",
        ((_labels(kind=kind.value), counters.get(f"override_{kind.value}", 0)) for kind in OverrideKind),
    )
    counter(
        "mtasts_resolver_store_errors_total",
        "Store reads and writes that failed (memory kept serving).",
        "store_errors",
    )
    counter(
        "mtasts_resolver_store_hits_total",
        "Policies taken from the shared store (fetched by another daemon).",
        "store_hits",
    )
    counter("mtasts_resolver_refreshes_total", "Proactive refreshes started before expiry.", "refreshes")
    counter(
        "mtasts_resolver_flushed_total",
        "Entries dropped from memory by cache flush (POST /cache/flush).",
        "flushed",
    )
    counter(
        "mtasts_resolver_answer_timeouts_total",
        "First lookups answered fail-open because the discovery was slow.",
        "answer_timeouts",
    )
    counter(
        "mtasts_resolver_malformed_requests_total",
        "Socketmap requests that were not well formed.",
        "malformed_requests",
    )
    counter("mtasts_resolver_internal_errors_total", "Unexpected errors (bugs), each logged.", "internal_errors")
    gauge(
        "mtasts_resolver_cached_domains",
        "Domains with an entry in memory (policy, negative or failure).",
        gauges.cached_domains,
    )
    gauge("mtasts_resolver_cached_policies", "Domains with a valid policy in memory.", gauges.cached_policies)
    gauge(
        "mtasts_resolver_refresh_backlog",
        "Cached policies due for a proactive refresh and not yet being refreshed.",
        gauges.refresh_backlog,
    )
    gauge(
        "mtasts_resolver_discoveries_in_progress",
        "Domains being looked up now (one each at most).",
        gauges.discoveries_in_progress,
    )
    gauge("mtasts_resolver_overrides_configured", "Overrides loaded (active or expired).", gauges.overrides_configured)
    return "\n".join(out) + "\n"


def parse_admin(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or a bare ``PORT`` (on 127.0.0.1); ``ValueError`` says why not."""
    text = text.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    address = parse_address(text)
    return address.host, address.port


class AdminServer(AdminListener):
    """``GET /metrics`` and ``GET /healthz`` over plain HTTP, and ``POST /cache/flush`` from
    loopback peers; anything else ``404`` (``405`` for another method on those three). Nothing is
    bound before :meth:`start`."""

    def __init__(self, resolver: PolicyResolver, host: str, port: int) -> None:
        super().__init__("resolver admin", self.app, host, port)
        self.resolver = resolver

    async def app(self, request: HttpRequest) -> HttpResponse:
        """The answer to one admin request."""
        if request.path == FLUSH_PATH:
            return await self._flush(request)
        if request.path not in _READ_ROUTES:
            return HttpResponse(404, _ROUTES_TEXT)
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, b"method not allowed\n", (("Content-Type", "text/plain"), ("Allow", "GET, HEAD")))
        if request.path == "/healthz":
            return HttpResponse(200, b"ok\n")
        resolver = self.resolver
        text = render_metrics(resolver.counters, resolver.results, gauges_of(resolver))
        return HttpResponse(200, text.encode(), (("Content-Type", CONTENT_TYPE),))

    async def _flush(self, request: HttpRequest) -> HttpResponse:
        """``POST /cache/flush`` (every domain) or ``POST /cache/flush?domain=D``: drop from
        memory and from the daemon's store (:meth:`PolicyResolver.flush`); the answer is JSON,
        ``{"flushed": N, "store": M, "store_error": null or why, "domain": D or null}``."""
        if request.method != "POST":
            return HttpResponse(405, b"method not allowed\n", (*_TEXT, ("Allow", "POST")))
        if not _is_loopback(request.client):
            return HttpResponse(403, b"cache flush is accepted from loopback peers only\n", _TEXT)
        if request.header("origin") is not None:
            return HttpResponse(403, b"cache flush is not accepted from web pages (Origin header)\n", _TEXT)
        query = request.target.partition("?")[2]
        try:
            fields = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=4)
        except ValueError:
            return HttpResponse(400, b"bad query string: use ?domain=DOMAIN or nothing\n", _TEXT)
        if set(fields) - {"domain"} or len(fields.get("domain", ())) > 1:
            return HttpResponse(400, b"bad query string: use ?domain=DOMAIN or nothing\n", _TEXT)
        domain = None
        if "domain" in fields:
            domain = classify_key(fields["domain"][0]).domain
            if domain is None:
                return HttpResponse(400, b"domain: not a mail domain\n", _TEXT)
        flushed = await self.resolver.flush(domain)
        log.info(
            "cache flush from %s: %d %s dropped from memory, %d from the store (%s)",
            request.client,
            flushed.memory,
            "entry" if flushed.memory == 1 else "entries",
            flushed.store,
            domain or "every domain",
        )
        document = {"flushed": flushed.memory, "store": flushed.store, "store_error": flushed.store_error}
        body = json.dumps({**document, "domain": domain}).encode() + b"\n"
        return HttpResponse(200, body, (("Content-Type", "application/json"),))


def _is_loopback(client: str) -> bool:
    """Whether a peer address is this host's loopback (``127.0.0.0/8``, ``::1``, or IPv4
    loopback mapped into IPv6)."""
    try:
        address = ipaddress.ip_address(client.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
