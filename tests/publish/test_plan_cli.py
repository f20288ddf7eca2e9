"""``mtasts publish plan`` and ``status`` through the real command.

``plan`` runs in its own process (it drives its own event loop) against a domain served by the
policy host (:class:`~mtasts.publish.host.PolicyHost`, what ``mtasts publish serve`` runs) with
the lab's authoritative DNS and one trustme CA, and the published history in a SQLite file,
written through :class:`~mtasts.publish.history.SqlPublishHistory` as ``apply`` will write it.
``status`` reads only the configuration and the database, so it runs in-process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.policy import Mode, Policy
from mtasts.core.tlsrpt_report import parse_report
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record
from mtasts.lab.world import random_network
from mtasts.publish.history import Served, SqlPublishHistory
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import load_snapshot
from mtasts.store.store import ReportStore
from tests.commands import MTASTS
from tests.publish.hosting import make_domains

DOMAIN = "rollout.publish.test"
MX = f"mx1.{DOMAIN}"
LIVE_ID = "20260101T000000"


def config_text(web_address: str, max_age: int, *, mode: str = "testing", mx: str = MX) -> str:
    return (
        f'[server]\nlisten = ["{web_address}:0"]\nadmin = "off"\n\n'
        f'[[domain]]\nname = "{DOMAIN}"\nmode = "{mode}"\nmx = ["{mx}"]\nmax_age = {max_age}\n'
        'cert = "cert.pem"\nkey = "key.pem"\n'
    )


def body(max_age: int, mode: str = "testing") -> bytes:
    return Policy(mode=Mode(mode), max_age=max_age, mx=(MX,)).to_text().encode()


def record_history(db: Path, *entries: Served) -> None:
    with SqlPublishHistory(ReportStore(f"sqlite:///{db}")) as history:
        for entry in entries:
            history.record(entry)


def store_clean_report(
    db: Path, day: datetime, *, org: str = "Reporter One", domain: str = DOMAIN, mx: str = MX
) -> None:
    """One TLS report of ``org`` for ``day``: 50 successful ``sts`` sessions of ``domain`` to
    ``mx``, none failed (what the roll-out guards count)."""
    report = {
        "organization-name": org,
        "date-range": {
            "start-datetime": day.strftime("%Y-%m-%dT00:00:00Z"),
            "end-datetime": day.strftime("%Y-%m-%dT23:59:59Z"),
        },
        "contact-info": "tlsrpt@reporter.example",
        "report-id": "r-1",
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": domain, "policy-string": [], "mx-host": [mx]},
                "summary": {"total-successful-session-count": 50, "total-failure-session-count": 0},
            }
        ],
    }
    with ReportStore(f"sqlite:///{db}") as store:
        store.add_reports([parse_report(json.dumps(report).encode())], source="test", now=datetime.now(UTC))


def network_options(tmp_path: Path, dns: DnsServer, port: int) -> list[str]:
    """The options that point ``plan`` at the test's DNS, CA and policy host."""
    return [
        "--nameserver",
        f"{dns.address}:{dns.port}",
        "--ca-file",
        str(tmp_path / "certs" / "ca.pem"),
        "--https-port",
        str(port),
        "--timeout",
        "5",
    ]


