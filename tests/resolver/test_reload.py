"""Reload on SIGHUP and a graceful stop on SIGTERM: the plan (pure), the resolver taking new
zones and settings in place, and ``mtasts resolver serve`` in a subprocess (signals, real
sockets, its log), needing no network: the answers come from an overrides file, and the
nameserver is a port that never answers.
"""

from __future__ import annotations

import dataclasses
import http.client
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtasts.resolver.answers import AnswerSettings
from mtasts.resolver.config import parse_config
from mtasts.resolver.reload import plan_reload
from mtasts.resolver.server import parse_listen
from mtasts.resolver.service import ResolverSettings
from mtasts.resolver.socketmap import Status, encode_reply
from mtasts.resolver.store import MemoryStore
from mtasts.resolver.zones import ZonedResolver
from tests.resolver.helpers import BlockingSocketmapClient, ServeProcess, query_once
from tests.resolver.test_service import ANSWER1, Clock, D, ScriptedSources

NOTFOUND = encode_reply(Status.NOTFOUND)
TESTING_BODY = b"version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 86400\n"

# --- what a reload changes -------------------------------------------------------------------


def test_a_reload_applies_zones_network_overrides_and_limits_and_keeps_sockets_and_store() -> None:
    old = parse_config('listen = ["inet:127.0.0.1:8461"]\n', "/etc/mtasts/resolver.toml")
    new = parse_config(
        'listen = ["inet:127.0.0.1:8462"]\nmax_connections = 5\nadmin = "9461"\noverrides = "o.toml"\n'
        '[network]\nnameserver = "127.0.0.1:53"\n[store]\nurl = "memory"\n[zone.edge]\nprofile = "postfix-tlsrpt"\n',
        "/etc/mtasts/resolver.toml",
    )
    plan = plan_reload(old, new)
    assert plan.changed == ("zones", "network", "overrides", "max_connections")
    assert plan.needs_restart == ("listen", "admin", "store")
    assert plan.config.listen == old.listen
    assert plan.config.admin is None
    assert plan.config.store == old.store
    assert (plan.config.max_connections, plan.config.network.nameserver) == (5, ("127.0.0.1", 53))
    assert "edge" in plan.config.zones
    assert plan_reload(new, new) == plan_reload(new, new, inherited_sockets=True)
    assert plan_reload(new, new).changed == plan_reload(new, new).needs_restart == ()


def test_under_socket_activation_listen_is_systemds() -> None:
    old = parse_config("", "r.toml")
    new = dataclasses.replace(old, listen=(parse_listen("inet:127.0.0.1:1"),))
    assert plan_reload(old, new).needs_restart == ("listen",)
    assert plan_reload(old, new, inherited_sockets=True).needs_restart == ()


async def test_the_resolver_takes_new_zones_and_settings_in_place() -> None:
    """A zone added, a zone's settings changed, the resolver's own settings changed: each
    answers as the new configuration says from the next request on, the cache kept (no
    second fetch)."""
    sources = ScriptedSources()
    sources.bodies[D] = TESTING_BODY
    resolver = ZonedResolver(sources, MemoryStore(), clock=Clock())
    assert await resolver.reply("postfix", D) == NOTFOUND  # testing: not enforced
    assert await resolver.reply("strict", D) == NOTFOUND  # no such zone yet
    strict = parse_config('[zone.strict]\nprofile = "postfix"\nstrict_testing = true\n', "r.toml")
    resolver.set_zones(strict.zones)
    assert resolver.reply_now("strict", D) is None  # nothing rendered for the new zone yet
    assert await resolver.reply("strict", D) == ANSWER1
    assert resolver.reply_now("strict", D) == ANSWER1
    assert resolver.reply_now("postfix", D) == NOTFOUND
    # every zone strict now, the resolver's own settings too: the zone joins the fast path
    everywhere = parse_config('strict_testing = true\n[zone.strict]\nprofile = "postfix"\n', "r.toml")
    resolver.reconfigure(ResolverSettings(answers=AnswerSettings(strict_testing=True)))
    resolver.set_zones(everywhere.zones)
    assert resolver.reply_now("postfix", D) == ANSWER1
    assert resolver.reply_now("strict", D) == ANSWER1
    # and back: a rendered reply of the old settings is never served
    resolver.reconfigure(ResolverSettings())
    resolver.set_zones(strict.zones)
    assert resolver.reply_now("postfix", D) == NOTFOUND
    assert await resolver.reply("strict", D) == ANSWER1
    resolver.set_zones(parse_config("", "r.toml").zones)
    assert await resolver.reply("strict", D) == NOTFOUND  # the zone is gone
    assert sources.calls["fetch"] == 1
    await resolver.stop()


