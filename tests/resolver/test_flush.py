"""``cache flush`` reaching a running daemon's memory: :meth:`PolicyResolver.forget`, the admin
listener's ``POST /cache/flush`` (loopback peers only), and the command against a real daemon
in another process, with the policy fetches counted in the lab's HTTPS log.

The first tests use the scripted sources of test_service.py (a discovery held mid-flight needs
a gate the lab cannot give); the end-to-end ones run ``mtasts resolver serve`` and the lab.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.net.http11 import HttpRequest
from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.config import parse_config
from mtasts.resolver.metrics import AdminServer, _is_loopback
from mtasts.resolver.service import Flushed
from mtasts.resolver.socketmap import Status, encode_reply
from mtasts.resolver.store import MemoryStore, StoreError
from mtasts.resolver.zones import ZonedResolver
from tests.resolver.helpers import PolicyRequestLog, ServeProcess, query_once
from tests.resolver.test_metrics import http_request
from tests.resolver.test_service import ANSWER1, ANSWER2, BODY2, NOTFOUND, D, ScriptedSources, make
from tests.resolver.test_service import Clock as FixedClock

# --- the resolver forgets -------------------------------------------------------------------


async def test_flush_drops_memory_and_store_and_the_next_lookup_fetches_again() -> None:
    resolver, sources, _ = make()
    assert await resolver.reply("postfix", D) == ANSWER1
    assert resolver.reply_now("postfix", D) == ANSWER1  # the hot path has it rendered
    sources.bodies[D] = BODY2  # the same id, a new body: only a fetch can tell
    assert await resolver.flush(D) == Flushed(memory=1, store=1)
    assert resolver.entry(D) is None
    assert await resolver.store.get(D) is None
    assert resolver.reply_now("postfix", D) is None  # nothing cached: a lookup must wait for DNS/HTTPS
    assert await resolver.reply("postfix", D) == ANSWER2
    assert sources.calls["fetch"] == 2
    assert await resolver.flush("other.example") == Flushed(0, 0)
    assert await resolver.flush() == Flushed(1, 1)  # every domain
    assert len(resolver) == 0
    assert resolver.counters["flushed"] == 2


async def test_forget_is_memory_only_and_a_miss_reads_the_store() -> None:
    """What :meth:`forget` leaves to its caller: a daemon asks its store on a miss (a fleet
    shares it), so memory alone forgotten comes back from there without a fetch."""
    resolver, sources, _ = make()
    await resolver.reply("postfix", D)
    assert resolver.forget(D) == 1
    assert resolver.forget(D) == 0
    assert await resolver.reply("postfix", D) == ANSWER1
    assert sources.calls["fetch"] == 1
    assert resolver.counters["store_hits"] == 1


class DownStore(MemoryStore):
    """A store that fails every call (the database is down)."""

    async def get(self, domain: str) -> CacheEntry | None:
        raise StoreError("the store is down")

    async def delete(self, domain: str) -> None:
        raise StoreError("the store is down")


async def test_flush_with_the_store_down_still_empties_memory() -> None:
    resolver, _, _ = make()
    await resolver.reply("postfix", D)
    resolver.store = DownStore()
    flushed = await resolver.flush(D)
    assert (flushed.memory, flushed.store, flushed.store_error) == (1, 0, "the store is down")
    assert resolver.entry(D) is None
    assert resolver.counters["store_errors"] >= 1


async def test_a_discovery_under_way_at_the_flush_is_not_kept() -> None:
    """A flush while a fetch is in flight: what that fetch brings back may come from the
    forgotten entry's id, so it is dropped; the next lookup discovers afresh."""
    resolver, sources, _ = make()
    sources.gate = asyncio.Event()
    waiting = asyncio.create_task(resolver.reply("postfix", D))
    while sources.calls["fetch"] == 0:
        await asyncio.sleep(0)
    assert resolver.forget() == 0  # nothing cached yet, but a discovery under way
    sources.gate.set()
    assert await waiting == NOTFOUND  # that query is answered fail-open, as any slow first lookup
    assert resolver.entry(D) is None
    assert await resolver.store.get(D) is None  # nor persisted
    assert await resolver.reply("postfix", D) == ANSWER1
    assert sources.calls["fetch"] == 2


async def test_a_zone_forgets_its_own_rendered_replies() -> None:
    sources = ScriptedSources()
    config = parse_config('[zone.legacy]\nprofile = "postfix-legacy"\n', "r.toml")
    resolver = ZonedResolver(sources, MemoryStore(), zones=config.zones, clock=FixedClock())
    legacy1 = encode_reply(Status.OK, "secure match=mx1.example.com")
    assert await resolver.reply("legacy", D) == legacy1
    assert resolver.reply_now("legacy", D) == legacy1
    sources.bodies[D] = BODY2
    assert (await resolver.flush(D)).memory == 1
    assert resolver.reply_now("legacy", D) is None
    assert await resolver.reply("legacy", D) == encode_reply(Status.OK, "secure match=mx2.example.com")
    await resolver.stop()


# --- the admin listener ------------------------------------------------------------------------


@pytest.fixture
async def admin() -> Any:
    resolver, _, _ = make()
    await resolver.start(refresh=False)
    server = AdminServer(resolver, "127.0.0.1", 0)
    await server.start()
    yield server
    await server.stop()
    await resolver.stop()


async def test_post_cache_flush_from_loopback(admin: AdminServer) -> None:
    resolver = admin.resolver
    await resolver.reply("postfix", D)
    await resolver.reply("postfix", "other.example")
    status, headers, body = await http_request(admin.port, "/cache/flush?domain=EXAMPLE.com.", method="POST")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert json.loads(body) == {"flushed": 1, "store": 1, "store_error": None, "domain": D}
    assert resolver.entry(D) is None
    assert resolver.entry("other.example") is not None
    status, _, body = await http_request(admin.port, "/cache/flush", method="POST")
    assert (status, json.loads(body)) == (200, {"flushed": 1, "store": 1, "store_error": None, "domain": None})
    assert len(resolver) == 0


