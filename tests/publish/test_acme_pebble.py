"""Built-in ACME against Debian's ``pebble`` on loopback: issuance, renewal, a failing CA.

The world: the lab's authoritative DNS (``mta-sts.<domain>`` → the policy host's loopback
address), Pebble resolving names through it and validating HTTP-01 by connecting to that
address on the manager's challenge port, and the policy host with the configuration a user
would write (``[acme]`` and domains without ``cert``/``key``). What is served is checked with
stdlib ``ssl`` + ``http.client`` trusting only Pebble's issuing root, fetched from Pebble's
management interface. Time is a :class:`Clock` shared by the host and the manager: moving it
past two thirds of a lifetime makes a renewal due without sleeping. The passes are driven with
:meth:`AcmeManager.tick` (the loop's body) so each test knows exactly when an order happens.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import ssl
import stat
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record
from mtasts.lab.world import random_network
from mtasts.publish.acme import AcmeManager
from mtasts.publish.config import ListenAddress
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import ACME_PENDING, load_snapshot
from tests.commands import MTASTS
from tests.publish.hosting import POLICY_PATH, Client, canonical_body, fetch, tls_connect
from tests.publish.pebble import Pebble, free_port, require_pebble, start_pebble

pytestmark = pytest.mark.lab

APEX = "acme.publish.test"
DOMAINS = (f"d0001.{APEX}", f"d0002.{APEX}")
VALIDITY = 90 * 86400  # Pebble's certificateValidityPeriod: Let's Encrypt's 90 days


class Clock:
    """The injected clock: real time plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class World:
    host: PolicyHost
    manager: AcmeManager
    pebble: Pebble
    clock: Clock
    address: str
    storage: Path

    @property
    def port(self) -> int:
        return self.host.bound[0].port

    async def served_certificate(self, name: str) -> tuple[int, list[tuple[str, str]]]:
        """The serial and subjectAltName of what a verifying client trusting Pebble gets (the
        blocking client runs in a thread: the host serves on this test's event loop)."""
        return await asyncio.to_thread(self._served_certificate, name)

    def _served_certificate(self, name: str) -> tuple[int, list[tuple[str, str]]]:
        with tls_connect(self.port, name, self.pebble.client_context(), address=self.address) as sock:
            peer = sock.getpeercert()
        assert peer is not None
        return int(str(peer["serialNumber"]), 16), [tuple(entry) for entry in peer["subjectAltName"]]  # type: ignore[misc]


def config_text(
    address: str, challenge_port: int, pebble: Pebble, storage: Path, names: tuple[str, ...] = DOMAINS
) -> str:
    domains = "".join(
        f'[[domain]]\nname = "{name}"\nmode = "testing"\nmx = ["mx1.{name}", "*.mx.{name}"]\n'
        f"max_age = {86400 + int(name[1:5])}\n\n"
        for name in names
    )
    return (
        f'[server]\nlisten = ["{address}:0"]\nadmin = "127.0.0.1:0"\n'
        # the hammering clients of the renewal test share one address: no rate limit for them
        "requests_per_second = 100000\nburst = 100000\n\n"
        f'[acme]\ndirectory = "{pebble.directory}"\nca_file = "{pebble.ca_file}"\n'
        f'contact = ["mailto:hostmaster@{APEX}"]\nstorage = "{storage}"\nlisten = ["{address}:{challenge_port}"]\n\n'
        + domains
    )


@dataclass
class Outside:
    """The world around the host: the lab DNS, Pebble, and the configuration file."""

    pebble: Pebble
    address: str
    challenge_port: int
    config: Path
    storage: Path


@asynccontextmanager
async def outside(tmp_path: Path) -> AsyncIterator[Outside]:
    require_pebble()
    hosts = iter(random_network().hosts())
    ns_address, address = str(next(hosts)), str(next(hosts))
    records = [
        Record(f"{APEX}.", "SOA", f"ns.{APEX}. hostmaster.{APEX}. 1 3600 600 86400 60"),
        Record(f"{APEX}.", "NS", f"ns.{APEX}."),
        Record(f"ns.{APEX}.", "A", ns_address),
        *(Record(f"mta-sts.{name}.", "A", address) for name in DOMAINS),
    ]
    dns_server = DnsServer(Zone(APEX, records), ns_address)
    await dns_server.start()
    try:
        challenge_port = free_port(address)
        pebble = start_pebble(
            tmp_path / "pebble",
            http_port=challenge_port,
            dns_server=f"{ns_address}:{dns_server.port}",
            validity=VALIDITY,
        )
        try:
            config = tmp_path / "publish.toml"
            storage = tmp_path / "acme"
            config.write_text(config_text(address, challenge_port, pebble, storage))
            yield Outside(pebble, address, challenge_port, config, storage)
        finally:
            pebble.stop()
    finally:
        await dns_server.stop()


