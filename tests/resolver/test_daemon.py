"""The daemon against the lab: real DNS, real HTTPS with the lab CA, a real TCP socketmap client.

Cases that need a domain's policy to change mid-test (id change, drift, backoff with a
recovering host) are driven with scripted sources in test_service.py and by the pure rules in
test_cache.py: the shared lab is not changed by this suite.
"""

from __future__ import annotations

import asyncio
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mtasts.net.settings import NetworkSettings
from mtasts.resolver.server import ListenSpec, SocketmapServer
from mtasts.resolver.service import PolicyResolver
from mtasts.resolver.store import MemoryStore, PolicyStore, SqliteStore
from tests.resolver.helpers import CountingSources, SocketmapClient

pytestmark = pytest.mark.lab


class Clock:
    """Wall time plus an offset a test can move forward (to make a TXT re-check due)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Daemon:
    resolver: PolicyResolver
    server: SocketmapServer
    sources: CountingSources
    clock: Clock

    @property
    def port(self) -> int:
        return int(self.server.addresses[0].rsplit(":", 1)[1])

    async def client(self) -> SocketmapClient:
        return await SocketmapClient.connect("127.0.0.1", self.port)

    async def stop(self) -> None:
        await self.server.stop()
        await self.resolver.stop()


async def start_daemon(
    settings: NetworkSettings, store: PolicyStore | None = None, listen: tuple[ListenSpec, ...] = ()
) -> Daemon:
    sources = CountingSources(settings)
    clock = Clock()
    resolver = PolicyResolver(sources, store or MemoryStore(), clock=clock)
    await resolver.start(refresh=False)
    server = SocketmapServer(resolver, listen or (ListenSpec(host="127.0.0.1", port=0),))
    await server.start()
    return Daemon(resolver, server, sources, clock)


@pytest.fixture
async def daemon(resolver_settings: NetworkSettings) -> AsyncIterator[Daemon]:
    running = await start_daemon(resolver_settings)
    yield running
    await running.stop()


@pytest.fixture
def dead_nameserver() -> Any:
    """A UDP port that swallows queries and never answers (a resolver that is down)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield ("127.0.0.1", sock.getsockname()[1])
    sock.close()


def ok(*parts: str) -> str:
    return "OK " + " ".join(parts)


@pytest.mark.parametrize(
    ("scenario", "profile", "expected"),
    [
        ("enforce-ok", "postfix", lambda d: ok("secure", f"match=mx1.{d}", "servername=hostname")),
        ("enforce-ok", "postfix-legacy", lambda d: ok("secure", f"match=mx1.{d}")),
        ("wildcard-ok", "postfix", lambda d: ok("secure", f"match=mx1.{d}", "servername=hostname")),
        ("testing-ok", "postfix", lambda d: "NOTFOUND "),
        ("none-ok", "postfix", lambda d: "NOTFOUND "),
        ("no-sts-record", "postfix", lambda d: "NOTFOUND "),
    ],
)
async def test_answers_for_lab_domains(
    daemon: Daemon, lab: Any, scenario: str, profile: str, expected: Callable[[str], str]
) -> None:
    domain = lab.domain(scenario)
    client = await daemon.client()
    try:
        assert await client.query(profile, domain.upper() + ".") == expected(domain)
        assert await client.query(profile, "." + domain) == "NOTFOUND "  # the parent probe that follows
    finally:
        await client.close()


async def test_tlsrpt_profile_carries_the_policy(daemon: Daemon, lab: Any) -> None:
    domain = lab.domain("wildcard-ok")
    client = await daemon.client()
    try:
        answer = await client.query("postfix-tlsrpt", domain)
    finally:
        await client.close()
    assert answer.startswith(
        f"OK secure match=mx1.{domain} servername=hostname policy_type=sts policy_domain={domain} "
    )
    assert "{ policy_string = version: STSv1 }" in answer
    assert "{ policy_string = mode: enforce }" in answer
    assert answer.endswith(f" mx_host_pattern=*.{domain}")