@pytest.mark.parametrize(
    ("target", "method", "extra", "status", "text"),
    [
        ("/cache/flush", "GET", "", 405, b"method not allowed\n"),
        ("/cache/flush?domain=%5Bmx.example.com%5D", "POST", "", 400, b"domain: not a mail domain\n"),
        ("/cache/flush?host=example.com", "POST", "", 400, b"bad query string: use ?domain=DOMAIN or nothing\n"),
        ("/cache/flush?domain=a.example&domain=b.example", "POST", "", 400, b"bad query string"),
        ("/cache/flush", "POST", "Origin: https://evil.example\r\n", 403, b"not accepted from web pages"),
    ],
)
async def test_post_cache_flush_refuses(
    admin: AdminServer, target: str, method: str, extra: str, status: int, text: bytes
) -> None:
    await admin.resolver.reply("postfix", D)
    got, _, body = await http_request(admin.port, target, method=method, extra=extra)
    assert got == status
    assert text in body
    assert admin.resolver.entry(D) is not None  # nothing flushed


async def test_post_cache_flush_only_from_loopback_peers(admin: AdminServer) -> None:
    """The listener may be bound to a management address for Prometheus; the flush is refused
    to any peer that is not this host (the peer address is what the connection reports, so this
    one is handed to the application directly)."""
    await admin.resolver.reply("postfix", D)
    response = await admin.app(HttpRequest("POST", "/cache/flush", (), client="192.0.2.7"))
    assert (response.status, response.body) == (403, b"cache flush is accepted from loopback peers only\n")
    assert admin.resolver.entry(D) is not None
    assert [_is_loopback(a) for a in ("127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.1", "?")] == [
        True,
        True,
        True,
        True,
        False,
        False,
    ]


# --- the command, against a running daemon ----------------------------------------------------


def cli(runner: CliRunner, *args: str) -> tuple[int, str]:
    from mtasts.cli.main import app

    result = runner.invoke(app, ["resolver", *args])
    return result.exit_code, result.output


@pytest.mark.lab
def test_cache_flush_reaches_the_running_daemon(
    runner: CliRunner, lab: Any, resolver_options: list[str], tmp_path: Path
) -> None:
    """After a flush, the daemon's next lookup fetches the policy again: counted by the lab,
    which served it."""
    domain = lab.domain("enforce-ok")
    answer = f"OK secure match=mx1.{domain} servername=hostname"
    db = tmp_path / "cache.sqlite3"
    arguments = ["--listen", "inet:127.0.0.1:0", "--db", str(db), "--admin", "127.0.0.1:0", *resolver_options]
    with PolicyRequestLog(lab, domain) as https_log, ServeProcess(arguments) as daemon:
        port = int(daemon.wait_line(r"listening on inet:127\.0\.0\.1:(\d+)")[1])
        admin = daemon.wait_line(r"metrics on http://(127\.0\.0\.1:\d+)/metrics")[1]
        assert query_once(port, "postfix", domain) == answer
        assert query_once(port, "postfix", domain) == answer
        assert https_log.fetches == 1

        code, out = cli(runner, "cache", "flush", domain, "--db", str(db), "--admin", admin)
        assert (code, out) == (
            0,
            f"flushed 1 cached domain from the store ({db})\n"
            f"flushed 1 cached domain from the daemon's memory (http://{admin}/cache/flush)\n",
        )
        assert query_once(port, "postfix", domain) == answer
        assert https_log.fetches == 2  # fetched again: neither memory nor the store had it

        # the admin address from the configuration file, every domain
        config = tmp_path / "resolver.toml"
        config.write_text(f'admin = "{admin}"\n[store]\nurl = "sqlite:{db}"\n')
        code, out = cli(runner, "cache", "flush", "--config", str(config))
        assert (code, out.splitlines()) == (
            0,
            [
                f"flushed 1 cached domain from the store ({db})",
                f"flushed 1 cached domain from the daemon's memory (http://{admin}/cache/flush)",
            ],
        )
        assert query_once(port, "postfix", domain) == answer
        assert https_log.fetches == 3
        daemon.wait_line(
            rf"cache flush from 127\.0\.0\.1: 1 entry dropped from memory, 0 from the store \({re.escape(domain)}\)"
        )
        assert daemon.stop() == 0


def test_cache_flush_says_what_it_did_for_each(runner: CliRunner, tmp_path: Path) -> None:
    code, out = cli(runner, "cache", "flush", "--store", "memory", "--admin", "127.0.0.1:9")
    assert code == 3
    first, second = out.splitlines()
    assert first == "store: memory only, nothing persisted"
    assert second.startswith("mtasts: error: cannot ask the daemon at http://127.0.0.1:9/cache/flush: ")
    code, out = cli(runner, "cache", "flush", "--db", str(tmp_path / "none.sqlite3"), "--admin", "127.0.0.1:9")
    assert out.splitlines()[0] == f"store: {tmp_path / 'none.sqlite3'} does not exist, nothing persisted"
    code, out = cli(runner, "cache", "flush", "--admin", "nowhere")
    assert (code, out.splitlines()[0][:30]) == (2, "mtasts: error: --admin: 'nowhe")
    code, out = cli(runner, "cache", "flush", "[mx.example.com]", "--admin", "127.0.0.1:9")
    assert (code, out) == (2, "mtasts: error: '[mx.example.com]' is not a mail domain\n")