@asynccontextmanager
async def acme_world(tmp_path: Path) -> AsyncIterator[World]:
    async with outside(tmp_path) as world:
        clock = Clock()
        config = world.config
        snapshot = load_snapshot(config)
        host = PolicyHost(snapshot, loader=lambda generation: load_snapshot(config, generation=generation), clock=clock)
        manager = AcmeManager(host, clock=clock)
        try:
            await host.start()
            await manager.start(run=False)
            assert manager.bound == (ListenAddress(world.address, world.challenge_port),)
            yield World(host, manager, world.pebble, clock, world.address, world.storage)
        finally:
            await manager.stop()
            await host.stop()


async def test_issues_one_certificate_per_name_and_serves_it_by_sni(tmp_path: Path) -> None:
    async with acme_world(tmp_path) as world:
        # first start: nothing issued yet, nothing served, and that is not an error
        assert world.host.snapshot.sites == {}
        assert world.host.snapshot.unserved == tuple((name, ACME_PENDING) for name in DOMAINS)
        report = await world.manager.tick()
        assert sorted(report.issued) == [f"mta-sts.{name}" for name in DOMAINS], world.pebble.log.read_text()
        assert report.failed == ()
        assert report.unavailable is None
        context = world.pebble.client_context()
        for name in DOMAINS:
            host_name = f"mta-sts.{name}"
            _serial, san = await world.served_certificate(host_name)
            assert san == [("DNS", host_name)]  # exactly one name: no growing SAN list
            status, headers, body = await asyncio.to_thread(
                fetch, world.port, host_name, context, address=world.address
            )
            assert (status, headers.get_all("Content-Type"), body) == (200, ["text/plain"], canonical_body(name))
            current = world.storage / "certificates" / host_name / "current"
            assert current.is_symlink()
            assert stat.S_IMODE((current.resolve() / "privkey.pem").stat().st_mode) == 0o600
        assert len(world.manager.tokens) == 0  # the challenge tokens are gone once validated
        metrics = world.host.render_metrics()
        for name in DOMAINS:
            assert f'mtasts_publish_certificate_days_left{{name="mta-sts.{name}"}} ' in metrics
        assert "mtasts_publish_acme_issued_total 2" in metrics
        # the next pass has nothing to do: both are far from two thirds of their lifetime
        again = await world.manager.tick()
        assert again.issued == ()
        assert world.manager.attempts == 2


async def test_renewal_past_two_thirds_replaces_the_certificate_without_dropping_a_request(
    tmp_path: Path,
) -> None:
    async with acme_world(tmp_path) as world:
        await world.manager.tick()
        name = DOMAINS[0]
        host_name = f"mta-sts.{name}"
        expected = (200, canonical_body(name))
        old_serial, _ = await world.served_certificate(host_name)
        context = world.pebble.client_context()
        keep_alive = await asyncio.to_thread(Client, world.port, host_name, context, address=world.address)
        try:
            assert (await asyncio.to_thread(keep_alive.request))[0] == 200
            generation = world.host.snapshot.generation

            world.clock.advance(timedelta(days=59))  # before two thirds (60 days): nothing to do
            assert (await world.manager.tick()).issued == ()

            results: list[object] = []
            stop = threading.Event()

            def hammer() -> None:  # new connections, one GET each, while the renewal swaps state
                while not stop.is_set():
                    try:
                        status, _, body = fetch(world.port, host_name, context, address=world.address)
                        results.append((status, body))
                    except Exception as exc:
                        results.append(exc)

            threads = [threading.Thread(target=hammer) for _ in range(3)]
            for thread in threads:
                thread.start()
            try:
                world.clock.advance(timedelta(days=2))  # 61 days: past two thirds
                report = await world.manager.tick()
            finally:
                stop.set()
                for thread in threads:
                    await asyncio.to_thread(thread.join, 10)
            assert sorted(report.issued) == [f"mta-sts.{n}" for n in DOMAINS]
            assert results
            assert all(r == expected for r in results), [r for r in results if r != expected][:3]
            new_serial, san = await world.served_certificate(host_name)
            assert new_serial != old_serial
            assert san == [("DNS", host_name)]
            assert world.host.snapshot.generation > generation  # swapped in, no restart
            # the connection opened before the renewal goes on serving (its TLS session is kept)
            assert (await asyncio.to_thread(keep_alive.request, POLICY_PATH))[0] == 200
        finally:
            keep_alive.close()
        # two generations are kept on disk: the new one and the one it replaced
        kept = [p for p in (world.storage / "certificates" / host_name).iterdir() if not p.is_symlink()]
        assert len(kept) == 2


