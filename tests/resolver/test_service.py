"""The driver: the cache rules run by the resolver object, with scripted sources and a clock.

The sources here are a twin of the network (a dict of answers and a counter per call): these
tests are about what the driver does with outcomes (single-flight, background re-checks, the
store), which the lab cannot script mid-test. The same behaviours against real DNS and HTTPS
are in test_daemon.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from mtasts.core.policy import parse_policy
from mtasts.resolver.answers import Profile
from mtasts.resolver.cache import CacheEntry, FetchResult, TxtResult, TxtStatus
from mtasts.resolver.service import PolicyResolver, ResolverSettings, Source
from mtasts.resolver.socketmap import Status, encode_reply
from mtasts.resolver.sources import MxResult
from mtasts.resolver.store import MemoryStore, SqliteStore, StoreError

D = "example.com"
BODY1 = b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n"
BODY2 = b"version: STSv1\nmode: enforce\nmx: mx2.example.com\nmax_age: 86400\n"
ANSWER1 = encode_reply(Status.OK, "secure match=mx1.example.com servername=hostname")
ANSWER2 = encode_reply(Status.OK, "secure match=mx2.example.com servername=hostname")
NOTFOUND = encode_reply(Status.NOTFOUND)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedSources:
    """Answers from dicts; ``None`` for a TXT means the lookup fails. ``gate`` holds fetches."""

    def __init__(self) -> None:
        self.txts: dict[str, TxtResult | None] = {D: TxtResult(TxtStatus.FOUND, "id1", 300.0)}
        self.bodies: dict[str, bytes | None] = {D: BODY1}
        self.mxs: dict[str, MxResult] = {}
        self.calls: Counter[str] = Counter()
        self.gate: asyncio.Event | None = None

    async def txt(self, domain: str) -> TxtResult:
        self.calls["txt"] += 1
        await asyncio.sleep(0)
        result = self.txts.get(domain, TxtResult(TxtStatus.ABSENT, ttl=60.0))
        return TxtResult(TxtStatus.FAILED, detail="timeout") if result is None else result

    async def mx(self, domain: str) -> MxResult:
        self.calls["mx"] += 1
        return self.mxs.get(domain, (None, None))

    async def fetch(self, domain: str) -> FetchResult:
        self.calls["fetch"] += 1
        if self.gate is not None:
            await self.gate.wait()
        body = self.bodies.get(domain)
        if body is None:
            return FetchResult(None, detail="connection refused")
        return FetchResult(parse_policy(body), body)


def make(
    sources: ScriptedSources | None = None, store: object = None, **settings: object
) -> tuple[PolicyResolver, ScriptedSources, Clock]:
    sources = sources or ScriptedSources()
    clock = Clock()
    resolver = PolicyResolver(
        sources,
        store or MemoryStore(),  # type: ignore[arg-type]
        ResolverSettings(**settings),  # type: ignore[arg-type]
        clock=clock,
    )
    return resolver, sources, clock


async def settle(resolver: PolicyResolver) -> None:
    """Let background re-checks finish."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_first_lookup_fetches_then_answers_from_cache() -> None:
    resolver, sources, _ = make()
    assert await resolver.reply("postfix", "Example.COM.") == ANSWER1
    assert (await resolver.lookup(D, Profile.POSTFIX)).source is Source.CACHE
    assert await resolver.reply("postfix", D) == ANSWER1
    assert sources.calls == Counter(txt=1, fetch=1)


async def test_stampede_of_first_lookups_causes_one_fetch() -> None:
    resolver, sources, _ = make()
    sources.gate = asyncio.Event()
    queries = [asyncio.create_task(resolver.reply("postfix", D)) for _ in range(50)]
    await settle(resolver)
    sources.gate.set()
    assert set(await asyncio.gather(*queries)) == {ANSWER1}
    assert sources.calls == Counter(txt=1, fetch=1)


async def test_non_domain_keys_and_parent_probes_do_no_network_work() -> None:
    resolver, sources, _ = make()
    for key in (".example.com", ".com", "[mx.example.com]", "mx.example.com:25", "192.0.2.1", "localhost", "a b"):
        assert await resolver.reply("postfix", key) == NOTFOUND
    assert sources.calls == Counter()


async def test_unknown_map_name_is_notfound_and_counted() -> None:
    resolver, sources, _ = make()
    assert await resolver.reply("postfx", D) == NOTFOUND
    assert resolver.counters["unknown_map_name"] == 1
    assert sources.calls == Counter()


async def test_dns_outage_with_a_cached_policy_answers_at_once() -> None:
    resolver, sources, clock = make()
    await resolver.reply("postfix", D)
    sources.txts[D] = None  # DNS down
    clock.now += 301  # the TXT TTL has passed: a re-check is due
    assert await resolver.reply("postfix", D) == ANSWER1  # answered before the re-check runs
    await settle(resolver)
    assert sources.calls["txt"] == 2
    assert resolver.counters["event_txt-failed"] == 1
    assert await resolver.reply("postfix", D) == ANSWER1
    assert sources.calls["txt"] == 2  # the failed re-check is not repeated per query