async def run_plan(tmp_path: Path, config: Path, db: Path, dns: DnsServer, port: int, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "publish",
        "plan",
        "--config",
        str(config),
        "--db",
        str(db),
        *network_options(tmp_path, dns, port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert not stderr, stderr.decode()
    assert process.returncode is not None
    return process.returncode, stdout.decode()


@dataclass(frozen=True)
class ServedDomain:
    """:data:`DOMAIN` in ``testing`` for three days (id :data:`LIVE_ID`, max_age 86400), served by
    a running policy host with its record in a running authoritative DNS server."""

    tmp_path: Path
    config: Path
    db: Path
    web_address: str
    dns: DnsServer
    host: PolicyHost

    def options(self) -> list[str]:
        """``--config``, ``--db`` and the network options of a ``plan`` run on this world."""
        network = network_options(self.tmp_path, self.dns, self.host.bound[0].port)
        return ["--config", str(self.config), "--db", str(self.db), *network]


@asynccontextmanager
async def served_domain(tmp_path: Path) -> AsyncIterator[ServedDomain]:
    material = make_domains(tmp_path / "certs", 0)
    issued = material.ca.issue_cert(f"mta-sts.{DOMAIN}")
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    (tmp_path / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    hosts = iter(random_network().hosts())
    ns_address, web_address = (str(next(hosts)) for _ in range(2))
    config = tmp_path / "publish.toml"
    config.write_text(config_text(web_address, 86400))
    db = tmp_path / "mtasts.sqlite3"
    record_history(db, Served(DOMAIN, LIVE_ID, body(86400), Mode.TESTING, 86400, datetime.now(UTC) - timedelta(3)))
    records = [
        Record(f"{DOMAIN}.", "SOA", f"ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 60"),
        Record(f"{DOMAIN}.", "NS", f"ns.{DOMAIN}."),
        Record(f"ns.{DOMAIN}.", "A", ns_address),
        Record(f"{DOMAIN}.", "MX", f"10 {MX}."),
        Record(f"mta-sts.{DOMAIN}.", "A", web_address),
        Record(f"_mta-sts.{DOMAIN}.", "TXT", f'"v=STSv1; id={LIVE_ID}"'),
    ]
    dns = DnsServer(Zone(DOMAIN, records), ns_address)
    host = PolicyHost(load_snapshot(config), loader=lambda generation: load_snapshot(config, generation=generation))
    try:
        await dns.start()
        await host.start()
        yield ServedDomain(tmp_path, config, db, web_address, dns, host)
    finally:
        await host.stop()
        await dns.stop()


@pytest.mark.lab
async def test_plan_orders_serve_verify_then_txt_and_says_nothing_to_do_when_live_matches(tmp_path: Path) -> None:
    async with served_domain(tmp_path) as world:
        config, db, dns, host = world.config, world.db, world.dns, world.host
        web_address, port = world.web_address, host.bound[0].port

        # live is what the history and the configuration say
        code, out = await run_plan(tmp_path, config, db, dns, port)
        assert code == 0
        assert out == f"{DOMAIN}: testing: nothing to do (id {LIVE_ID})\n"

        # the configuration changes (max_age), the host still serves the old body
        config.write_text(config_text(web_address, 43200))
        code, out = await run_plan(tmp_path, config, db, dns, port)
        assert code == 0
        steps = [line.strip() for line in out.splitlines() if line[:4].strip().rstrip(".").isdigit()]
        assert [line.split(" ", 2)[1] for line in steps] == ["serve", "verify", "record", "publish", "confirm"]
        assert f"mta-sts.{DOMAIN} serves another body" in out
        code, data = await run_plan(tmp_path, config, db, dns, port, "--json")
        (plan,) = json.loads(data)
        new_id = plan["policy_id"]
        assert new_id != LIVE_ID
        assert len(new_id) == 15
        assert new_id[8] == "T"
        assert [s["action"] for s in plan["steps"]] == ["serve", "verify", "record", "publish-txt", "confirm-txt"]
        assert plan["steps"][3]["zone_line"] == f'_mta-sts.{DOMAIN}. 3600 IN TXT "v=STSv1; id={new_id}"'
        assert plan["policy_text"] == body(43200).decode()

        # once the host serves it (reload), only the id is left, and the plan says it is verified
        outcome = await host.reload()
        assert outcome.ok
        code, out = await run_plan(tmp_path, config, db, dns, port)
        assert code == 0
        assert "serve the new body" not in out
        assert f'publish the TXT record _mta-sts.{DOMAIN}. 3600 IN TXT "v=STSv1; id=' in out
        assert "(verified)" in out
        assert f"the live id {LIVE_ID} was announced for another body" in out

        # enforce three days into testing: refused, exit 1, and nothing to carry out
        config.write_text(config_text(web_address, 86400, mode="enforce"))
        code, out = await run_plan(tmp_path, config, db, dns, port)
        assert code == 1
        assert "testing → enforce refused: in testing for 3 days" in out
        assert "  testing → enforce refused: reports from 0 organisations" in out
        assert "1. " not in out


def test_plan_refuses_force_without_a_reason(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["publish", "plan", "--config", str(tmp_path / "none.toml"), "--force"])
    assert result.exit_code == 2
    assert "mtasts: error: --force and --reason TEXT go together" in result.output


def test_plan_of_a_domain_nobody_configured_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(config_text("127.0.0.1", 86400))
    result = runner.invoke(
        app, ["publish", "plan", "other.example", "--config", str(config), "--db", str(tmp_path / "db.sqlite3")]
    )
    assert result.exit_code == 2
    assert "other.example: not in the configuration and never published" in result.output


def test_status_shows_the_guard_values_and_when_enforce_becomes_possible(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(
        config_text("127.0.0.1", 86400) + '\n[[domain]]\nname = "new.example"\nmode = "testing"\n'
        'mx = ["mx.new.example"]\nmax_age = 86400\n'
    )
    db = tmp_path / "mtasts.sqlite3"
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    record_history(db, Served(DOMAIN, LIVE_ID, body(86400), Mode.TESTING, 86400, since))
    store_clean_report(db, since + timedelta(days=1))

    result = runner.invoke(app, ["publish", "status", "--config", str(config), "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{DOMAIN}: testing since {since:%Y-%m-%d %H:%M} UTC (id {LIVE_ID}, max_age 86400)"
    assert lines[1] == "  guards: testing-days 3/14 (not yet), reporters 1/2 (not yet), failures 0/0"
    assert lines[2].startswith("  next: enforce waits on: reports from 1 organisation (Reporter One)")
    assert lines[3] == "new.example: draft; configured: testing"
    assert lines[-1] == "2 domains: 1 testing, 1 draft"

    result = runner.invoke(app, ["publish", "status", DOMAIN, "--config", str(config), "--db", str(db), "--json"])
    (status,) = json.loads(result.output)
    assert status["stage"] == "testing"
    assert status["current"]["policy_id"] == LIVE_ID
    assert {g["guard"]: g["value"] for g in status["guards"]} == {"testing-days": 3, "reporters": 1, "failures": 0}


def test_status_without_a_database_is_every_domain_in_draft(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(config_text("127.0.0.1", 86400))
    result = runner.invoke(app, ["publish", "status", "--config", str(config), "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"{DOMAIN}: draft; configured: testing"
    assert not (tmp_path / "none.db").exists()  # a read creates no database


@pytest.mark.lab
async def test_enforce_is_refused_when_the_live_inspection_finds_an_mx_enforce_would_block(tmp_path: Path) -> None:
    """Twenty clean days, two reporters: every report guard passes, but the MX now presents an
    expired certificate; the inspector, probing it as a sender would under the enforce body,
    predicts that mail to it would be refused, and plan says so with the finding's code."""
    import datetime as dt

    from mtasts.lab.certs import LabCertificates
    from mtasts.lab.plan import SmtpHost
    from mtasts.lab.scenarios import CertKind
    from mtasts.lab.smtp import Mailboxes, SmtpServer

    certs = LabCertificates(now=dt.datetime.now(UTC))
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(certs.ca_pem)
    private_key, chain = certs.leaf(CertKind.GOOD, f"mta-sts.{DOMAIN}")
    (tmp_path / "key.pem").write_bytes(private_key)
    (tmp_path / "cert.pem").write_bytes(chain)
    hosts = iter(random_network().hosts())
    ns_address, web_address, mx_address = (str(next(hosts)) for _ in range(3))
    config = tmp_path / "publish.toml"
    config.write_text(config_text(web_address, 86400))
    db = tmp_path / "mtasts.sqlite3"
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    record_history(db, Served(DOMAIN, LIVE_ID, body(86400), Mode.TESTING, 86400, since))
    reports = [
        {
            "organization-name": org,
            "date-range": {
                "start-datetime": (since + timedelta(days=n)).strftime("%Y-%m-%dT00:00:00Z"),
                "end-datetime": (since + timedelta(days=n)).strftime("%Y-%m-%dT23:59:59Z"),
            },
            "contact-info": "tlsrpt@reporter.example",
            "report-id": f"{org}-{n}",
            "policies": [
                {
                    "policy": {"policy-type": "sts", "policy-domain": DOMAIN, "policy-string": [], "mx-host": [MX]},
                    "summary": {"total-successful-session-count": 10, "total-failure-session-count": 0},
                }
            ],
        }
        for n in range(1, 20)
        for org in ("Reporter One", "Reporter Two")
    ]
    with ReportStore(f"sqlite:///{db}") as store:
        store.add_reports([parse_report(json.dumps(r).encode()) for r in reports], source="test", now=since)
    records = [
        Record(f"{DOMAIN}.", "SOA", f"ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 60"),
        Record(f"{DOMAIN}.", "NS", f"ns.{DOMAIN}."),
        Record(f"ns.{DOMAIN}.", "A", ns_address),
        Record(f"{DOMAIN}.", "MX", f"10 {MX}."),
        Record(f"{MX}.", "A", mx_address),
        Record(f"mta-sts.{DOMAIN}.", "A", web_address),
        Record(f"_mta-sts.{DOMAIN}.", "TXT", f'"v=STSv1; id={LIVE_ID}"'),
    ]
    dns = DnsServer(Zone(DOMAIN, records), ns_address)
    smtp = SmtpServer(
        [SmtpHost(MX, mx_address)], lambda host: certs.server_context(CertKind.EXPIRED, host.name), Mailboxes()
    )
    host = PolicyHost(load_snapshot(config), loader=lambda generation: load_snapshot(config, generation=generation))
    try:
        await dns.start()
        await smtp.start()
        await host.start()
        port = host.bound[0].port
        config.write_text(config_text(web_address, 86400, mode="enforce"))
        code, out = await run_plan(tmp_path, config, db, dns, port, "--smtp-port", str(smtp.port))
        assert code == 1, out
        assert out.splitlines() == [
            f"{DOMAIN}: testing → enforce",
            "  testing → enforce refused: the live inspection predicts that enforce would block mail to "
            f"{MX} (would skip it: {out.split('(would skip it: ', 1)[1].split(')')[0]}) [mx-cert-expired]"
            "; needs every listed MX to pass: fix them (mtasts check says how) or take them out of the policy",
        ]
        assert "expired" in out.splitlines()[1]
        code, data = await run_plan(tmp_path, config, db, dns, port, "--smtp-port", str(smtp.port), "--json")
        (plan,) = json.loads(data)
        assert {g["guard"]: g["passed"] for g in plan["guards"]} == {
            "testing-days": True,
            "reporters": True,
            "failures": True,
            "live-mx": True,
            "live-check": False,
        }
        assert plan["steps"] == []
    finally:
        await host.stop()
        await smtp.stop()
        await dns.stop()
