"""The policy store contract, run on every store: memory, SQLite, Redis (the real server at
127.0.0.1:6379, a key prefix of its own per test, removed afterwards) and PostgreSQL (the real
server at 127.0.0.1:5432, database ``test``, a schema of its own per test, dropped afterwards, so
parallel runs never share a table); then what PostgreSQL adds: expiry, a fleet, an outage."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mtasts.core.policy import parse_policy
from mtasts.resolver.answers import Profile
from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.pg_store import PostgresStore
from mtasts.resolver.service import PolicyResolver, Source
from mtasts.resolver.store import (
    MemoryStore,
    PolicyStore,
    SqliteStore,
    StoreError,
    entry_from_json,
    entry_to_json,
    hide_password,
    useful_until,
)
from tests.resolver.helpers import redis_store
from tests.resolver.postfix import free_port
from tests.resolver.test_service import ANSWER1, BODY1, Clock, D, ScriptedSources

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def pg_store(
    *, clock: Callable[[], float] = lambda: 0.0, schema: str | None = None
) -> AsyncIterator[PostgresStore]:
    """A :class:`PostgresStore` on the real server, in a schema of its own (dropped afterwards).

    The default clock is 0 so the contract's entries (dated from the epoch) are live."""
    import psycopg

    schema = schema or f"mtasts_test_{uuid.uuid4().hex[:16]}"
    store = PostgresStore(PG_URL, table=f"{schema}.cache", clock=clock)
    try:
        yield store
    finally:
        await store.close()
        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as connection:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


BODY = "version: STSv1\r\nmode: enforce\r\nmx: *.mx.example.com\r\nmax_age: 86400\r\nnote: bücher\r\n".encode()
ENTRY = CacheEntry(
    "example.com",
    policy=parse_policy(BODY),
    policy_id="id1",
    body=BODY,
    fetched_at=100.0,
    expires_at=86500.0,
    txt_next_check=400.0,
    failed_id="id2",
    retry_after=700.0,
    last_error="HTTP 500",
    mx_hosts=("a.mx.example.com",),
    mx_expires_at=900.0,
)
NEGATIVE = CacheEntry("nosts.example", negative_until=300.0, txt_next_check=300.0, last_error="NXDOMAIN")


@pytest.fixture(params=["memory", "sqlite", "redis", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PolicyStore]:
    if request.param == "redis":
        async with redis_store() as shared:
            yield shared
        return
    if request.param == "postgresql":
        async with pg_store() as fleet:
            yield fleet
        return
    made: PolicyStore = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "sub" / "c.sqlite3")
    yield made
    await made.close()


async def test_put_get_round_trip(store: PolicyStore) -> None:
    assert await store.get("example.com") is None
    await store.put(ENTRY)
    await store.put(NEGATIVE)
    assert await store.get("example.com") == ENTRY
    assert await store.get("nosts.example") == NEGATIVE
    assert sorted(e.domain for e in await store.load_all()) == ["example.com", "nosts.example"]


async def test_put_replaces_and_delete_removes(store: PolicyStore) -> None:
    await store.put(ENTRY)
    await store.put(CacheEntry("example.com", negative_until=5.0))
    assert await store.get("example.com") == CacheEntry("example.com", negative_until=5.0)
    await store.delete("example.com")
    await store.delete("example.com")  # deleting what is gone is fine
    assert await store.load_all() == []