async def test_id_change_is_picked_up_after_the_background_check() -> None:
    resolver, sources, clock = make()
    await resolver.reply("postfix", D)
    sources.txts[D] = TxtResult(TxtStatus.FOUND, "id2", 300.0)
    sources.bodies[D] = BODY2
    clock.now += 100
    assert await resolver.reply("postfix", D) == ANSWER1  # within the TTL: not re-checked yet
    clock.now += 201
    assert await resolver.reply("postfix", D) == ANSWER1  # this one starts the re-check
    await settle(resolver)
    assert await resolver.reply("postfix", D) == ANSWER2
    assert sources.calls == Counter(txt=2, fetch=2)


async def test_expired_and_unreachable_fails_open_and_temp_is_opt_in() -> None:
    for temp, expected in ((False, NOTFOUND), (True, encode_reply(Status.TEMP, "MTA-STS policy not available yet"))):
        resolver, sources, clock = make(fail_open_temp=temp)
        await resolver.reply("postfix", D)
        sources.txts[D] = None
        sources.bodies[D] = None
        clock.now += 86400
        assert await resolver.reply("postfix", D) == expected
        entry = resolver.entry(D)
        assert entry is not None
        assert entry.expires_at == clock.now  # not extended


async def test_slow_first_discovery_is_answered_fail_open_within_the_timeout() -> None:
    resolver, sources, _ = make(answer_timeout=0.05)
    sources.gate = asyncio.Event()
    assert await resolver.reply("postfix", D) == NOTFOUND
    assert resolver.counters["answer_timeouts"] == 1
    sources.gate.set()
    await settle(resolver)
    assert await resolver.reply("postfix", D) == ANSWER1


async def test_negative_answers_are_cached() -> None:
    resolver, sources, clock = make()
    for _ in range(3):
        assert await resolver.reply("postfix", "nosts.example") == NOTFOUND
    assert sources.calls == Counter(txt=1)
    clock.now += 60
    assert await resolver.reply("postfix", "nosts.example") == NOTFOUND
    assert sources.calls == Counter(txt=2)


async def test_fetch_backoff_for_a_failing_domain() -> None:
    resolver, sources, clock = make()
    sources.bodies[D] = None
    for step in (0, 30, 61, 120, 60):  # up to 271 s after the failed fetch
        clock.now += step
        assert await resolver.reply("postfix", D) == NOTFOUND
    assert sources.calls["fetch"] == 1  # no second attempt within 5 minutes
    clock.now += 301
    sources.bodies[D] = BODY1
    assert await resolver.reply("postfix", D) == ANSWER1
    assert sources.calls["fetch"] == 2


async def test_drift_is_counted() -> None:
    resolver, sources, clock = make()
    await resolver.reply("postfix", D)
    sources.txts[D] = TxtResult(TxtStatus.FOUND, "id2", 300.0)  # new id, same body
    clock.now += 301
    await resolver.reply("postfix", D)
    await settle(resolver)
    assert resolver.counters["event_drift-same-body"] == 1


async def test_wildcard_answer_uses_the_mx_set() -> None:
    resolver, sources, _ = make()
    sources.bodies[D] = b"version: STSv1\nmode: enforce\nmx: *.mx.example.com\nmax_age: 86400\n"
    sources.mxs[D] = (("x.y.mx.example.com", "b.mx.example.com"), 600.0)
    assert await resolver.reply("postfix", D) == encode_reply(
        Status.OK, "secure match=b.mx.example.com servername=hostname"
    )


async def test_proactive_refresh_extends_before_expiry() -> None:
    resolver, sources, clock = make()
    await resolver.reply("postfix", D)
    assert await resolver.refresh_due() == 0
    clock.now += 86400 - 3600  # inside the refresh window
    assert await resolver.refresh_due() == 1
    entry = resolver.entry(D)
    assert entry is not None
    assert entry.expires_at == clock.now + 86400
    assert sources.calls["fetch"] == 2


class BrokenStore(MemoryStore):
    async def put(self, entry: CacheEntry) -> None:
        raise StoreError("the store is down")

    async def load_all(self) -> list[CacheEntry]:
        raise StoreError("the store is down")


async def test_store_outage_degrades_to_memory() -> None:
    resolver, sources, _ = make(store=BrokenStore())
    await resolver.start(refresh=False)
    assert await resolver.reply("postfix", D) == ANSWER1
    assert await resolver.reply("postfix", D) == ANSWER1
    assert resolver.counters["store_errors"] == 2
    assert sources.calls["fetch"] == 1
    await resolver.stop()


async def test_restart_answers_from_the_persisted_cache_with_dns_down(tmp_path: Path) -> None:
    resolver, _, clock = make(store=SqliteStore(tmp_path / "cache.sqlite3"))
    await resolver.start(refresh=False)
    await resolver.reply("postfix", D)
    await resolver.stop()
    down = ScriptedSources()
    down.txts[D] = None
    down.bodies[D] = None
    restarted = PolicyResolver(down, SqliteStore(tmp_path / "cache.sqlite3"), clock=clock)
    await restarted.start(refresh=False)
    clock.now += 3600
    assert await restarted.reply("postfix", D) == ANSWER1
    await settle(restarted)
    assert down.calls["fetch"] == 0
    await restarted.stop()
