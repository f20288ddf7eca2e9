"""``mtasts publish init``: the entry text (pure) and the real command against the lab.

The pure tests build :class:`~mtasts.publish.init.InitFacts` by hand and check what the
operator reads and what the configuration loader makes of it. The lab test runs the command in
its own process (it drives its own event loop) against the lab's authoritative DNS and two MX
hosts with STARTTLS, one with an expired certificate, through the inspector's own adapters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mtasts.core.findings import Finding
from mtasts.core.policy import Mode
from mtasts.core.problems import Severity
from mtasts.lab.certs import LabCertificates
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record, SmtpHost
from mtasts.lab.scenarios import CertKind
from mtasts.lab.smtp import Mailboxes, SmtpServer
from mtasts.lab.world import random_network
from mtasts.publish.config import parse_config
from mtasts.publish.init import InitError, InitFacts, LivePolicy, append_entry, entry_text, shared_parents
from tests.commands import MTASTS

NOW = dt.datetime(2026, 12, 2, 10, 30, tzinfo=dt.UTC)
DOMAIN = "init.publish.test"
MX1, MX2 = f"mx1.{DOMAIN}", f"mx2.{DOMAIN}"
RUA = f"mailto:tlsrpt@{DOMAIN}"


def expired(host: str) -> Finding:
    return Finding(
        "mx-cert-expired", Severity.ERROR, f"{host} (192.0.2.2): expired", f"Renew the certificate of {host}.", host
    )


def test_the_entry_lists_the_mx_testing_a_day_and_the_rua_and_loads() -> None:
    facts = InitFacts("example.com", ("mx1.example.com", "mx2.example.com"), rua=("mailto:tls@example.com",))
    text = entry_text(facts, now=NOW)
    assert text.splitlines()[:6] == [
        "# example.com: started by mtasts publish init on 2026-12-02 10:30 UTC from live DNS",
        "[[domain]]",
        'name = "example.com"',
        'mode = "testing"',
        'mx = ["mx1.example.com", "mx2.example.com"]',
        '# mx1.example.com and mx2.example.com share example.com: "*.example.com" would match them, and every '
        "other name one label below example.com",
    ]
    (entry,) = parse_config(text, "publish.toml").domains
    assert (entry.name, entry.mode, entry.max_age, entry.mx, entry.rua) == (
        "example.com",
        Mode.TESTING,
        86400,
        ("mx1.example.com", "mx2.example.com"),
        ("mailto:tls@example.com",),
    )
    assert "nothing found now that would block enforce" in text


def test_a_wildcard_is_suggested_only_for_mx_sharing_a_parent() -> None:
    assert shared_parents(["mx1.example.com", "mx.other.example", "mx2.example.com"]) == {
        "example.com": ("mx1.example.com", "mx2.example.com")
    }
    assert shared_parents(["mx.example.com", "mx.example.net"]) == {}
    assert shared_parents(["a.com", "b.com"]) == {}  # *.com is no policy
    text = entry_text(InitFacts("example.com", ("mx.example.com", "mx.example.net")), now=NOW)
    assert "*." not in text


def test_blocking_findings_a_live_enforce_policy_and_a_missing_rua_are_comments() -> None:
    facts = InitFacts(
        "example.com",
        ("mx1.example.com", "mx2.example.com", "mx3.example.com"),
        tlsrpt_note="_smtp._tls.example.com has no TLSRPT record\nsecond line",
        live=LivePolicy("20240101T000000", Mode.ENFORCE, 604800),
        blocking=(expired("mx2.example.com"),),
    )
    text = entry_text(facts, now=NOW)
    lines = text.splitlines()
    assert 'mx = [\n    "mx1.example.com",\n    "mx2.example.com",\n    "mx3.example.com",\n]' in text
    note = "# _smtp._tls.example.com has no TLSRPT record second line: no TLS reports"
    assert any(line.startswith(note) for line in lines)
    assert (
        "# live now: mode enforce, max_age 604800 (id 20240101T000000): this entry steps it back to testing; "
        'write mode = "enforce" to keep it'
    ) in lines
    assert "# would block enforce now (1, the inspector as if this policy were enforced):" in lines
    assert "#   mx-cert-expired: mx2.example.com (192.0.2.2): expired" in lines
    assert "#     fix: Renew the certificate of mx2.example.com." in lines
    (entry,) = parse_config(text, "publish.toml").domains
    assert entry.rua == ()


def test_hostile_text_from_the_network_cannot_break_out_of_a_comment() -> None:
    sneaky = Finding(
        "mx-cert-expired", Severity.ERROR, 'x\n[server]\nlisten = ["0.0.0.0:1"]', "y" * 1000, "mx1.example.com"
    )
    text = entry_text(InitFacts("example.com", ("mx1.example.com",), blocking=(sneaky,)), now=NOW)
    config = parse_config(text, "publish.toml")
    assert config.server.listen != ()
    assert [d.name for d in config.domains] == ["example.com"]
    assert all(len(line) < 400 for line in text.splitlines())


def test_appending_keeps_the_file_and_refuses_a_domain_already_there() -> None:
    existing = (
        '[server]\nadmin = "off"\n\n'
        '[[domain]]\nname = "other.example"\nmode = "testing"\nmx = ["mx.other.example"]\nmax_age = 600'
    )
    entry = entry_text(InitFacts("example.com", ("mx.example.com",)), now=NOW)
    combined = append_entry(existing, entry, "publish.toml", "example.com")
    assert combined.startswith(existing + "\n\n# example.com")
    config = parse_config(combined, "publish.toml")
    assert [d.name for d in config.domains] == ["other.example", "example.com"]
    assert config.server.admin is None
    with pytest.raises(InitError, match=r"^example\.com is configured already in publish\.toml \(line 11\)"):
        append_entry(combined, entry, "publish.toml", "Example.COM.")
    assert append_entry(None, entry, "publish.toml", "example.com") == entry


def test_a_domain_without_mx_gets_no_entry() -> None:
    with pytest.raises(InitError, match="has no MX hosts"):
        entry_text(InitFacts("example.com", ()), now=NOW)


async def run_init(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "publish",
        "init",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


@asynccontextmanager
async def live_domain(tmp_path: Path) -> AsyncIterator[tuple[list[str], str]]:
    """:data:`DOMAIN` in a running authoritative DNS server with two MX hosts on a running SMTP
    server, :data:`MX2`'s certificate expired, and a TLS-RPT record: the network options of an
    ``init`` run on it, and MX2's address."""
    certs = LabCertificates(now=dt.datetime.now(dt.UTC))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certs.ca_pem)
    hosts = iter(random_network().hosts())
    ns, mx1, mx2 = (str(next(hosts)) for _ in range(3))
    records = [
        Record(f"{DOMAIN}.", "SOA", f"ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 60"),
        Record(f"{DOMAIN}.", "NS", f"ns.{DOMAIN}."),
        Record(f"ns.{DOMAIN}.", "A", ns),
        Record(f"{DOMAIN}.", "MX", f"10 {MX1}."),
        Record(f"{DOMAIN}.", "MX", f"20 {MX2}."),
        Record(f"{MX1}.", "A", mx1),
        Record(f"{MX2}.", "A", mx2),
        Record(f"_smtp._tls.{DOMAIN}.", "TXT", f'"v=TLSRPTv1; rua={RUA}"'),
    ]
    kinds = {MX1: CertKind.GOOD, MX2: CertKind.EXPIRED}
    dns = DnsServer(Zone(DOMAIN, records), ns)
    smtp = SmtpServer(
        [SmtpHost(MX1, mx1), SmtpHost(MX2, mx2)],
        lambda host: certs.server_context(kinds[host.name], host.name),
        Mailboxes(),
    )
    try:
        await dns.start()
        await smtp.start()
        yield (
            [
                "--nameserver",
                f"{ns}:{dns.port}",
                "--ca-file",
                str(ca_file),
                "--smtp-port",
                str(smtp.port),
                "--timeout",
                "5",
            ],
            mx2,
        )
    finally:
        await smtp.stop()
        await dns.stop()