async def test_sqlite_persists_across_instances_and_skips_a_corrupt_row(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    first = SqliteStore(path)
    await first.put(ENTRY)
    await first.put(NEGATIVE)
    await first.close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE resolver_cache SET entry = 'junk' WHERE domain = 'nosts.example'")
    second = SqliteStore(path)
    assert await second.load_all() == [ENTRY]
    with pytest.raises(StoreError):
        await second.get("nosts.example")
    await second.close()


async def test_sqlite_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    store = SqliteStore(tmp_path / "file" / "c.sqlite3")
    with pytest.raises(StoreError):
        await store.load_all()


@pytest.mark.parametrize("text", ['{"format": 2}', "[]", "{", '{"format": 1}'])
def test_unreadable_documents_are_store_errors(text: str) -> None:
    with pytest.raises(StoreError):
        entry_from_json(text)


def test_document_keeps_the_body_as_fetched() -> None:
    assert entry_from_json(entry_to_json(ENTRY)).body == BODY


async def test_a_corrupt_row_costs_only_itself(store: PolicyStore) -> None:
    await store.put(ENTRY)
    await store.put(NEGATIVE)
    await _corrupt(store, "nosts.example")
    assert await store.load_all() == [ENTRY]
    with pytest.raises(StoreError):
        await store.get("nosts.example")


async def _corrupt(store: PolicyStore, domain: str) -> None:
    """Overwrite ``domain``'s stored document with junk, behind the store's back."""
    if isinstance(store, MemoryStore):
        store._entries[domain] = "junk"
    elif isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as connection:
            connection.execute("UPDATE resolver_cache SET entry = 'junk' WHERE domain = ?", (domain,))
    elif isinstance(store, PostgresStore):
        import psycopg

        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as connection:
            await connection.execute(f"UPDATE {store.table} SET entry = 'junk' WHERE domain = %s", (domain,))
    else:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379/0")
        await client.set(store.prefix + domain, "junk")  # type: ignore[attr-defined]
        await client.aclose()


def test_useful_until_counts_every_kind_of_useful_time() -> None:
    assert useful_until(ENTRY) == ENTRY.expires_at
    assert useful_until(NEGATIVE) == 300.0
    assert useful_until(CacheEntry(D, retry_after=30, fail_open_until=40)) == 40
    assert useful_until(CacheEntry(D, expires_at=500)) == 0  # an expiry without a policy keeps nothing


def test_passwords_are_hidden_from_messages() -> None:
    assert hide_password("postgresql://u:secret@db.example/test") == "postgresql://u:***@db.example/test"
    assert hide_password("redis://:secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert hide_password("postgresql://u@db.example/test") == "postgresql://u@db.example/test"


# --- PostgreSQL beyond the contract --------------------------------------------------------------


def policy_entry(domain: str, fetched: float, expires: float) -> CacheEntry:
    return CacheEntry(
        domain,
        policy=parse_policy(BODY1),
        policy_id="id1",
        body=BODY1,
        fetched_at=fetched,
        expires_at=expires,
        txt_next_check=fetched + 300,
    )


async def test_postgresql_entries_expire_with_their_policy() -> None:
    clock = Clock()
    async with pg_store(clock=clock) as store:
        now = clock.now
        await store.put(policy_entry(D, now, now + 86_400))
        await store.put(CacheEntry("nosts.example", negative_until=now + 60, txt_next_check=now + 60))
        assert {e.domain for e in await store.load_all()} == {D, "nosts.example"}
        clock.now += 61  # the negative entry is worth nothing now: never read back
        assert await store.get("nosts.example") is None
        assert [e.domain for e in await store.load_all()] == [D]
        clock.now += 86_400  # and the policy is past its max_age: no daemon revives it
        assert await store.get(D) is None
        assert await store.load_all() == []
        # a write of an entry with nothing to keep deletes the row; expired rows were purged
        await store.put(policy_entry("short.example", now, now + 1))
        assert await _rows(store) == 0


async def _rows(store: PostgresStore) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as connection:
        cursor = await connection.execute(f"SELECT count(*) FROM {store.table}")
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_a_policy_fetched_by_one_daemon_is_used_by_another_through_postgresql() -> None:
    clock = Clock()
    schema = f"mtasts_test_{uuid.uuid4().hex[:16]}"
    async with pg_store(clock=clock, schema=schema) as first_store, pg_store(clock=clock, schema=schema) as second:
        first_sources, second_sources = ScriptedSources(), ScriptedSources()
        daemons = [
            PolicyResolver(first_sources, first_store, clock=clock),
            PolicyResolver(second_sources, second, clock=clock),
        ]
        for daemon in daemons:
            await daemon.start(refresh=False)
        try:
            assert await daemons[0].reply("postfix", D) == ANSWER1
            assert await daemons[1].reply("postfix", D) == ANSWER1
            assert first_sources.calls["fetch"] == 1
            assert second_sources.calls == {}  # no TXT lookup, no fetch: the fleet's entry
            assert daemons[1].counters["store_hits"] == 1
        finally:
            for daemon in daemons:
                await daemon.stop()


async def test_an_unreachable_postgresql_is_a_store_error_at_once() -> None:
    store = PostgresStore(f"postgresql://postgres:secret@127.0.0.1:{free_port()}/test", timeout=0.5)
    for call in (store.load_all(), store.get(D), store.put(policy_entry(D, 0, 1e12)), store.delete(D)):
        with pytest.raises(StoreError, match=r"PostgreSQL postgresql://postgres:\*\*\*@127\.0\.0\.1") as caught:
            await call
        assert "secret" not in str(caught.value)
    await store.close()


async def test_postgresql_connection_killed_mid_test_answers_keep_coming_from_memory() -> None:
    """The server ends the daemon's session (pg_terminate_backend, as a restart or failover
    does): answers come from memory at once, a new domain is discovered as usual, and once the
    hold is over the store reconnects by itself."""
    import psycopg

    clock = Clock()
    sources = ScriptedSources()
    sources.bodies["other.example"] = BODY1.replace(b"mx1.example.com", b"mx1.other.example")
    sources.txts["other.example"] = sources.txts[D]
    async with pg_store(clock=clock) as store:
        store.retry_after = 0.0  # reconnect on the next call (the hold is tested below)
        resolver = PolicyResolver(sources, store, clock=clock)
        await resolver.start(refresh=False)
        try:
            assert await resolver.reply("postfix", D) == ANSWER1
            assert resolver.counters["store_errors"] == 0
            cursor = await store._connection.execute("SELECT pg_backend_pid()")
            (pid,) = await cursor.fetchone()
            async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as admin:
                await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            started = time.monotonic()
            assert await resolver.reply("postfix", D) == ANSWER1  # from memory, at once
            assert time.monotonic() - started < 0.05
            store.retry_after = 60.0
            found = await resolver.lookup("other.example", Profile.POSTFIX)
            assert found.source is Source.FETCHED
            assert found.answer.data == "secure match=mx1.other.example servername=hostname"
            assert resolver.counters["store_errors"] >= 2  # the read on the miss, then the write
            with pytest.raises(StoreError, match="unavailable, retried in a moment"):
                await store.get("other.example")  # the hold: failing at once, no reconnect
        finally:
            await resolver.stop()
        store.retry_after = 0.0
        store._down_until = 0.0
        await store.put(policy_entry("back.example", clock.now, clock.now + 600))
        assert (await store.get("back.example")) is not None  # reconnected by itself


async def test_postgresql_outage_hold_fails_fast_then_retries() -> None:
    ticks = [100.0]
    store = PostgresStore(
        f"postgresql://postgres@127.0.0.1:{free_port()}/test", timeout=0.5, retry_after=5.0, monotonic=lambda: ticks[0]
    )
    with pytest.raises(StoreError, match=r"Connection refused|connection failed"):
        await store.get(D)
    with pytest.raises(StoreError, match="unavailable, retried in a moment"):
        await store.get(D)  # within the hold: no connection attempt
    ticks[0] += 5.0
    with pytest.raises(StoreError, match=r"Connection refused|connection failed"):
        await store.get(D)  # the hold is over: tried again
    await store.close()


@pytest.mark.parametrize("table", ["", ".cache", "schema."])
def test_postgresql_table_names_are_checked(table: str) -> None:
    with pytest.raises(ValueError, match=r"is not TABLE or SCHEMA\.TABLE"):
        PostgresStore(PG_URL, table=table)
