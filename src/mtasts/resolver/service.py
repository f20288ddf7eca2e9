"""The resolver application object: socketmap requests in, replies out, the cache kept fresh.

A thin asyncio driver around the pure rules of :mod:`mtasts.resolver.cache`: it keeps every
entry in memory (the answer path never waits on a store or the network when a policy is
cached), runs one discovery per domain at a time (a stampede of first lookups causes one
fetch), writes changed entries to the :class:`~mtasts.resolver.store.PolicyStore`, and
refreshes cached policies before they expire with bounded concurrency. The socketmap server
(:mod:`mtasts.resolver.server`) only frames bytes and calls :meth:`PolicyResolver.reply_now`
(every answer that needs no waiting, synchronously: the hot path) or, when that says ``None``,
:meth:`PolicyResolver.reply` in a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from mtasts.resolver.answers import DEFAULT_ANSWER_SETTINGS, Answer, AnswerSettings, Profile, render_answer
from mtasts.resolver.cache import (
    DEFAULT_RULES,
    CacheEntry,
    CacheEvent,
    CacheRules,
    Next,
    QueryPlan,
    after_fetch,
    after_mx,
    after_txt,
    on_query,
    refresh_at,
)
from mtasts.resolver.keys import classify_key
from mtasts.resolver.overrides import Override, active
from mtasts.resolver.socketmap import Status, encode_reply
from mtasts.resolver.sources import Sources
from mtasts.resolver.store import PolicyStore, StoreError

__all__ = ["Flushed", "Lookup", "PolicyResolver", "ResolverSettings", "Source"]

log = logging.getLogger("mtasts.resolver")

NOTFOUND = encode_reply(Status.NOTFOUND)
_PROFILES = {profile.value: profile for profile in Profile}

_Rendered = tuple[CacheEntry, bytes, bool, tuple[str, str]]
"""A rendered reply: the entry it was rendered from, the reply, whether the policy has a ``*.``
pattern (its MX hosts are then looked up: :meth:`PolicyResolver.reply_now` must know without
scanning the patterns on every answer) and its key in ``results`` (one shared tuple per
result and profile, so the hot path neither parses the reply nor builds a key)."""


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """How the resolver behaves beyond the cache rules.

    ``fail_open_temp`` answers ``TEMP`` instead of ``NOTFOUND`` when nothing is cached and DNS
    or HTTPS fail (mail then waits instead of going out without MTA-STS); ``answer_timeout``
    is the longest a query waits for a first discovery before it is answered fail-open (the
    discovery goes on); the refresh sweep runs every ``refresh_interval`` seconds with at most
    ``refresh_concurrency`` refreshes at once.
    """

    rules: CacheRules = DEFAULT_RULES
    answers: AnswerSettings = DEFAULT_ANSWER_SETTINGS
    fail_open_temp: bool = False
    answer_timeout: float = 5.0
    refresh_interval: float = 60.0
    refresh_concurrency: int = 8

    def __post_init__(self) -> None:
        if self.answer_timeout <= 0 or self.refresh_interval <= 0:
            raise ValueError("answer_timeout and refresh_interval must be positive")
        if self.refresh_concurrency < 1:
            raise ValueError("refresh_concurrency must be at least 1")


@dataclass(frozen=True, slots=True)
class Flushed:
    """What a cache flush dropped: entries in memory, entries in the store, and the store's
    error if it failed (memory is flushed all the same)."""

    memory: int
    store: int
    store_error: str | None = None


class Source(StrEnum):
    """Where an answer came from (``mtasts resolver query``)."""

    CACHE = "cache"
    FETCHED = "fetched"
    NEGATIVE = "negative"
    FAIL_OPEN = "fail-open"
    NOT_A_DOMAIN = "not-a-domain"
    OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class Lookup:
    """One resolution explained: the answer, where it came from, and the entry behind it."""

    key: str
    domain: str | None
    profile: Profile
    source: Source
    answer: Answer
    entry: CacheEntry | None = None
    reply: bytes = field(default=b"", repr=False)
    override: Override | None = None


class PolicyResolver:
    """Answers socketmap lookups. Construction does no I/O; :meth:`start` loads the store."""

    def __init__(
        self,
        sources: Sources,
        store: PolicyStore,
        settings: ResolverSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = sources
        self.store = store
        self.settings = settings or ResolverSettings()
        self.clock = clock
        self.counters: Counter[str] = Counter()
        # socketmap replies by (result, profile): result is the reply's status in lower case
        # (ok, notfound, temp, ...), profile the map name ("unknown" for a name we do not serve)
        self.results: Counter[tuple[str, str]] = Counter()
        # per-domain operator decisions (mtasts.resolver.overrides), applied before the cache;
        # replaced whole (serve loads them at start and on SIGHUP)
        self.overrides: dict[str, Override] = {}
        self._entries: dict[str, CacheEntry] = {}
        # rendered replies: profile name -> domain -> _Rendered; a domain's are dropped whenever
        # its entry changes (_record), so a reply found there is always the current entry's
        self._rendered: dict[str, dict[str, _Rendered]] = {name: {} for name in _PROFILES}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        # discoveries that began before a flush of their domain (forget): they run to their end
        # (a query may be waiting on one) but what they found is not recorded, since it may
        # derive from the forgotten entry (an unchanged id keeps the old policy)
        self._stale: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None
        self._warned_names: set[str] = set()
        self._fail_open = _fail_open_reply(self.settings)
        # a subclass with its own reply() (zones) answers everything there unless it also
        # provides reply_now(): the fast path must not bypass its mapping of names
        cls = type(self)
        self._answers_now = cls.reply is PolicyResolver.reply or cls.reply_now is not PolicyResolver.reply_now

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, refresh: bool = True) -> None:
        """Load the persisted entries into memory; start the refresh sweep."""
        try:
            for entry in await self.store.load_all():
                self._entries[entry.domain] = entry
        except StoreError as exc:
            self.counters["store_errors"] += 1
            log.warning("cannot load the persisted cache, starting empty: %s", exc)
        if refresh and self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_loop(), name="mtasts resolver refresh")

    async def stop(self) -> None:
        """Stop refreshing, end discoveries in progress, close the store."""
        tasks = [
            t for t in (self._refresher, *self._inflight.values(), *self._stale, *self._background) if t is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refresher = None
        with contextlib.suppress(StoreError):
            await self.store.close()

    def reconfigure(self, settings: ResolverSettings) -> None:
        """Answer with ``settings`` from now on (a reload): the rendered replies, written with
        the old answer settings, are dropped; the cache itself is kept."""
        self.settings = settings
        self._fail_open = _fail_open_reply(settings)
        self._drop_rendered(None)

    def forget(self, domain: str | None = None) -> int:
        """Drop ``domain`` (already canonical; ``None``: every domain) from memory: its entry and
        every reply rendered from it, so that the next lookup discovers afresh (``cache flush``).
        How many entries were dropped. The store is not touched (the caller flushes it first: a
        daemon asks the store on a miss). A discovery of a forgotten domain already under way
        finishes, but its result is not kept."""
        if domain is None:
            dropped = len(self._entries)
            self._entries.clear()
            self._stale.update(self._inflight.values())
            self._inflight.clear()
        else:
            dropped = 1 if self._entries.pop(domain, None) is not None else 0
            task = self._inflight.pop(domain, None)
            if task is not None:
                self._stale.add(task)
        self._drop_rendered(domain)
        self.counters["flushed"] += dropped
        return dropped

    async def flush(self, domain: str | None = None) -> Flushed:
        """:meth:`forget` ``domain`` (``None``: every domain), and delete it from the store too
        (``POST /cache/flush``): whatever store the daemon was started with, its next lookup of
        the domain discovers afresh. Memory is forgotten again once the store is done, so an
        entry a lookup brought back from the store meanwhile does not survive the flush. A
        store error is counted and reported, not raised (memory is flushed either way)."""
        memory = self.forget(domain)
        stored = 0
        error = None
        try:
            domains = [domain] if domain is not None else [entry.domain for entry in await self.store.load_all()]
            for name in domains:
                if domain is None or await self.store.get(name) is not None:
                    await self.store.delete(name)
                    stored += 1
        except StoreError as exc:
            self.counters["store_errors"] += 1
            log.warning("cache flush: cannot delete from the store: %s", exc)
            error = str(exc)
        self.forget(domain)
        return Flushed(memory, stored, error)

    def _drop_rendered(self, domain: str | None) -> None:
        """Forget the replies rendered for ``domain`` (``None``: all); a subclass that keeps
        replies of its own (zones) drops them here too."""
        for rendered in self._rendered.values():
            if domain is None:
                rendered.clear()
            else:
                rendered.pop(domain, None)

    def entry(self, domain: str) -> CacheEntry | None:
        """The in-memory entry of ``domain``."""
        return self._entries.get(domain)

    def __len__(self) -> int:
        return len(self._entries)

    # --- the answer path ---------------------------------------------------------------------

    def reply_now(self, name: str, key: str) -> bytes | None:
        """The socketmap reply to ``key`` in map ``name`` when it can be given without waiting,
        else ``None`` (then :meth:`reply` does the network work). Counted as :meth:`reply`.

        This is the server's hot path, called from ``data_received`` with no task. A valid
        cached policy is one dict look-up: the rendered replies of each profile are kept by
        domain (and dropped whenever the domain's entry changes), and a key that already is a
        canonical domain (Postfix sends domains as written, mostly lower case) is found without
        :func:`~mtasts.resolver.keys.classify_key`. Negative entries, parent probes and other
        keys that are not domains, overrides and unknown map names are answered here too. A
        subclass that overrides :meth:`reply` and not this method gets ``None`` here, so its
        :meth:`reply` still answers everything."""
        return self._reply_now(name, key) if self._answers_now else None

    def _reply_now(self, name: str, key: str) -> bytes | None:
        rendered = self._rendered.get(name)
        if rendered is None:
            reply = self._unknown_name(name)
            self.results[(_result_of(reply), "unknown")] += 1
            return reply
        hit = rendered.get(key) if not self.overrides else None
        if hit is not None:
            entry, reply, wildcard, counted_as = hit
            now = self.clock()
            if now < entry.expires_at:
                counters = self.counters
                counters["queries_cache"] += 1
                counters["cache_hits"] += 1
                if now >= entry.txt_next_check or (wildcard and now >= entry.mx_expires_at):
                    self._start(key, refresh=False)
                self.results[counted_as] += 1
                return reply
        found = self._slow_now(name, key)
        if found is None:
            return None
        self.results[(_result_of(found), name)] += 1
        return found

    def _slow_now(self, name: str, key: str) -> bytes | None:
        """:meth:`reply_now` for a key that is not a canonical domain with a rendered reply."""
        profile = _PROFILES[name]
        domain = classify_key(key).domain
        if domain is None:
            self.counters["queries_not_a_domain"] += 1
            return NOTFOUND
        now = self.clock()
        found = self._lookup_now(domain, profile, key, self._entries.get(domain), now)
        return None if found is None else found.reply

    async def reply(self, name: str, key: str) -> bytes:
        """The socketmap reply to the lookup of ``key`` in map ``name`` (counted by result and
        profile for the metrics): :meth:`reply_now`, or the discovery's answer (bounded by
        ``answer_timeout``)."""
        reply = self._reply_now(name, key)
        if reply is not None:
            return reply
        reply = await self._reply(name, key)
        self.results[(_result_of(reply), name if name in _PROFILES else "unknown")] += 1
        return reply

    def _unknown_name(self, name: str) -> bytes:
        self.counters["unknown_map_name"] += 1
        if name not in self._warned_names and len(self._warned_names) < 100:
            self._warned_names.add(name)
            known = ", ".join(_PROFILES)
            log.warning("unknown socketmap name %r: answering NOTFOUND (known: %s)", name[:40], known)
        return NOTFOUND

    async def _reply(self, name: str, key: str) -> bytes:
        profile = _PROFILES.get(name)
        if profile is None:
            return self._unknown_name(name)
        domain = classify_key(key).domain
        if domain is None:
            self.counters["queries_not_a_domain"] += 1
            return NOTFOUND
        return (await self.lookup(domain, profile, key=key)).reply

    async def lookup(self, domain: str, profile: Profile, *, key: str | None = None) -> Lookup:
        """Resolve ``domain`` (already canonical) for ``profile``, explained."""
        found = self._lookup_now(domain, profile, key, self._entries.get(domain), self.clock())
        if found is not None:
            return found
        self.counters["cache_misses"] += 1
        await self._wait_for_discovery(domain)
        entry = self._entries.get(domain)
        decision = on_query(entry, self.clock())
        if decision.plan is QueryPlan.DISCOVER:  # still nothing: the discovery is slow
            decision = type(decision)(QueryPlan.FAIL_OPEN)
        return self._explain(domain, profile, key, entry, decision.plan, Source.FETCHED)

    def _lookup_now(
        self, domain: str, profile: Profile, key: str | None, entry: CacheEntry | None, now: float
    ) -> Lookup | None:
        """The explained answer when the cache rules allow one now (override, cached, negative,
        fail-open hold), with the background re-check they ask for; ``None``: discover first."""
        override = active(self.overrides, domain, now) if self.overrides else None
        if override is not None:
            return self._by_override(domain, profile, override, key)
        decision = on_query(entry, now)
        if decision.plan is QueryPlan.DISCOVER:
            return None
        if decision.plan is QueryPlan.CACHED or decision.plan is QueryPlan.NEGATIVE:
            self.counters["cache_hits"] += 1
        if decision.recheck or decision.refresh_mx:
            self._start(domain, refresh=False)
        return self._explain(domain, profile, key, entry, decision.plan, Source.CACHE)

    def _explain(
        self,
        domain: str,
        profile: Profile,
        key: str | None,
        entry: CacheEntry | None,
        plan: QueryPlan,
        source: Source,
    ) -> Lookup:
        if plan is QueryPlan.CACHED and entry is not None and entry.policy is not None:
            self.counters[f"queries_{source.value}"] += 1
            rendered = self._rendered[profile.value]
            cached = rendered.get(domain)
            if cached is not None and cached[0] is entry:
                return Lookup(key or domain, domain, profile, source, _answer_of(cached[1]), entry, cached[1])
            answer = render_answer(
                domain, entry.policy, profile, mx_hosts=entry.mx_hosts, body=entry.body, settings=self.settings.answers
            )
            if answer.data is None:
                self.counters[f"no_answer_{answer.reason}"] += 1
                reply = NOTFOUND
            else:
                reply = encode_reply(Status.OK, answer.data)
            # keyed by the entry's own string (the one _entries holds), not a copy from the key
            rendered[entry.domain] = (entry, reply, entry.has_wildcard(), _counted_as(reply, profile.value))
            return Lookup(key or domain, domain, profile, source, answer, entry, reply)
        if plan is QueryPlan.NEGATIVE:
            self.counters["queries_negative"] += 1
            return Lookup(key or domain, domain, profile, Source.NEGATIVE, Answer(None), entry, NOTFOUND)
        self.counters["queries_fail_open"] += 1
        return Lookup(key or domain, domain, profile, Source.FAIL_OPEN, Answer(None), entry, self._fail_open)

    def _by_override(self, domain: str, profile: Profile, override: Override, key: str | None) -> Lookup:
        """The answer an operator's override gives: no network, no cache (a wildcard in its
        patterns expands against the MX hosts already cached for the domain, if any)."""
        self.counters["queries_override"] += 1
        self.counters[f"override_{override.kind.value}"] += 1
        entry = self._entries.get(domain)
        if override.policy is None:
            answer = Answer(None)
        else:
            answer = render_answer(
                domain,
                override.policy,
                profile,
                mx_hosts=entry.mx_hosts if entry is not None else (),
                body=override.body,
                settings=self.settings.answers,
            )
        reply = NOTFOUND if answer.data is None else encode_reply(Status.OK, answer.data)
        return Lookup(key or domain, domain, profile, Source.OVERRIDE, answer, entry, reply, override)

    async def _wait_for_discovery(self, domain: str) -> None:
        task = self._start(domain, refresh=False)
        try:
            await asyncio.wait_for(asyncio.shield(task), self.settings.answer_timeout)
        except TimeoutError:
            self.counters["answer_timeouts"] += 1

    # --- discovery -----------------------------------------------------------------------------

    def _start(self, domain: str, *, refresh: bool) -> asyncio.Task[None]:
        """The discovery of ``domain`` in progress, or a new one (one per domain at a time)."""
        task = self._inflight.get(domain)
        if task is None:
            task = asyncio.create_task(self._discover(domain, refresh), name=f"mtasts resolver {domain}")
            self._inflight[domain] = task
            task.add_done_callback(lambda done: self._discovered(domain, done))
        return task

    def _discovered(self, domain: str, task: asyncio.Task[None]) -> None:
        if self._inflight.get(domain) is task:  # (after a flush, a newer discovery may be there)
            del self._inflight[domain]
        self._stale.discard(task)

    async def _discover(self, domain: str, refresh: bool) -> None:
        try:
            await self._discover_steps(domain, refresh)
        except Exception:  # a bug: the cache keeps what it had, answers go on
            self.counters["internal_errors"] += 1
            log.exception("resolver: unexpected error resolving %s", domain)

    async def _discover_steps(self, domain: str, refresh: bool) -> None:
        rules = self.settings.rules
        now = self.clock()
        entry = self._entries.get(domain)
        if entry is None or not entry.valid(now):
            entry = await self._shared(domain, entry, now) or entry
        entry = entry or CacheEntry(domain)
        events: tuple[CacheEvent, ...] = ()
        if not entry.valid(now) or now >= entry.txt_next_check or refresh:
            txt = await self.sources.txt(domain)
            entry = self._entries.get(domain) or entry
            entry, step, events = after_txt(entry, txt, self.clock(), rules, refresh=refresh)
            if step is Next.FETCH and txt.record_id is not None:
                self.counters["fetches"] += 1
                fetched = await self.sources.fetch(domain)
                entry, fetch_events = after_fetch(entry, txt.record_id, txt.ttl, fetched, self.clock(), rules)
                events += fetch_events
        now = self.clock()
        if entry.valid(now) and entry.has_wildcard() and now >= entry.mx_expires_at:
            hosts, ttl = await self.sources.mx(domain)
            entry = after_mx(entry, hosts, ttl, self.clock(), rules)
        if asyncio.current_task() in self._stale:  # the domain was flushed meanwhile
            return
        self._record(domain, entry, events)
        await self._persist(entry)

    async def _shared(self, domain: str, mine: CacheEntry | None, now: float) -> CacheEntry | None:
        """A valid entry another daemon put in the store (a fleet shares one Redis), or ``None``.

        Asked only where memory has no valid policy, inside the single-flight discovery, so a
        stampede costs one store read; a store error is counted and the discovery goes on."""
        try:
            shared = await self.store.get(domain)
        except StoreError as exc:
            self.counters["store_errors"] += 1
            log.debug("cannot read %s from the store: %s", domain, exc)
            return None
        if shared is None or not shared.valid(now) or (mine is not None and shared.fetched_at < mine.fetched_at):
            return None
        self.counters["store_hits"] += 1
        return shared

    def _record(self, domain: str, entry: CacheEntry, events: tuple[CacheEvent, ...]) -> None:
        self._entries[domain] = entry
        self._drop_rendered(domain)
        for event in events:
            self.counters[f"event_{event.value}"] += 1
            if event in (CacheEvent.DRIFT_SAME_ID, CacheEvent.DRIFT_SAME_BODY):
                log.warning("%s: policy drift (%s): id %s", domain, event.value, entry.policy_id)
            elif event in (CacheEvent.FETCH_FAILED, CacheEvent.TXT_FAILED):
                log.info("%s: %s: %s", domain, event.value, entry.last_error)
            else:
                log.debug("%s: %s", domain, event.value)

    async def _persist(self, entry: CacheEntry) -> None:
        try:
            await self.store.put(entry)
        except StoreError as exc:
            self.counters["store_errors"] += 1
            log.warning("cannot persist %s: %s", entry.domain, exc)

    # --- proactive refresh -------------------------------------------------------------------

    async def refresh_due(self) -> int:
        """Refresh every cached policy whose refresh time has come (bounded concurrency); how
        many were refreshed. The sweep calls this every ``refresh_interval``."""
        due = self._due(self.clock())
        slots = asyncio.Semaphore(self.settings.refresh_concurrency)

        async def one(domain: str) -> None:
            async with slots:
                await self._start(domain, refresh=True)

        await asyncio.gather(*(one(domain) for domain in due))
        self.counters["refreshes"] += len(due)
        return len(due)

    def _due(self, now: float) -> list[str]:
        """The domains whose proactive refresh is due now and not already running."""
        return [
            domain
            for domain, entry in self._entries.items()
            if (when := refresh_at(entry, self.settings.rules)) is not None
            and now >= when
            and not (entry.failed_id == entry.policy_id and now < entry.retry_after)
            and domain not in self._inflight
        ]

    def refresh_backlog(self) -> int:
        """How many cached policies are due for refresh and not yet being refreshed (a gauge: it
        grows when the sweep cannot keep up or the policy hosts keep failing)."""
        return len(self._due(self.clock()))

    def discoveries_in_progress(self) -> int:
        """How many domains are being discovered now (one discovery per domain at most)."""
        return len(self._inflight)

    def cached_policies(self) -> int:
        """How many domains have a valid (non-expired) policy in memory."""
        now = self.clock()
        return sum(1 for entry in self._entries.values() if entry.policy is not None and entry.valid(now))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_interval)
            await self.refresh_due()


def _fail_open_reply(settings: ResolverSettings) -> bytes:
    """The reply when nothing is cached and DNS or HTTPS fail: ``NOTFOUND``, or ``TEMP`` by choice."""
    return encode_reply(Status.TEMP, "MTA-STS policy not available yet") if settings.fail_open_temp else NOTFOUND


_RESULTS = {encode_reply(Status.NOTFOUND): "notfound"}
_COUNTED_AS: dict[tuple[str, str], tuple[str, str]] = {}


def _counted_as(reply: bytes, profile: str) -> tuple[str, str]:
    key = (_result_of(reply), profile)
    return _COUNTED_AS.setdefault(key, key)


def _result_of(reply: bytes) -> str:
    """``ok``, ``notfound``, ``temp``, ``timeout`` or ``perm``: the status of a socketmap reply."""
    known = _RESULTS.get(reply)
    if known is not None:
        return known
    payload = reply[reply.index(b":") + 1 : -1]
    return payload.split(b" ", 1)[0].decode("ascii", "replace").lower()


def _answer_of(reply: bytes) -> Answer:
    """The answer a cached reply carries (for :class:`Lookup`; not on the socketmap path)."""
    payload = reply[reply.index(b":") + 1 : -1].decode()
    return Answer(payload[3:]) if payload.startswith("OK ") else Answer(None)