@pytest.mark.lab
async def test_init_writes_the_entry_from_live_dns_and_names_what_blocks_enforce(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "publish.toml"  # its directory does not exist yet
    async with live_domain(tmp_path) as (network, mx2):
        code, out, err = await run_init(DOMAIN, "--print", *network)
        assert code == 0, err
        assert not config.exists()
        printed = out

        code, out, err = await run_init(DOMAIN, "--config", str(config), *network)
        assert code == 0, err
        assert out == (
            f"{DOMAIN}: added to {config} (mode testing, max_age 86400, 2 MX hosts, rua {RUA}); "
            "1 finding would block enforce\n"
        )
        (warning,) = err.splitlines()
        assert warning.startswith(f"mtasts: warning: {DOMAIN}: would block enforce: mx-cert-expired: {MX2} ({mx2}): ")
        assert "; fix: " in warning

        code, _, err = await run_init(DOMAIN, "--config", str(config), *network)
        assert code == 2
        assert err == f"mtasts: error: {DOMAIN} is configured already in {config} (line 2): edit that entry instead\n"
    text = config.read_text()
    assert text == printed.replace(printed.splitlines()[0], text.splitlines()[0])  # the same entry, its own minute
    (entry,) = parse_config(text, config).domains
    assert (entry.mode, entry.max_age, entry.mx, entry.rua) == (Mode.TESTING, 86400, (MX1, MX2), (RUA,))
    assert f'"*.{DOMAIN}" would match them' in text
    assert f"#   mx-cert-expired: {MX2} ({mx2}): " in text