async def test_a_reload_puts_new_network_settings_and_limits_in_place(tmp_path: Path) -> None:
    """The reload itself (``serve``'s, driven here in-process): the next discovery uses the new
    nameserver and timeout, the server the new cap; the configuration in force is the new one."""
    from mtasts.cli.resolver.serve import _Daemon, reread_config
    from mtasts.resolver.config import CommandLine
    from mtasts.resolver.server import SocketmapServer
    from mtasts.resolver.sources import NetworkSources

    path = tmp_path / "resolver.toml"
    path.write_text('[network]\nnameserver = "127.0.0.1:5353"\n')
    before = parse_config(path.read_text(), path)
    resolver = ZonedResolver(NetworkSources(before.network), MemoryStore())
    server = SocketmapServer(resolver, [parse_listen("inet:127.0.0.1:0")])
    daemon = _Daemon(before, resolver, server, inherited=False, reread=lambda: reread_config(path, CommandLine(), {}))
    path.write_text('max_connections = 7\n[network]\nnameserver = "127.0.0.1:5454"\ntimeout = 2\n')
    daemon.reload()
    assert isinstance(resolver.sources, NetworkSources)
    assert (resolver.sources.settings.nameserver, resolver.sources.settings.timeout) == (("127.0.0.1", 5454), 2.0)
    assert resolver.settings.answer_timeout == 3.0
    assert server.limits.max_connections == 7
    assert daemon.config.max_connections == 7
    path.write_text('[network]\nnameserver = "nowhere"\n')
    daemon.reload()  # refused: everything stays
    assert resolver.sources.settings.nameserver == ("127.0.0.1", 5454)
    assert daemon.config.max_connections == 7


# --- the daemon --------------------------------------------------------------------------------

OVERRIDE = (
    '[[override]]\ndomain = "example.com"\naction = "force-enforce"\nmx = ["mx9.example.com"]\n'
    'expires = 2099-01-01T00:00:00Z\nreason = "test"\n'
)


