"""``mtasts publish apply`` through the real command, against the real world on loopback.

The policy host is :class:`~mtasts.publish.host.PolicyHost` (what ``publish serve`` runs) with
its admin listener, so ``apply`` reloads it as it reloads a running ``serve``; the zone is
served by Debian's ``knotd`` (:mod:`tests.publish.knot`), which is both the authoritative server
the inspector's adapters resolve through and the server RFC 2136 updates go to, signed with a
TSIG key its ACL allows. ``apply`` runs in its own process (it drives its own event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mtasts.core.policy import Mode, Policy
from mtasts.lab.world import random_network
from mtasts.net.dns import DnsClient
from mtasts.net.https import fetch_policy
from mtasts.net.settings import NetworkSettings, parse_nameserver
from mtasts.publish.config import ListenAddress
from mtasts.publish.history import Served, SqlPublishHistory
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import load_snapshot
from mtasts.store.store import ReportStore
from tests.commands import MTASTS
from tests.publish.hosting import make_domains
from tests.publish.knot import KEY_ALGORITHM, KEY_NAME, Knot, need_knotd, start_knot

DOMAIN = "apply.publish.test"
MX = f"mx1.{DOMAIN}"
LIVE_ID = "20260101T000000"

pytestmark = pytest.mark.lab


def body(max_age: int) -> bytes:
    return Policy(mode=Mode.TESTING, max_age=max_age, mx=(MX,)).to_text().encode()


def config_text(web: str, max_age: int, knot: Knot | None) -> str:
    text = (
        f'[server]\nlisten = ["{web}:0"]\nadmin = "off"\n\n'
        f'[[domain]]\nname = "{DOMAIN}"\nmode = "testing"\nmx = ["{MX}"]\nmax_age = {max_age}\n'
        'cert = "cert.pem"\nkey = "key.pem"\n'
    )
    if knot is not None:
        text += (
            f'\n[dns]\nserver = "{knot.host}:{knot.port}"\nzone = "{DOMAIN}"\nkey_name = "{KEY_NAME}"\n'
            f'algorithm = "{KEY_ALGORITHM}"\nsecret_file = "{knot.secret_file}"\nttl = 300\n'
        )
    return text


def entries(db: Path) -> list[Served]:
    with SqlPublishHistory(ReportStore(f"sqlite:///{db}")) as history:
        return history.entries(DOMAIN)


class World:
    """Certificates, the history with the live body, knotd with the zone, one or two hosts."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        material = make_domains(tmp_path / "certs", 0)
        issued = material.ca.issue_cert(f"mta-sts.{DOMAIN}")
        issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        (tmp_path / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        hosts = iter(random_network().hosts())
        self.web, self.stale_web = str(next(hosts)), str(next(hosts))
        self.config = tmp_path / "publish.toml"
        self.db = tmp_path / "mtasts.sqlite3"
        with SqlPublishHistory(ReportStore(f"sqlite:///{self.db}")) as history:
            history.record(Served(DOMAIN, LIVE_ID, body(86400), Mode.TESTING, 86400, datetime.now(UTC) - timedelta(3)))

    @asynccontextmanager
    async def serving(self, *, dns: bool = True) -> AsyncIterator[tuple[Knot, PolicyHost]]:
        """knotd with the zone, the configuration (max_age 86400; ``[dns]`` pointing at knotd
        when ``dns``) and the policy host serving it, stopped at the end."""
        with start_knot(self.tmp / "knot", DOMAIN, self.records(self.web)) as knot:
            self.config.write_text(config_text(self.web, 86400, knot if dns else None))
            host = self.host(self.config, self.web)
            await host.start()
            try:
                yield knot, host
            finally:
                await host.stop()

    def records(self, web: str) -> list[str]:
        return [
            f"@ IN MX 10 {MX}.",
            f"mta-sts IN A {web}",
            f'_mta-sts IN TXT "v=STSv1; id={LIVE_ID}"',
        ]

    def host(self, config: Path, web: str, port: int = 0) -> PolicyHost:
        return PolicyHost(
            load_snapshot(config),
            loader=lambda generation: load_snapshot(config, generation=generation),
            listen=[ListenAddress(web, port)],
            admin=ListenAddress("127.0.0.1", 0),
        )

    async def apply(self, knot: Knot, host: PolicyHost, port: int) -> tuple[int, str, str]:
        assert host.admin_bound is not None
        process = await asyncio.create_subprocess_exec(
            *MTASTS,
            "publish",
            "apply",
            "--config",
            str(self.config),
            "--db",
            str(self.db),
            "--admin",
            host.admin_bound.to_text(),
            "--nameserver",
            f"{knot.host}:{knot.port}",
            "--ca-file",
            str(self.tmp / "certs" / "ca.pem"),
            "--https-port",
            str(port),
            "--timeout",
            "5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()


async def test_apply_serves_verifies_records_and_updates_the_txt_in_knot(tmp_path: Path) -> None:
    need_knotd()
    world = World(tmp_path)
    async with world.serving() as (knot, host):
        port = host.bound[0].port
        world.config.write_text(config_text(world.web, 43200, knot))  # the change, not served yet
        code, out, err = await world.apply(knot, host, port)
        assert (code, err) == (0, ""), out + err
        history = entries(world.db)
        assert next(e.policy_id for e in history) == LIVE_ID
        new = history[-1]
        assert new.policy_id != LIVE_ID
        assert new.current
        assert new.body == body(43200)
        assert out.splitlines() == [
            f"{DOMAIN}: done",
            "  served: reloaded the policy host: generation 2, 1 domain served",
            f"  verified: mta-sts.{DOMAIN} serves the new body (sha256 {new.sha256[:12]})",
            f"  recorded: id {new.policy_id} in the history",
            f'  published: _mta-sts.{DOMAIN}. 300 IN TXT "v=STSv1; id={new.policy_id}" (RFC 2136 update)',
            f"  confirmed: _mta-sts.{DOMAIN} answers id={new.policy_id}",
        ]
        assert knot.txt(f"_mta-sts.{DOMAIN}.") == (f"v=STSv1; id={new.policy_id}",)

        # a sender (the inspector's own adapters) now sees the new id and the new body
        settings = NetworkSettings(
            nameserver=parse_nameserver(f"{knot.host}:{knot.port}"),
            ca_file=tmp_path / "certs" / "ca.pem",
            https_port=port,
            timeout=5,
        )
        dns = DnsClient(settings)
        txt = await dns.txt(f"_mta-sts.{DOMAIN}")
        assert [b"".join(s).decode() for s in txt.values] == [f"v=STSv1; id={new.policy_id}"]
        fetched = await fetch_policy(DOMAIN, dns, settings, now=datetime.now(UTC))
        assert fetched.failure is None
        assert fetched.body == body(43200)

        # applied again: nothing left to do, nothing written
        code, out, _ = await world.apply(knot, host, port)
        assert (code, out) == (0, f"{DOMAIN}: nothing to do\n")
        assert len(entries(world.db)) == 2


async def test_a_failed_verify_records_nothing_and_leaves_dns_alone(tmp_path: Path) -> None:
    """The name points at a second, stale host (still the old body): the reloaded host serves
    the new body, but a sender would fetch the old one, so the id must not move."""
    need_knotd()
    world = World(tmp_path)
    stale_config = tmp_path / "stale.toml"
    stale_config.write_text(config_text(world.stale_web, 86400, None))
    stale = world.host(stale_config, world.stale_web)
    await stale.start()
    port = stale.bound[0].port
    try:
        with start_knot(tmp_path / "knot", DOMAIN, world.records(world.stale_web)) as knot:
            world.config.write_text(config_text(world.web, 86400, knot))
            host = world.host(world.config, world.web, port)
            await host.start()
            try:
                world.config.write_text(config_text(world.web, 43200, knot))
                code, out, err = await world.apply(knot, host, port)
                assert code == 1
                assert err.startswith(f"mtasts: error: {DOMAIN}: verify failed: mta-sts.{DOMAIN} serves another body")
                assert err.rstrip().endswith("nothing recorded, DNS untouched")
                assert len(err.splitlines()) == 1
                assert "recorded" not in out.replace("nothing recorded", "")
                assert [e.policy_id for e in entries(world.db)] == [LIVE_ID]
                assert knot.txt(f"_mta-sts.{DOMAIN}.") == (f"v=STSv1; id={LIVE_ID}",)
            finally:
                await host.stop()
    finally:
        await stale.stop()


async def test_without_dns_section_apply_prints_the_record_and_stops(tmp_path: Path) -> None:
    need_knotd()
    world = World(tmp_path)
    async with world.serving(dns=False) as (knot, host):
        port = host.bound[0].port
        world.config.write_text(config_text(world.web, 43200, None))
        code, out, err = await world.apply(knot, host, port)
        assert (code, err) == (1, "")
        new = entries(world.db)[-1]
        assert new.policy_id != LIVE_ID
        assert new.body == body(43200)
        assert out.splitlines()[-1] == (
            f'  set this record, then run apply again: _mta-sts.{DOMAIN}. 3600 IN TXT "v=STSv1; id={new.policy_id}"'
        )
        assert knot.txt(f"_mta-sts.{DOMAIN}.") == (f"v=STSv1; id={LIVE_ID}",)

        # run again before the record is set: the body is served and recorded; only the id is left
        code, out, _ = await world.apply(knot, host, port)
        assert code == 1
        assert "served:" not in out
        assert "recorded:" not in out
        assert out.splitlines()[-1].endswith(f'IN TXT "v=STSv1; id={new.policy_id}"')
        assert len(entries(world.db)) == 2


async def test_several_refusing_guards_are_one_line_each(tmp_path: Path) -> None:
    """testing → enforce three days into testing, with no reports: the testing-days and the
    reporters guards (and the live ones: no MX answers here) refuse; ``apply`` prints one line per
    refusal, each with the guard's value and what it needs, as ``plan`` does, and changes nothing."""
    need_knotd()
    world = World(tmp_path)
    async with world.serving() as (knot, host):
        world.config.write_text(config_text(world.web, 86400, knot).replace('mode = "testing"', 'mode = "enforce"'))
        code, out, err = await world.apply(knot, host, host.bound[0].port)
        assert (code, err) == (1, "")
        lines = out.splitlines()
        assert lines[0] == f"{DOMAIN}:"
        refusals = lines[1:]
        assert len(refusals) >= 2
        assert all(line.startswith("  testing → enforce refused: ") for line in refusals), out
        assert all(line.count("refused") == 1 for line in refusals), out
        assert refusals[0].startswith("  testing → enforce refused: in testing for 3 days since ")
        assert refusals[0].endswith("; needs 14 days")
        assert refusals[1].startswith("  testing → enforce refused: reports from 0 organisations from ")
        assert refusals[1].endswith("; needs 2")
        assert [e.policy_id for e in entries(world.db)] == [LIVE_ID]
        assert knot.txt(f"_mta-sts.{DOMAIN}.") == (f"v=STSv1; id={LIVE_ID}",)
