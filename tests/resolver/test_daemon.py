"""The daemon against the lab: real DNS, real HTTPS with the lab CA, a real TCP socketmap client.

Cases that need a domain's policy to change mid-test (id change, drift, backoff with a
recovering host) are driven with scripted sources in test_service.py and by the pure rules in
test_cache.py: the shared lab is not changed by this suite.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mtasts.net.server import ServerLimits
from mtasts.net.settings import NetworkSettings
from mtasts.resolver.server import ListenSpec, SocketmapServer
from mtasts.resolver.service import PolicyResolver
from mtasts.resolver.socketmap import Status, encode_reply
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
    settings: NetworkSettings,
    store: PolicyStore | None = None,
    listen: tuple[ListenSpec, ...] | None = None,
    *,
    resolver_class: type[PolicyResolver] = PolicyResolver,
    **server_options: Any,
) -> Daemon:
    sources = CountingSources(settings)
    clock = Clock()
    resolver = resolver_class(sources, store or MemoryStore(), clock=clock)
    await resolver.start(refresh=False)
    default = (ListenSpec(host="127.0.0.1", port=0),)
    server = SocketmapServer(resolver, default if listen is None else listen, **server_options)
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


def frame(name: str, key: str) -> bytes:
    payload = f"{name} {key}".encode()
    return b"%d:%s," % (len(payload), payload)


def enforce_ok(domain: str) -> str:
    return ok("secure", f"match=mx1.{domain}", "servername=hostname")


async def test_pipelined_requests_are_answered_in_order_around_a_first_lookup(daemon: Daemon, lab: Any) -> None:
    cached, new = lab.domain("enforce-ok"), lab.domain("wildcard-ok")
    client = await daemon.client()
    try:
        assert await client.query("postfix", cached) == enforce_ok(cached)
        # answered at once, then a lookup that waits for a fetch, then more that arrived meanwhile
        await client.send(
            frame("postfix", "." + cached)
            + frame("postfix", new)
            + frame("postfix", cached)
            + b"7:postfix,"
            + frame("postfix", cached.upper())
        )
        replies = [await asyncio.wait_for(client.read_reply(), 10) for _ in range(5)]
    finally:
        await client.close()
    assert replies == ["NOTFOUND ", enforce_ok(new), enforce_ok(cached), "NOTFOUND ", enforce_ok(cached)]


async def test_a_large_pipelined_burst_is_answered_completely_and_in_order(daemon: Daemon, lab: Any) -> None:
    """More than the socket buffers hold both ways: the server must stop reading while its
    replies are not read, and lose nothing when it resumes."""
    domain = lab.domain("enforce-ok")
    client = await daemon.client()
    try:
        expected_one = enforce_ok(domain).encode()
        assert await client.query("postfix", domain) == enforce_ok(domain)
        count = 100_000
        request = frame("postfix", domain) + frame("postfix", "." + domain)
        sending = asyncio.create_task(client.send(request * count))
        pair = b"%d:%s,9:NOTFOUND ," % (len(expected_one), expected_one)
        received = await asyncio.wait_for(client.reader.readexactly(len(pair) * count), 60)
        await sending
    finally:
        await client.close()
    assert received == pair * count


async def test_a_peer_that_half_closes_still_gets_its_answer(daemon: Daemon, lab: Any) -> None:
    domain = lab.domain("enforce-ok")
    client = await daemon.client()
    try:
        await client.send(frame("postfix", domain))  # a first lookup: answered after a fetch
        client.writer.write_eof()
        assert await asyncio.wait_for(client.read_reply(), 10) == enforce_ok(domain)
        assert await asyncio.wait_for(client.reader.read(), 10) == b""
    finally:
        await client.close()


async def test_an_idle_connection_is_closed(lab: Any, resolver_settings: NetworkSettings) -> None:
    idle = await start_daemon(resolver_settings, idle_timeout=0.3)
    try:
        client = await idle.client()
        assert await client.query("postfix", "." + lab.domain("enforce-ok")) == "NOTFOUND "
        assert await asyncio.wait_for(client.reader.read(), 10) == b""  # closed by the server
        await client.close()
        assert idle.server.connections == 0
    finally:
        await idle.stop()


async def _closed_by_server(client: SocketmapClient) -> bool:
    try:
        return await asyncio.wait_for(client.reader.read(), 10) == b""
    except ConnectionResetError:
        return True


async def test_connections_beyond_the_cap_are_refused_and_the_others_served(
    lab: Any, resolver_settings: NetworkSettings
) -> None:
    limits = ServerLimits(max_connections=2, max_connections_per_client=2)
    capped = await start_daemon(resolver_settings, limits=limits)
    probe = "." + lab.domain("enforce-ok")
    try:
        first, second, third = [await capped.client() for _ in range(3)]
        assert await _closed_by_server(third)
        assert await first.query("postfix", probe) == "NOTFOUND "
        assert await second.query("postfix", probe) == "NOTFOUND "
        assert capped.server.refused == 1
        await first.close()
        for _ in range(500):  # the slot is given back when the server sees the close
            if capped.server.connections < 2:
                break
            await asyncio.sleep(0.01)
        fourth = await capped.client()
        assert await fourth.query("postfix", probe) == "NOTFOUND "
        for client in (second, third, fourth):
            await client.close()
    finally:
        await capped.stop()


async def test_connections_per_client_address_are_capped(lab: Any, resolver_settings: NetworkSettings) -> None:
    capped = await start_daemon(
        resolver_settings, limits=ServerLimits(max_connections=10, max_connections_per_client=1)
    )
    try:
        first, second = [await capped.client() for _ in range(2)]
        assert await _closed_by_server(second)
        assert await first.query("postfix", "." + lab.domain("enforce-ok")) == "NOTFOUND "
        for client in (first, second):
            await client.close()
    finally:
        await capped.stop()


async def test_inherited_sockets_are_served_as_they_are(
    lab: Any, resolver_settings: NetworkSettings, tmp_path: Path
) -> None:
    """Socket activation: systemd binds, sets the UNIX socket's mode, and passes the sockets."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    path = tmp_path / "activated.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    unix.listen(16)
    path.chmod(0o640)
    port = tcp.getsockname()[1]
    activated = await start_daemon(resolver_settings, listen=(), sockets=[tcp, unix])
    domain = lab.domain("enforce-ok")
    try:
        assert activated.server.addresses == [f"inet:127.0.0.1:{port}", f"unix:{path}"]
        over_tcp = await SocketmapClient.connect("127.0.0.1", port)
        over_unix = await SocketmapClient.connect_unix(path)
        assert await over_tcp.query("postfix", domain) == enforce_ok(domain)
        assert await over_unix.query("postfix", domain) == enforce_ok(domain)
        await over_tcp.close()
        await over_unix.close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # systemd's SocketMode, untouched
    finally:
        await activated.stop()
    assert tcp.fileno() == -1  # closed at stop
    assert unix.fileno() == -1