@pytest.fixture
def dead_nameserver() -> Iterator[str]:
    """A UDP port that swallows queries and never answers (a resolver that is down)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_sighup_reloads_the_configuration_in_place(tmp_path: Path, dead_nameserver: str) -> None:
    (tmp_path / "overrides.toml").write_text(OVERRIDE)
    config = tmp_path / "resolver.toml"
    first = (
        f'listen = ["inet:127.0.0.1:0"]\noverrides = "overrides.toml"\n[store]\nurl = "memory"\n'
        f'[network]\nnameserver = "{dead_nameserver}"\ntimeout = 0.5\n'
    )
    config.write_text(first)
    with ServeProcess(["--config", str(config)]) as daemon:
        port = int(daemon.wait_line(r"listening on inet:127\.0\.0\.1:(\d+)")[1])
        assert query_once(port, "legacy-box", "example.com") == "NOTFOUND "  # no such zone
        held = BlockingSocketmapClient(port)  # a connection Postfix keeps open across the reload
        assert held.query("postfix", "example.com") == "OK secure match=mx9.example.com servername=hostname"

        config.write_text(
            'max_connections = 1\nlisten = ["inet:127.0.0.1:1"]\noverrides = "overrides.toml"\n'
            '[store]\nurl = "sqlite:cache.sqlite3"\n'
            f'[network]\nnameserver = "{dead_nameserver}"\ntimeout = 0.5\n'
            '[zone.legacy-box]\npostfix_version = "3.3.1"\n'
        )
        seen = daemon.signal(signal.SIGHUP)
        daemon.wait_line(
            rf"WARNING: reload: listen changed: needs a restart \(inet:127\.0\.0\.1:{port} kept\)", after=seen
        )
        daemon.wait_line(r"WARNING: reload: store changed: needs a restart \(memory only kept\)", after=seen)
        reloaded = daemon.wait_line(r"INFO: configuration reloaded from (.*)", after=seen)[1]
        assert reloaded == (
            f"{config}; changed: zones, max_connections; overrides reloaded from {tmp_path / 'overrides.toml'}: "
            "1 domain; zones beyond the built-in: legacy-box"
        )
        # the connection opened before the reload is still served, and sees the new zone
        assert held.query("legacy-box", "example.com") == "OK secure match=mx9.example.com"
        # max_connections = 1, and the held connection is the one: another is turned away
        with pytest.raises(ConnectionError):
            query_once(port, "postfix", "example.com")
        held.close()
        assert not (tmp_path / "cache.sqlite3").exists()  # the store is the one it started with

        # a configuration with problems is refused whole: one line per problem, nothing changes
        config.write_text('colour = "red"\n[network]\ntimeout = 500\n[zone.legacy-box]\npostfix_version = "3.3.1"\n')
        seen = daemon.signal(signal.SIGHUP)
        daemon.wait_line(r"ERROR: reload: .*resolver\.toml:1: colour: unknown key; use listen, ", after=seen)
        daemon.wait_line(r"ERROR: reload: .*resolver\.toml:3: network\.timeout: 500 s is out of range", after=seen)
        daemon.wait_line(r"ERROR: reload refused \(2 problems\): the configuration in force is kept", after=seen)
        assert query_once(port, "legacy-box", "example.com") == "OK secure match=mx9.example.com"

        # a broken overrides file is a problem of the configuration too
        config.write_text(first)
        (tmp_path / "overrides.toml").write_text("[[override]]\n")
        seen = daemon.signal(signal.SIGHUP)
        daemon.wait_line(r"ERROR: reload: overrides: .*overrides\.toml: .*'domain' is required", after=seen)
        daemon.wait_line(r"ERROR: reload refused \(1 problem\)", after=seen)
        assert query_once(port, "legacy-box", "example.com") == "OK secure match=mx9.example.com"
        assert daemon.stop() == 0


def test_sigterm_answers_the_lookup_in_progress_then_exits_0(tmp_path: Path, dead_nameserver: str) -> None:
    """A first lookup is waiting for DNS when SIGTERM comes: the daemon stops accepting at
    once, answers that lookup (fail-open, when the DNS timeout ends it), closes, exits 0."""
    arguments = ["--listen", "inet:127.0.0.1:0", "--memory-only", "--admin", "127.0.0.1:0"]
    with ServeProcess([*arguments, "--nameserver", dead_nameserver, "--timeout", "3"]) as daemon:
        port = int(daemon.wait_line(r"listening on inet:127\.0\.0\.1:(\d+)")[1])
        admin = int(daemon.wait_line(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")[1])
        waiting = BlockingSocketmapClient(port, timeout=20)
        waiting.send("postfix", "example.com")
        deadline = time.monotonic() + 20
        while "mtasts_resolver_discoveries_in_progress 1\n" not in scrape(admin):
            assert time.monotonic() < deadline, "the lookup never reached the daemon"  # it waits for DNS
        idle = BlockingSocketmapClient(port)
        seen = daemon.signal(signal.SIGTERM)
        daemon.wait_line(
            r"INFO: stopping: no longer accepting connections; 1 lookup in progress answered first", after=seen
        )
        with pytest.raises(ConnectionError):  # refused, or accepted by the kernel and closed at once
            query_once(port, "postfix", "example.com")
        with pytest.raises(ConnectionError):  # an idle connection is closed, not left hanging
            idle.query("postfix", "example.com")
        assert waiting.read_reply() == "NOTFOUND "  # fail open: the DNS lookup timed out
        with pytest.raises(ConnectionError):
            waiting.read_reply()  # then the daemon hung up
        daemon.wait_line(r"INFO: stopped$", after=seen)
        waiting.close()
        idle.close()
        assert daemon.stop() == 0


def scrape(port: int) -> str:
    """The daemon's /metrics page (http.client: no proxy from the environment in the way)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()
    finally:
        connection.close()
