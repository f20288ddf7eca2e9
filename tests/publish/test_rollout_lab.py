"""The whole roll-out of one domain on the lab, as an operator runs it, three weeks in a minute.

``init → apply (testing) → reports ingested → apply enforce (refused too early) → more clean
reports → apply enforce (accepted) → retire (mode none served and announced) → retire (waits)
→ retire (records deleted, name no longer served: removed)``.

Everything is real and on loopback: the policy host is :class:`~mtasts.publish.host.PolicyHost`
(what ``mtasts publish serve`` runs) with its admin listener, so every ``apply`` and ``retire``
reloads it as it reloads a running ``serve``; the zone is served by Debian's ``knotd``, both the
authoritative server the inspector's adapters resolve through and the one the RFC 2136 updates
(TSIG-signed) go to; the MX is the lab's SMTP server with STARTTLS and a lab-CA certificate,
which the enforce guard's live inspection probes. The TLSRPT reports are JSON documents written
by the test, read by the real report parser and put into the report store through its API, day
by day, as a report ingest would. Every command runs in its own process, as the user types it.

Time: the weeks pass through the commands' hidden ``--now`` option (the roll-out clock, which
dates the history and drives the guards; certificates are still checked against the real
clock), so nothing sleeps. A second domain stays configured throughout, to show that the
removal of one takes nothing from the other.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mtasts.core.policy import Mode, Policy
from mtasts.core.tlsrpt_report import parse_report
from mtasts.lab.certs import LabCertificates
from mtasts.lab.plan import SmtpHost
from mtasts.lab.scenarios import CertKind
from mtasts.lab.smtp import Mailboxes, SmtpServer
from mtasts.lab.world import random_network
from mtasts.net.dns import DnsClient
from mtasts.net.https import fetch_policy
from mtasts.net.settings import NetworkSettings, parse_nameserver
from mtasts.publish.config import ListenAddress, parse_config
from mtasts.publish.history import Served, SqlPublishHistory
from mtasts.publish.host import PolicyHost
from mtasts.publish.rollout import Stage, stage_of
from mtasts.publish.snapshot import load_snapshot
from mtasts.store.store import ReportStore
from tests.commands import MTASTS
from tests.publish.hosting import fetch as fetch_direct
from tests.publish.knot import KEY_ALGORITHM, KEY_NAME, Knot, need_knotd, start_knot

pytestmark = pytest.mark.lab

DOMAIN = "rollout.publish.test"
OTHER = f"shop.{DOMAIN}"  # a second mail domain on the same host, in the same zone
MX = f"mx1.{DOMAIN}"
RUA = f"mailto:tlsrpt@{DOMAIN}"
REPORTERS = ("Reporter One", "Reporter Two")
DAY = timedelta(days=1)


def policy_body(mode: str, max_age: int = 86400) -> bytes:
    """The body a sender must get at each stage, built from the core's types alone."""
    return Policy(mode=Mode(mode), max_age=max_age, mx=(MX,)).to_text().encode()


def report(organization: str, day: date, successes: int) -> bytes:
    """One day's RFC 8460 report from one organisation: every session to the MX succeeded."""
    return json.dumps(
        {
            "organization-name": organization,
            "date-range": {
                "start-datetime": f"{day.isoformat()}T00:00:00Z",
                "end-datetime": f"{day.isoformat()}T23:59:59Z",
            },
            "contact-info": f"tlsrpt@{organization.lower().replace(' ', '-')}.example",
            "report-id": f"{organization}-{day.isoformat()}",
            "policies": [
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-string": policy_body("testing").decode().splitlines(),
                        "policy-domain": DOMAIN,
                        "mx-host": [MX],
                    },
                    "summary": {"total-successful-session-count": successes, "total-failure-session-count": 0},
                }
            ],
        }
    ).encode()