def test_only_listening_stream_sockets_can_be_inherited(resolver_settings: NetworkSettings) -> None:
    resolver = PolicyResolver(CountingSources(resolver_settings), MemoryStore())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(ValueError, match="not a TCP"):
        SocketmapServer(resolver, (), sockets=[udp])
    with pytest.raises(ValueError, match="nothing to listen on"):
        SocketmapServer(resolver, ())


class _CustomResolver(PolicyResolver):
    """A resolver with a map name of its own, answered in its reply() only."""

    async def reply(self, name: str, key: str) -> bytes:
        if name == "custom":
            return encode_reply(Status.OK, f"secure match=custom.{key}")
        return await super().reply(name, key)


async def test_a_resolver_with_its_own_reply_answers_every_request(
    lab: Any, resolver_settings: NetworkSettings
) -> None:
    """The server's task-free path must not bypass a subclass's reply() (zones do this)."""
    custom = await start_daemon(resolver_settings, resolver_class=_CustomResolver)
    try:
        client = await custom.client()
        assert await client.query("custom", "example.com") == "OK secure match=custom.example.com"
        domain = lab.domain("enforce-ok")
        assert await client.query("postfix", domain) == enforce_ok(domain)
        await client.close()
    finally:
        await custom.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a socket's owner needs root")
async def test_unix_socket_owner_and_group(lab: Any, resolver_settings: NetworkSettings, tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    path = tmp_path / "owned.sock"
    spec = ListenSpec(path=path, mode=0o660, owner="nobody", group=group)
    owned = await start_daemon(resolver_settings, listen=(spec,))
    try:
        status = path.stat()
        assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (nobody.pw_uid, nobody.pw_gid, 0o660)
    finally:
        await owned.stop()


class _BrokenResolver(PolicyResolver):
    """A resolver with a bug for one key: its fast answer raises."""

    def reply_now(self, name: str, key: str) -> bytes | None:
        if key == "bug.example":
            raise RuntimeError("a bug")
        return super().reply_now(name, key)


async def test_a_bug_in_an_answer_is_temp_and_the_connection_goes_on(
    lab: Any, resolver_settings: NetworkSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Alone in a read (the fast path) or pipelined (the codec's loop), the request that hit a
    bug is answered TEMP, logged, counted; the requests around it are answered as usual."""
    broken = await start_daemon(resolver_settings, resolver_class=_BrokenResolver)
    temp = "TEMP internal error in the MTA-STS resolver"
    try:
        client = await broken.client()
        probe = "." + lab.domain("enforce-ok")
        assert await client.query("postfix", "bug.example") == temp
        assert await client.query("postfix", probe) == "NOTFOUND "
        pipelined = [f"postfix {key}".encode() for key in ("bug.example", probe)]
        await client.send(b"".join(b"%d:%s," % (len(payload), payload) for payload in pipelined))
        assert [await client.read_reply(), await client.read_reply()] == [temp, "NOTFOUND "]
        await client.close()
    finally:
        await broken.stop()
    assert broken.resolver.counters["internal_errors"] == 2
    assert "unexpected error answering bug.example" in caplog.text
