"""Deploy a policy from ``mtasts generate --output-dir`` alone, as a new user would, then check it.

The test plays the administrator: it runs ``generate`` once, fills in the one line the zone
fragment asks for (the policy host's A record), appends the fragment to the zone the domain
already has (SOA, NS, MX), loads that zone with dnspython's zone-file parser (what a real
authoritative server would be given) into the lab's nameserver, serves ``mta-sts.txt``
byte for byte from the lab's HTTPS server with a lab-CA certificate for ``mta-sts.<domain>``,
and runs an MX with STARTTLS. Then ``mtasts check`` (a real process, as the user runs it) must
find nothing wrong and say a sender would deliver under ``enforce``. Nothing in the deployment
comes from the lab's scenarios: only its servers are reused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.lab.certs import LabCertificates
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.https import HttpsServer
from mtasts.lab.plan import POLICY_PATH, HttpAnswer, HttpsHost, Record, SmtpHost
from mtasts.lab.scenarios import CertKind
from mtasts.lab.smtp import Mailboxes, SmtpServer
from mtasts.lab.world import random_network
from tests.commands import MTASTS

pytestmark = pytest.mark.lab

DOMAIN = "deploy.mtasts.test"
MX = f"mx1.{DOMAIN}"
POLICY_HOST = f"mta-sts.{DOMAIN}"
RUA = f"mailto:tlsrpt@{DOMAIN}"
# the command of the acceptance test, as a new user types it
GENERATE = ["generate", "--domain", DOMAIN, "--mx", MX, "--mode", "enforce", "--max-age", "604800"]


def fill_in_host_line(zone_text: str, address: str) -> str:
    """What the administrator does with the fragment: uncomment the A line of the policy host
    and put the web server's address in place of the placeholder."""
    pattern = re.compile(rf"^;({re.escape(POLICY_HOST)}\. \d+ IN A) <[^>]*>$", re.MULTILINE)
    filled, count = pattern.subn(rf"\g<1> {address}", zone_text)
    assert count == 1, zone_text
    return filled


def existing_zone(nameserver: str, mx_address: str) -> str:
    """The zone the domain has before MTA-STS: its SOA, NS, MX and the MX's address."""
    return (
        f"$ORIGIN {DOMAIN}.\n$TTL 300\n"
        "@ IN SOA ns hostmaster 2026112901 3600 600 86400 60\n"
        "@ IN NS ns\n"
        f"ns IN A {nameserver}\n"
        "@ IN MX 10 mx1\n"
        f"mx1 IN A {mx_address}\n"
    )


def lab_records(zone: dns.zone.Zone) -> list[Record]:
    """The loaded zone as the lab nameserver's records (absolute names, zone-file rdata)."""
    return [
        Record(name.to_text(), dns.rdatatype.to_text(rdataset.rdtype), rdata.to_text(), rdataset.ttl)
        for name, node in zone.nodes.items()
        for rdataset in node.rdatasets
        for rdata in rdataset
    ]


async def test_deploy_from_output_dir_alone(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    generated = runner.invoke(
        app,
        [*GENERATE, "--rua", RUA, "--output-dir", str(out)],
    )
    assert generated.exit_code == 0, generated.output
    assert sorted(p.name for p in out.iterdir()) == ["mta-sts.txt", "zone.txt"]
    policy_bytes = (out / "mta-sts.txt").read_bytes()
    zone_fragment = (out / "zone.txt").read_text("utf-8")

    hosts = iter(random_network().hosts())
    ns_address, web_address, mx_address = next(hosts), next(hosts), next(hosts)
    zone_text = existing_zone(str(ns_address), str(mx_address)) + fill_in_host_line(zone_fragment, str(web_address))
    zone = dns.zone.from_text(zone_text, origin=DOMAIN, relativize=False)  # SOA and NS at the apex: checked
    assert zone.get_rdataset(f"_mta-sts.{DOMAIN}.", "TXT") is not None
    assert zone.get_rdataset(f"_smtp._tls.{DOMAIN}.", "TXT") is not None

    certs = LabCertificates(now=dt.datetime.now(dt.UTC))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certs.ca_pem)
    dns_server = DnsServer(Zone(DOMAIN, lab_records(zone)), str(ns_address))
    https = HttpsServer(
        [HttpsHost(POLICY_HOST, str(web_address), answers={POLICY_PATH: HttpAnswer(200, policy_bytes)})],
        lambda host: certs.server_context(CertKind.GOOD, host.name),
    )
    smtp = SmtpServer(
        [SmtpHost(MX, str(mx_address))], lambda host: certs.server_context(CertKind.GOOD, host.name), Mailboxes()
    )
    try:
        for server in (dns_server, https, smtp):
            await server.start()
        check = await asyncio.create_subprocess_exec(
            *MTASTS,
            "check",
            DOMAIN,
            "--json",
            "--nameserver",
            f"{ns_address}:{dns_server.port}",
            "--ca-file",
            str(ca_file),
            "--https-port",
            str(https.port),
            "--smtp-port",
            str(smtp.port),
            "--timeout",
            "5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(check.communicate(), 60)
    finally:
        for server in (smtp, https, dns_server):
            await server.stop()
    assert check.returncode == 0, (stdout.decode(), stderr.decode())
    [result] = json.loads(stdout)
    assert result["policy"]["mode"] == "enforce"
    assert result["policy"]["mx"] == [MX]
    assert result["findings"] == []  # no error, no warning: the tlsrpt record was found too
    assert result["verdict"]["mail_flows"] is True
    assert result["verdict"]["delivery"] == "deliver-validated-tls"  # the sender delivers, under enforce