async def test_failing_ca_backs_off_keeps_the_old_certificate_and_alerts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with acme_world(tmp_path) as world:
        await world.manager.tick()
        host_name = f"mta-sts.{DOMAINS[0]}"
        serial, _ = await world.served_certificate(host_name)
        world.pebble.stop()
        world.clock.advance(timedelta(days=61))
        caplog.set_level(logging.INFO, logger="mtasts.publish")

        report = await world.manager.tick()
        assert report.issued == ()
        assert report.unavailable is not None
        assert "cannot reach" in report.unavailable
        assert world.manager.backoff().failures == 1
        assert world.manager.attempts == 3  # one try for the CA, not one per domain
        failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(
            "the CA cannot be used (attempt 1)" in m and "retrying in 60 s" in m and "stays served" in m
            for m in failures
        ), failures
        assert (await world.served_certificate(host_name))[0] == serial  # the old certificate is kept

        world.clock.advance(timedelta(seconds=30))  # within the backoff: no attempt
        await world.manager.tick()
        assert world.manager.attempts == 3
        world.clock.advance(timedelta(seconds=40))  # past it: one attempt, then twice as long
        caplog.clear()
        await world.manager.tick()
        assert world.manager.attempts == 4
        assert world.manager.backoff().failures == 2
        assert any("(attempt 2)" in r.getMessage() and "retrying in 120 s" in r.getMessage() for r in caplog.records)

        # still failing 80 days in: 10 days left, an alert in the log and in the metrics
        world.clock.advance(timedelta(days=19))
        caplog.clear()
        await world.manager.tick()
        alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alert:")]
        assert any(host_name in m and "expires in" in m and "cannot reach" in m for m in alerts), alerts
        metrics = world.host.render_metrics()
        assert f'mtasts_publish_certificate_expiring{{name="{host_name}"}} 1' in metrics
        days = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith(f'mtasts_publish_certificate_days_left{{name="{host_name}"}}')
        )
        assert 9.9 < days < 10.1
        assert (await world.served_certificate(host_name))[0] == serial


async def test_serve_gets_certificates_from_pebble_and_serves_them(tmp_path: Path) -> None:
    """The real command, as a user starts it: ``mtasts publish serve`` with ``[acme]`` orders
    both certificates by itself (its own loop and clock) and serves them."""
    async with outside(tmp_path) as world:
        process = await asyncio.create_subprocess_exec(
            *MTASTS,
            "publish",
            "serve",
            "--config",
            str(world.config),
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        lines: list[str] = []
        try:
            port = 0
            while not port:
                line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
                assert line, "\n".join(lines)
                lines.append(line.rstrip())
                if match := re.search(rf"serving 0 domains on https://{re.escape(world.address)}:(\d+)", line):
                    port = int(match.group(1))
            drain = asyncio.ensure_future(_collect(process.stderr, lines))
            context = world.pebble.client_context()
            for name in DOMAINS:
                host_name = f"mta-sts.{name}"
                for _ in range(300):
                    try:
                        answer = await asyncio.to_thread(fetch, port, host_name, context, address=world.address)
                        break
                    except ssl.SSLCertVerificationError:  # the fallback certificate until it is issued
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("\n".join(lines))
                assert (answer[0], answer[2]) == (200, canonical_body(name))
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
            await drain
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        text = "\n".join(lines)
        assert "d0001.acme.publish.test: not served (waiting for its ACME certificate)" in text
        assert f"ACME: 2 domains from {world.pebble.directory}, http-01 on http://{world.address}:" in text
        assert len(re.findall(r"certificate for mta-sts\.d000[12]\.acme\.publish\.test issued", text)) == 2, text


async def _collect(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        lines.append(line.decode().rstrip())


async def test_a_reload_that_adds_a_domain_gets_its_certificate_without_waiting(tmp_path: Path) -> None:
    """The manager's own loop (not :meth:`tick`): it orders at start, then sleeps up to an hour;
    a reload that adds a domain wakes it."""
    async with outside(tmp_path) as world:
        world.config.write_text(
            config_text(world.address, world.challenge_port, world.pebble, world.storage, DOMAINS[:1])
        )
        config = world.config
        host = PolicyHost(load_snapshot(config), loader=lambda generation: load_snapshot(config, generation=generation))
        manager = AcmeManager(host)
        await host.start()
        await manager.start()
        try:

            async def served(count: int) -> None:
                for _ in range(300):
                    if len(host.snapshot.sites) == count:
                        return
                    await asyncio.sleep(0.1)
                raise AssertionError(world.pebble.log.read_text())

            await served(1)
            config.write_text(config_text(world.address, world.challenge_port, world.pebble, world.storage))
            assert (await host.reload()).ok
            await served(2)
            status, _, body = await asyncio.to_thread(
                fetch, host.bound[0].port, f"mta-sts.{DOMAINS[1]}", world.pebble.client_context(), address=world.address
            )
            assert (status, body) == (200, canonical_body(DOMAINS[1]))
        finally:
            await manager.stop()
            await host.stop()
