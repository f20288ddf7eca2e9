"""The Redis store beyond the shared contract (test_store.py): entries expire with their policy,
a fleet shares what one daemon fetched, and an outage degrades to memory-only.

The real server at 127.0.0.1:6379 for the first three; the outage test starts a private
``redis-server`` on a free port and stops it mid-test (the shared server is not ours to stop).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from mtasts.core.policy import parse_policy
from mtasts.resolver.answers import Profile
from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.redis_store import RedisStore, ttl_of
from mtasts.resolver.service import PolicyResolver, Source
from mtasts.resolver.store import StoreError
from tests.resolver.helpers import REDIS_URL, redis_store
from tests.resolver.postfix import free_port
from tests.resolver.test_service import ANSWER1, BODY1, Clock, D, ScriptedSources

redis = pytest.importorskip("redis.asyncio", reason="the Redis store tests need redis-py (pip install redis)")
POLICY = parse_policy(BODY1)


def policy_entry(domain: str, fetched: float, expires: float) -> CacheEntry:
    return CacheEntry(
        domain,
        policy=POLICY,
        policy_id="id1",
        body=BODY1,
        fetched_at=fetched,
        expires_at=expires,
        txt_next_check=fetched + 300,
    )


async def test_entries_expire_in_redis_with_their_policy() -> None:
    now = time.time()
    async with redis_store(clock=time.time) as store:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            await store.put(policy_entry(D, now, now + 86_400))
            assert 86_390 <= await client.ttl(store.prefix + D) <= 86_400
            await store.put(CacheEntry("nosts.example", negative_until=now + 60, txt_next_check=now + 60))
            assert 50 <= await client.ttl(store.prefix + "nosts.example") <= 60
            # a policy past its max_age is not written, and what was there goes
            await store.put(policy_entry(D, now - 90_000, now - 1))
            assert await client.exists(store.prefix + D) == 0
            # Redis itself drops an entry when the policy expires (no daemon revives it)
            await store.put(policy_entry("short.example", now, now + 1))
            deadline = time.monotonic() + 5
            while await store.get("short.example") is not None:
                assert time.monotonic() < deadline, "the entry outlived its policy"
                time.sleep(0.1)
        finally:
            await client.aclose()


def test_ttl_counts_every_kind_of_useful_time() -> None:
    assert ttl_of(policy_entry(D, 0, 100.5), 0) == 101
    assert ttl_of(CacheEntry(D, retry_after=30), 0) == 30
    assert ttl_of(CacheEntry(D, fail_open_until=5), 10) == 0
    assert ttl_of(CacheEntry(D, expires_at=500), 0) == 0  # an expiry without a policy keeps nothing


async def test_a_policy_fetched_by_one_daemon_is_used_by_another() -> None:
    clock = Clock()
    async with redis_store(clock=clock) as first_store, redis_store(clock=clock) as second_store:
        second_store.prefix = first_store.prefix  # one fleet, one key space
        first_sources, second_sources = ScriptedSources(), ScriptedSources()
        first = PolicyResolver(first_sources, first_store, clock=clock)
        second = PolicyResolver(second_sources, second_store, clock=clock)
        await first.start(refresh=False)
        await second.start(refresh=False)  # started before the fetch: nothing to load yet
        try:
            assert await first.reply("postfix", D) == ANSWER1
            assert await second.reply("postfix", D) == ANSWER1
            assert first_sources.calls["fetch"] == 1
            assert second_sources.calls == {}  # no TXT lookup, no fetch: the fleet's entry
            assert second.counters["store_hits"] == 1
        finally:
            await first.stop()
            await second.stop()


async def test_an_unreachable_redis_is_a_store_error() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    for call in (store.load_all(), store.get(D), store.put(policy_entry(D, 0, 1e12)), store.delete(D)):
        with pytest.raises(StoreError, match=r"Redis redis://127\.0\.0\.1"):
            await call
    await store.close()


@pytest.fixture
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    if shutil.which("redis-server") is None:
        pytest.skip("the Redis outage test needs redis-server (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while (
        subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False).stdout.strip()
        != b"PONG"
    ):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    yield process, url
    process.kill()
    process.wait(10)


async def test_redis_stopped_mid_test_answers_keep_coming_from_memory(
    private_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    process, url = private_redis
    clock = Clock()
    sources = ScriptedSources()
    sources.bodies["other.example"] = BODY1.replace(b"mx1.example.com", b"mx1.other.example")
    sources.txts["other.example"] = sources.txts[D]
    resolver = PolicyResolver(sources, RedisStore(url, timeout=0.5, clock=clock), clock=clock)
    await resolver.start(refresh=False)
    try:
        assert await resolver.reply("postfix", D) == ANSWER1
        assert resolver.counters["store_errors"] == 0
        process.kill()
        process.wait(10)
        started = time.monotonic()
        assert await resolver.reply("postfix", D) == ANSWER1  # from memory, at once
        assert time.monotonic() - started < 0.05
        found = await resolver.lookup("other.example", Profile.POSTFIX)  # a new domain: discovered as usual
        assert found.source is Source.FETCHED
        assert found.answer.data == "secure match=mx1.other.example servername=hostname"
        assert resolver.counters["store_errors"] >= 2  # the read on the miss and the write
        assert await resolver.reply("postfix", "other.example") == found.reply
    finally:
        await resolver.stop()