class World:
    """Certificates, the configuration, knotd, the MX and the policy host, and the commands."""

    def __init__(self, tmp_path: Path, knot: Knot, web: str, smtp: SmtpServer, certs: LabCertificates) -> None:
        self.tmp = tmp_path
        self.knot = knot
        self.web = web
        self.smtp = smtp
        self.config = tmp_path / "publish.toml"
        self.db = tmp_path / "mtasts.sqlite3"
        self.ca_file = tmp_path / "ca.pem"
        self.ca_file.write_bytes(certs.ca_pem)
        for name in (DOMAIN, OTHER):
            private_key, chain = certs.leaf(CertKind.GOOD, f"mta-sts.{name}")
            (tmp_path / f"{name}.key").write_bytes(private_key)
            (tmp_path / f"{name}.pem").write_bytes(chain)
        self.config.write_text(
            f'[server]\nlisten = ["{web}:0"]\nadmin = "off"\n\n'
            f'[dns]\nserver = "{knot.host}:{knot.port}"\nzone = "{DOMAIN}"\nkey_name = "{KEY_NAME}"\n'
            f'algorithm = "{KEY_ALGORITHM}"\nsecret_file = "{knot.secret_file}"\nttl = 300\n\n'
            f'[[domain]]\nname = "{OTHER}"\nmode = "testing"\nmx = ["{MX}"]\nmax_age = 86400\n'
            f'cert = "{OTHER}.pem"\nkey = "{OTHER}.key"\n'
        )
        self.host = PolicyHost(
            load_snapshot(self.config),
            loader=lambda generation: load_snapshot(self.config, generation=generation),
            listen=[ListenAddress(web, 0)],
            admin=ListenAddress("127.0.0.1", 0),
        )

    @property
    def https_port(self) -> int:
        return self.host.bound[0].port

    def network(self) -> list[str]:
        return [
            "--nameserver",
            f"{self.knot.host}:{self.knot.port}",
            "--ca-file",
            str(self.ca_file),
            "--https-port",
            str(self.https_port),
            "--smtp-port",
            str(self.smtp.port),
            "--timeout",
            "5",
        ]

    async def mtasts(self, command: str, *args: str, now: datetime) -> tuple[int, str]:
        """``mtasts publish COMMAND`` in its own process at roll-out time ``now``; stderr must
        hold only the warning that the clock was set by hand (failures are in the assertions)."""
        assert self.host.admin_bound is not None
        rest = ["--config", str(self.config)]
        if command != "init":
            rest += ["--db", str(self.db)]
        if command in ("apply", "retire"):
            rest += ["--admin", self.host.admin_bound.to_text()]
        if command != "status":
            rest += self.network()
        process = await asyncio.create_subprocess_exec(
            *MTASTS,
            "publish",
            command,
            *args,
            *rest,
            "--now",
            now.isoformat(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
        assert stderr.decode() == f"mtasts: warning: --now {now.isoformat()}: the roll-out clock is set by hand\n", (
            stdout.decode() + stderr.decode()
        )
        assert process.returncode is not None
        return process.returncode, stdout.decode()

    def history(self) -> list[Served]:
        with SqlPublishHistory(ReportStore(f"sqlite:///{self.db}")) as history:
            return history.entries(DOMAIN)

    def ingest(self, days: range, start: date) -> None:
        """Each reporter's report for each day, through the parser and the store's API."""
        reports = [parse_report(report(org, start + n * DAY, 40 + n)) for n in days for org in REPORTERS]
        with ReportStore(f"sqlite:///{self.db}") as store:
            results = store.add_reports(reports, source="test-rollout", now=datetime.now(UTC))
        assert all(r.stored for r in results)

    async def sender_sees(self) -> tuple[tuple[str, ...], bytes | None]:
        """What a sender sees now, through the inspector's own adapters: the TXT, the body."""
        settings = NetworkSettings(
            nameserver=parse_nameserver(f"{self.knot.host}:{self.knot.port}"),
            ca_file=self.ca_file,
            https_port=self.https_port,
            timeout=5,
        )
        dns = DnsClient(settings)
        txt = await dns.txt(f"_mta-sts.{DOMAIN}")
        fetched = await fetch_policy(DOMAIN, dns, settings, now=datetime.now(UTC))
        return tuple(b"".join(s).decode() for s in txt.values), fetched.body if fetched.failure is None else None


async def test_init_testing_reports_enforce_retire_removed(tmp_path: Path) -> None:
    need_knotd()
    certs = LabCertificates(now=datetime.now(UTC))
    hosts = iter(random_network().hosts())
    web, mx_address = str(next(hosts)), str(next(hosts))
    records = [
        f"@ IN MX 10 {MX}.",
        f"mx1 IN A {mx_address}",
        f"mta-sts IN A {web}",
        f'_smtp._tls IN TXT "v=TLSRPTv1; rua={RUA}"',
    ]
    smtp = SmtpServer(
        [SmtpHost(MX, mx_address)], lambda host: certs.server_context(CertKind.GOOD, host.name), Mailboxes()
    )
    t0 = datetime.now(UTC).replace(microsecond=0)
    with start_knot(tmp_path / "knot", DOMAIN, records) as knot:
        world = World(tmp_path, knot, web, smtp, certs)
        await smtp.start()
        await world.host.start()
        try:
            await rollout(world, t0)
        finally:
            await world.host.stop()
            await smtp.stop()


async def rollout(world: World, t0: datetime) -> None:
    # --- init: the entry from live DNS (one MX, its rua), nothing that would block enforce
    code, out = await world.mtasts(
        "init", DOMAIN, "--cert", str(world.tmp / f"{DOMAIN}.pem"), "--key", str(world.tmp / f"{DOMAIN}.key"), now=t0
    )
    assert code == 0
    assert out == f"{DOMAIN}: added to {world.config} (mode testing, max_age 86400, 1 MX host, rua {RUA})\n"
    entry = parse_config(world.config.read_text(), world.config).domain(DOMAIN)
    assert entry is not None
    assert (entry.mode, entry.max_age, entry.mx, entry.rua) == (Mode.TESTING, 86400, (MX,), (RUA,))
    assert await world.sender_sees() == ((), None)  # nothing published yet

    # --- apply: testing is served, verified from outside, recorded, announced by RFC 2136
    code, out = await world.mtasts("apply", DOMAIN, now=t0)
    assert code == 0, out
    (testing,) = world.history()
    assert (testing.mode, testing.since, testing.body) == (Mode.TESTING, t0, policy_body("testing"))
    assert out.splitlines() == [
        f"{DOMAIN}: done",
        "  served: reloaded the policy host: generation 2, 2 domains served",
        f"  verified: mta-sts.{DOMAIN} serves the new body (sha256 {testing.sha256[:12]})",
        f"  recorded: id {testing.policy_id} in the history",
        f'  published: _mta-sts.{DOMAIN}. 300 IN TXT "v=STSv1; id={testing.policy_id}" (RFC 2136 update)',
        f"  confirmed: _mta-sts.{DOMAIN} answers id={testing.policy_id}",
    ]
    assert await world.sender_sees() == ((f"v=STSv1; id={testing.policy_id}",), policy_body("testing"))

    # --- five days of clean reports from two organisations; enforce asked for: too early
    world.ingest(range(5), t0.date())
    before, name_line, after = world.config.read_text().partition(f'name = "{DOMAIN}"')
    world.config.write_text(before + name_line + after.replace('mode = "testing"', 'mode = "enforce"', 1))
    enforce_asked = parse_config(world.config.read_text(), world.config)
    assert [(d.name, d.mode) for d in enforce_asked.domains] == [(OTHER, Mode.TESTING), (DOMAIN, Mode.ENFORCE)]
    code, out = await world.mtasts("apply", DOMAIN, now=t0 + 5 * DAY)
    assert code == 1
    assert out.splitlines() == [
        f"{DOMAIN}:",
        f"  testing → enforce refused: in testing for 5 days since {t0:%Y-%m-%d %H:%M} UTC; needs 14 days",
    ]
    assert world.history() == [testing]  # nothing recorded, nothing served, DNS untouched
    assert await world.sender_sees() == ((f"v=STSv1; id={testing.policy_id}",), policy_body("testing"))
    code, out = await world.mtasts("status", DOMAIN, now=t0 + 5 * DAY)
    assert code == 0
    assert out.splitlines()[1] == "  guards: testing-days 5/14 (not yet), reporters 2/2, failures 0/0"
    assert (
        out.splitlines()[2]
        == f"  next: enforce possible if reports stay clean, from {t0 + 14 * DAY:%Y-%m-%d %H:%M} UTC"
    )

    # --- the reports keep coming, clean; on day 15 enforce is accepted (the live check too)
    world.ingest(range(5, 15), t0.date())
    code, out = await world.mtasts("apply", DOMAIN, now=t0 + 15 * DAY)
    assert code == 0, out
    testing_ended, enforce = world.history()
    assert (enforce.mode, enforce.max_age, enforce.since) == (Mode.ENFORCE, 86400, t0 + 15 * DAY)
    assert testing_ended.until == t0 + 15 * DAY
    assert out.splitlines()[0] == f"{DOMAIN}: done"
    assert f"  recorded: id {enforce.policy_id} in the history" in out.splitlines()
    assert await world.sender_sees() == ((f"v=STSv1; id={enforce.policy_id}",), policy_body("enforce"))

    # --- retire: mode none with a short max_age and a new id, served, verified, announced
    code, out = await world.mtasts("retire", DOMAIN, now=t0 + 20 * DAY)
    assert code == 0, out
    none = world.history()[-1]
    assert (none.mode, none.max_age, none.since) == (Mode.NONE, 86400, t0 + 20 * DAY)
    safe_at = t0 + 21 * DAY  # enforce served until day 20, max_age a day
    assert out.splitlines() == [
        f"{DOMAIN}: done",
        f'  configured: mode = "none", max_age = 86400 in {world.config}',
        "  served: reloaded the policy host: generation 4, 2 domains served",
        f"  verified: mta-sts.{DOMAIN} serves the new body (sha256 {none.sha256[:12]})",
        f"  recorded: id {none.policy_id} in the history",
        f'  published: _mta-sts.{DOMAIN}. 300 IN TXT "v=STSv1; id={none.policy_id}" (RFC 2136 update)',
        f"  confirmed: _mta-sts.{DOMAIN} answers id={none.policy_id}",
        f"  next: keep serving mode none until {safe_at:%Y-%m-%d %H:%M} UTC, then run mtasts publish retire "
        f"{DOMAIN} again",
    ]
    assert await world.sender_sees() == ((f"v=STSv1; id={none.policy_id}",), policy_body("none"))

    # --- half a day later: a sender may still hold the enforce policy; nothing is deleted
    code, out = await world.mtasts("retire", DOMAIN, now=t0 + 20 * DAY + DAY / 2)
    assert code == 0, out
    assert out.splitlines() == [f"{DOMAIN}:", f"  keep serving mode none until {safe_at:%Y-%m-%d %H:%M} UTC"]
    assert world.history()[-1] == none
    assert stage_of(world.history()) is Stage.RETIRING

    # --- past the longest max_age: the record goes (RFC 2136), then the name stops being served
    removed_at = safe_at + timedelta(minutes=1)
    code, out = await world.mtasts("retire", DOMAIN, now=removed_at)
    assert code == 0, out
    assert out.splitlines() == [
        f"{DOMAIN}: done",
        f"  deleted: the TXT record at _mta-sts.{DOMAIN} (RFC 2136 update); no v=STSv1 record is left",
        f"  stopped: mta-sts.{DOMAIN} serves no policy any more (reloaded the policy host: generation 5, "
        f"1 domain served; its entry in {world.config} is commented out)",
        f"  recorded: {DOMAIN} removed (id {none.policy_id} served until {removed_at:%Y-%m-%d %H:%M} UTC)",
    ]
    assert world.knot.txt(f"_mta-sts.{DOMAIN}.") == ()
    assert await world.sender_sees() == ((), None)
    history = world.history()
    assert stage_of(history) is Stage.REMOVED
    assert history[-1].until == removed_at
    assert world.host.snapshot.site(f"mta-sts.{DOMAIN}") is None
    remaining = parse_config(world.config.read_text(), world.config)
    assert [d.name for d in remaining.domains] == [OTHER]
    assert (
        f"# {DOMAIN}: removed by mtasts publish retire on {removed_at:%Y-%m-%d %H:%M} UTC" in world.config.read_text()
    )
    # the other domain is still served, exactly as before
    context = ssl.create_default_context(cafile=str(world.ca_file))
    status, _, served = await asyncio.to_thread(  # a blocking client: off the loop the host runs on
        fetch_direct, world.https_port, f"mta-sts.{OTHER}", context, address=world.web
    )
    assert (status, served) == (200, policy_body("testing"))

    code, out = await world.mtasts("status", DOMAIN, now=removed_at + DAY)
    assert (code, out.splitlines()[:2]) == (
        0,
        [
            f"{DOMAIN}: removed on {removed_at:%Y-%m-%d %H:%M} UTC",
            "  next: nothing: its record is deleted and it is no longer served",
        ],
    )
    code, out = await world.mtasts("retire", DOMAIN, now=removed_at + DAY)
    assert (code, out) == (0, f"{DOMAIN}: removed on {removed_at:%Y-%m-%d %H:%M} UTC: nothing left to do\n")
