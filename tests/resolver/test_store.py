"""The policy store contract, run on every store: memory, SQLite and Redis (the real server at
127.0.0.1:6379, a key prefix of its own per test, removed afterwards; PostgreSQL joins next)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mtasts.core.policy import parse_policy
from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.store import MemoryStore, PolicyStore, SqliteStore, StoreError, entry_from_json, entry_to_json
from tests.resolver.helpers import redis_store

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


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PolicyStore]:
    if request.param == "redis":
        async with redis_store() as shared:
            yield shared
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
