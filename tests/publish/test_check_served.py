"""``mtasts check`` (the real command, in its own process) on a domain whose policy is served by
the policy host: nothing wrong, and a sender would deliver.

The world around the host is the lab's servers, started in-process: its authoritative DNS (the
domain's SOA, NS, MX, the ``_mta-sts`` and ``_smtp._tls`` records, the policy host's address) and
an MX with STARTTLS; certificates come from one trustme CA that the check is told to trust. The
policy host is :class:`~mtasts.publish.host.PolicyHost` with the configuration a user would write.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import pytest

from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record, SmtpHost
from mtasts.lab.smtp import Mailboxes, SmtpServer
from mtasts.lab.world import random_network
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import load_snapshot
from tests.commands import MTASTS
from tests.publish.hosting import make_domains

pytestmark = pytest.mark.lab

DOMAIN = "served.publish.test"
MX = f"mx1.{DOMAIN}"


async def test_check_finds_nothing_wrong_with_a_served_domain(tmp_path: Path) -> None:
    material = make_domains(tmp_path / "certs", 0)
    issued = material.ca.issue_cert(f"mta-sts.{DOMAIN}")
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    (tmp_path / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    hosts = iter(random_network().hosts())
    ns_address, web_address, mx_address = (str(next(hosts)) for _ in range(3))
    config = tmp_path / "publish.toml"
    config.write_text(
        f'[server]\nlisten = ["{web_address}:0"]\nadmin = "off"\n\n'
        f'[[domain]]\nname = "{DOMAIN}"\nmode = "enforce"\nmx = ["{MX}"]\nmax_age = 604800\n'
        f'rua = ["mailto:tlsrpt@{DOMAIN}"]\ncert = "cert.pem"\nkey = "key.pem"\n'
    )
    records = [
        Record(f"{DOMAIN}.", "SOA", f"ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 60"),
        Record(f"{DOMAIN}.", "NS", f"ns.{DOMAIN}."),
        Record(f"ns.{DOMAIN}.", "A", ns_address),
        Record(f"{DOMAIN}.", "MX", f"10 {MX}."),
        Record(f"{MX}.", "A", mx_address),
        Record(f"mta-sts.{DOMAIN}.", "A", web_address),
        Record(f"_mta-sts.{DOMAIN}.", "TXT", '"v=STSv1; id=20260101T000000"'),
        Record(f"_smtp._tls.{DOMAIN}.", "TXT", f'"v=TLSRPTv1; rua=mailto:tlsrpt@{DOMAIN}"'),
    ]

    def mx_context(host: SmtpHost) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        material.ca.issue_cert(host.name).configure_cert(context)
        return context

    dns_server = DnsServer(Zone(DOMAIN, records), ns_address)
    smtp = SmtpServer([SmtpHost(MX, mx_address)], mx_context, Mailboxes())
    host = PolicyHost(load_snapshot(config))
    try:
        for server in (dns_server, smtp, host):
            await server.start()
        check = await asyncio.create_subprocess_exec(
            *MTASTS,
            "check",
            DOMAIN,
            "--json",
            "--nameserver",
            f"{ns_address}:{dns_server.port}",
            "--ca-file",
            str(material.ca_file),
            "--https-port",
            str(host.bound[0].port),
            "--smtp-port",
            str(smtp.port),
            "--timeout",
            "5",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(check.communicate(), 60)
    finally:
        for server in (host, smtp, dns_server):
            await server.stop()
    assert check.returncode == 0, (stdout.decode(), stderr.decode())
    [result] = json.loads(stdout)
    assert result["findings"] == []  # no error, no warning, nothing on the policy side or any other
    assert result["policy"] == {
        "version": "STSv1",
        "mode": "enforce",
        "max_age": 604800,
        "mx": [MX],
        "extensions": {},
    }
    assert result["verdict"]["mail_flows"] is True