async def test_malformed_requests_get_answers_on_the_same_connection(daemon: Daemon, lab: Any) -> None:
    client = await daemon.client()
    try:
        await client.send(b"7:postfix,")  # no key
        assert await client.read_reply() == "NOTFOUND "
        assert await client.query("postfix", "[mx.example.com]:25") == "NOTFOUND "
        assert (await client.query("postfix", lab.domain("enforce-ok"))).startswith("OK secure")
        await client.send(b"x:postfix a.com,")  # framing lost: PERM, then the daemon closes
        assert (await client.read_reply()).startswith("PERM ")
        assert await client.reader.read() == b""
    finally:
        await client.close()
    assert daemon.sources.fetches == 1


async def test_stampede_of_50_first_lookups_causes_one_fetch(daemon: Daemon, lab: Any) -> None:
    domain = lab.domain("enforce-ok")
    clients = [await daemon.client() for _ in range(50)]
    try:
        answers = await asyncio.gather(*(c.query("postfix", domain) for c in clients))
    finally:
        for c in clients:
            await c.close()
    assert set(answers) == {ok("secure", f"match=mx1.{domain}", "servername=hostname")}
    assert daemon.sources.fetches == 1


async def test_dns_outage_with_a_cached_policy_is_answered_at_once(
    daemon: Daemon, lab: Any, resolver_settings: NetworkSettings, dead_nameserver: tuple[str, int]
) -> None:
    domain = lab.domain("enforce-ok")
    client = await daemon.client()
    try:
        expected = await client.query("postfix", domain)
        assert expected.startswith("OK secure")
        daemon.resolver.sources = CountingSources(replace(resolver_settings, nameserver=dead_nameserver))
        daemon.clock.offset = 3600  # past the TXT TTL: every query now wants a re-check
        start = time.monotonic()
        for _ in range(20):
            assert await client.query("postfix", domain) == expected
        elapsed = time.monotonic() - start
    finally:
        await client.close()
    assert elapsed < 0.5  # 20 answers; one blocked re-check alone would take the 2 s timeout
    await asyncio.sleep(2.5)  # the background re-check times out and is recorded
    assert daemon.resolver.counters["event_txt-failed"] == 1
    assert daemon.resolver.entry(domain).policy is not None  # type: ignore[union-attr]


async def test_uncached_with_dns_down_fails_open(
    lab: Any, resolver_settings: NetworkSettings, dead_nameserver: tuple[str, int]
) -> None:
    down = await start_daemon(replace(resolver_settings, nameserver=dead_nameserver, timeout=0.5))
    try:
        client = await down.client()
        assert await client.query("postfix", lab.domain("enforce-ok")) == "NOTFOUND "
        start = time.monotonic()
        assert await client.query("postfix", lab.domain("enforce-ok")) == "NOTFOUND "  # held: no new lookup
        assert time.monotonic() - start < 0.2
        await client.close()
    finally:
        await down.stop()


async def test_restart_with_a_persisted_cache_and_dns_down(
    lab: Any, resolver_settings: NetworkSettings, dead_nameserver: tuple[str, int], tmp_path: Path
) -> None:
    domain = lab.domain("enforce-ok")
    first = await start_daemon(resolver_settings, SqliteStore(tmp_path / "cache.sqlite3"))
    try:
        client = await first.client()
        expected = await client.query("postfix", domain)
        await client.close()
    finally:
        await first.stop()
    assert expected.startswith("OK secure")
    restarted = await start_daemon(
        replace(resolver_settings, nameserver=dead_nameserver), SqliteStore(tmp_path / "cache.sqlite3")
    )
    try:
        client = await restarted.client()
        start = time.monotonic()
        assert await client.query("postfix", domain) == expected
        assert time.monotonic() - start < 0.2
        await client.close()
    finally:
        await restarted.stop()
    assert restarted.sources.fetches == 0


async def test_unix_socket_with_its_mode(lab: Any, resolver_settings: NetworkSettings, tmp_path: Path) -> None:
    path = tmp_path / "resolver.sock"
    unix = await start_daemon(resolver_settings, listen=(ListenSpec(path=path, mode=0o600),))
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        client = await SocketmapClient.connect_unix(path)
        assert (await client.query("postfix", lab.domain("enforce-ok"))).startswith("OK secure")
        await client.close()
    finally:
        await unix.stop()
    assert not path.exists()
