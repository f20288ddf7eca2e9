"""``mtasts publish verify``: the judging table case by case (gathered facts in, findings out),
the docs table against :data:`~mtasts.publish.verify.RULES`, and the real command in its own
process against the lab's DNS and the policy host with the history in a SQLite file."""

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
from mtasts.core.problems import Severity
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record
from mtasts.lab.world import random_network
from mtasts.publish.history import Served, SqlPublishHistory
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import load_snapshot
from mtasts.publish.verify import RULES, DomainFacts, HostCertificate, rules_table, verify_domain
from mtasts.store.store import ReportStore
from tests.commands import MTASTS
from tests.publish.hosting import make_domains

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DOMAIN = "example.com"
MX = "mx1.example.com"


def body(mode: Mode = Mode.ENFORCE, max_age: int = 86400, mx: tuple[str, ...] = (MX,)) -> bytes:
    return Policy(mode=mode, max_age=max_age, mx=mx).to_text().encode()


def served(policy_id: str, data: bytes, since_days: float, until_days: float | None = None) -> Served:
    """A history entry served from ``since_days`` ago until ``until_days`` ago (None: still)."""
    from mtasts.core.policy import parse_policy

    policy = parse_policy(data)
    return Served(
        DOMAIN,
        policy_id,
        data,
        policy.mode,
        policy.max_age,
        NOW - timedelta(days=since_days),
        None if until_days is None else NOW - timedelta(days=until_days),
    )


GOOD_CERT = (HostCertificate("192.0.2.1", not_after=NOW + timedelta(days=60)),)
ONE = served("id1", body(), 30)


def facts(**changes: object) -> DomainFacts:
    """A domain where everything agrees (id1 live, its body served, MX listed), changed by ``changes``."""
    values: dict[str, object] = {
        "domain": DOMAIN,
        "history": (ONE,),
        "configured_body": body(),
        "served_body": body(),
        "sts_records": ("v=STSv1; id=id1",),
        "mx_hosts": (MX,),
        "certificates": GOOD_CERT,
    }
    values.update(changes)
    return DomainFacts(**values)  # type: ignore[arg-type]


def codes(domain_facts: DomainFacts) -> list[tuple[str, str]]:
    return [(f.code, f.severity.value) for f in verify_domain(domain_facts, now=NOW).findings]


NEW = body(max_age=43200)
TWO_ENDED = served("id1", body(), 30, 0.5)  # ended 12 hours ago; max_age 1 day: held for 12 more hours
TWO = served("id2", NEW, 0.5)

# one row per case: (name, facts, expected (code, severity) in order)
CASES: list[tuple[str, DomainFacts, list[tuple[str, str]]]] = [
    ("everything agrees", facts(), []),
    ("never published, nothing live", facts(history=(), sts_records=(), served_body=None), [("not-published", "info")]),
    (
        "never published, a policy live",
        facts(history=()),
        [("not-published", "info")],
    ),
    (
        "the fetch fails",
        facts(served_body=None, fetch_error="cannot connect: Connection refused"),
        [("policy-unreachable", "error")],
    ),
    (
        "the served body does not parse",
        facts(served_body=b"version: STSv1\r\n", policy_invalid="mode is missing"),
        [("policy-invalid", "error")],
    ),
    (
        "one address presents a refused certificate",
        facts(
            certificates=(*GOOD_CERT, HostCertificate("2001:db8::1", failure="the certificate expired on 2026-11-30"))
        ),
        [("certificate-invalid", "error")],
    ),
    (
        "14 days left is too few",
        facts(certificates=(HostCertificate("192.0.2.1", not_after=NOW + timedelta(days=14)),)),
        [("certificate-expiring", "warning")],
    ),
    (
        "15 days left is enough",
        facts(certificates=(HostCertificate("192.0.2.1", not_after=NOW + timedelta(days=15)),)),
        [],
    ),
    ("no TXT record while published", facts(sts_records=()), [("txt-missing", "error")]),
    (
        "two TXT records",
        facts(sts_records=("v=STSv1; id=id1", "v=STSv1; id=id2")),
        [("txt-multiple", "error")],
    ),
    ("an invalid TXT record", facts(sts_records=("v=STSv1; id=not-valid!",)), [("txt-invalid", "error")]),
    ("the TXT lookup fails", facts(sts_records=None, txt_error="SERVFAIL"), [("txt-lookup-failed", "error")]),
    (
        "body changed, id not (the new body never recorded)",
        facts(served_body=NEW, configured_body=NEW),
        [("body-changed-id-unchanged", "error")],
    ),
    (
        "body changed and recorded under id2, id2 not published yet",
        facts(history=(TWO_ENDED, TWO), served_body=NEW, configured_body=NEW),
        [("body-changed-id-unchanged", "error")],
    ),
    (
        "body changed, id not, and nobody holds the old body any more",
        facts(history=(served("id1", body(), 30, 2), served("id2", NEW, 2)), served_body=NEW, configured_body=NEW),
        [("body-changed-id-unchanged", "warning")],
    ),
    ("a live id the history never had", facts(sts_records=("v=STSv1; id=byhand",)), [("id-not-in-history", "error")]),
    (
        "the live id and body are an earlier entry",
        facts(history=(served("id1", body(), 30, 5), served("id2", NEW, 5))),
        [("history-behind", "warning")],
    ),
    (
        "a live MX the enforce policy does not list",
        facts(mx_hosts=(MX, "mx2.example.com")),
        [("mx-not-in-policy", "error")],
    ),
    (
        "a live MX the testing policy does not list",
        facts(
            history=(served("id1", body(Mode.TESTING), 30),),
            served_body=body(Mode.TESTING),
            configured_body=body(Mode.TESTING),
            mx_hosts=("mx2.example.com",),
        ),
        [("mx-not-in-policy", "warning")],
    ),
    (
        "mode none checks no MX",
        facts(
            history=(served("id1", body(Mode.NONE), 30),),
            served_body=body(Mode.NONE),
            configured_body=body(Mode.NONE),
            mx_hosts=("mx2.example.com",),
        ),
        [],
    ),
    (
        "the MX check falls back on the body of the live id when the fetch fails",
        facts(served_body=None, fetch_error="timed out", mx_hosts=("mx2.example.com",)),
        [("policy-unreachable", "error"), ("mx-not-in-policy", "error")],
    ),
    ("no MX records", facts(mx_hosts=()), [("mx-missing", "warning")]),
    ("a null MX", facts(mx_hosts=(), null_mx=True), []),
    ("the MX lookup fails", facts(mx_hosts=None, mx_error="timed out"), [("mx-lookup-failed", "warning")]),
    (
        "MX changed while senders may hold the enforce body that lists the old one",
        facts(
            history=(TWO_ENDED, served("id2", body(mx=("mx2.example.com",)), 0.5)),
            sts_records=("v=STSv1; id=id2",),
            served_body=body(mx=("mx2.example.com",)),
            configured_body=body(mx=("mx2.example.com",)),
            mx_hosts=("mx2.example.com",),
        ),
        [("held-policy-blocks-mx", "warning")],
    ),
    (
        "an earlier body still held, harmless",
        facts(history=(TWO_ENDED, TWO), sts_records=("v=STSv1; id=id2",), served_body=NEW, configured_body=NEW),
        [("old-policy-held", "info")],
    ),
    (
        "an earlier body no sender holds any more",
        facts(
            history=(served("id1", body(), 30, 2), served("id2", NEW, 2)),
            sts_records=("v=STSv1; id=id2",),
            served_body=NEW,
            configured_body=NEW,
        ),
        [],
    ),
    (
        "the configuration was changed, not yet served",
        facts(configured_body=NEW),
        [("configured-not-served", "info")],
    ),
]


@pytest.mark.parametrize(("case", "domain_facts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_case_gives_its_findings(case: str, domain_facts: DomainFacts, expected: list[tuple[str, str]]) -> None:
    assert codes(domain_facts) == expected


def test_every_rule_has_a_case() -> None:
    covered = {code for _, _, expected in CASES for code, _ in expected}
    assert covered == set(RULES)


def test_a_finding_carries_why_and_a_fix_naming_the_domain() -> None:
    [finding] = verify_domain(facts(sts_records=()), now=NOW).findings
    data = finding.to_dict()
    assert data["code"] == "txt-missing"
    assert data["severity"] == "error"
    assert data["why"] == RULES["txt-missing"].why
    assert "_mta-sts.example.com TXT" in str(data["fix"])
    assert "id id1 is published" in str(data["message"])


def test_the_fix_for_an_unpublished_id_names_the_record_to_set() -> None:
    verdict = verify_domain(facts(history=(TWO_ENDED, TWO), served_body=NEW, configured_body=NEW), now=NOW)
    [finding] = verdict.findings
    assert '_mta-sts.example.com TXT "v=STSv1; id=id2"' in finding.fix
    assert "keep the old body until 2026-12-02 00:00 UTC at most" in finding.message
    assert verdict.worst is Severity.ERROR


def test_every_rule_says_its_severity() -> None:
    for code, rule in RULES.items():
        assert rule.severity_text, code
        assert rule.why, code
        assert rule.fix, code
        assert rule.title, code


DOC = Path(__file__).resolve().parents[2] / "docs" / "publish.md"
START, END = "<!-- verify-table: generated by python -m mtasts.publish.verify -->\n", "<!-- /verify-table -->"


def test_the_docs_table_is_generated_from_the_rules() -> None:
    text = DOC.read_text("utf-8")
    assert START in text, "docs/publish.md lost its verify-table markers"
    assert END in text, "docs/publish.md lost its verify-table markers"
    assert text.split(START, 1)[1].split(END, 1)[0] == rules_table(), "regenerate: python -m mtasts.publish.verify"


# --- the real command against the lab's DNS and the policy host ----------------------------------

APEX = "verify.publish.test"
GOOD, DRIFT, TWICE = (f"{n}.{APEX}" for n in ("good", "drift", "twice"))


def domain_config(name: str, max_age: int = 86400) -> str:
    return (
        f'[[domain]]\nname = "{name}"\nmode = "enforce"\nmx = ["mx1.{name}"]\nmax_age = {max_age}\n'
        f'cert = "{name}.pem"\nkey = "{name}.key"\n'
    )


def enforce_body(name: str, max_age: int = 86400) -> bytes:
    return Policy(mode=Mode.ENFORCE, max_age=max_age, mx=(f"mx1.{name}",)).to_text().encode()


def zone_records(ns: str, web: str, extra: list[Record]) -> list[Record]:
    records = [
        Record(f"{APEX}.", "SOA", f"ns.{APEX}. hostmaster.{APEX}. 1 3600 600 86400 60"),
        Record(f"{APEX}.", "NS", f"ns.{APEX}."),
        Record(f"ns.{APEX}.", "A", ns),
    ]
    for name in (GOOD, DRIFT, TWICE):
        records += [Record(f"{name}.", "MX", f"10 mx1.{name}."), Record(f"mta-sts.{name}.", "A", web)]
    return records + extra


def verify_options(tmp_path: Path, dns: DnsServer, port: int) -> list[str]:
    """The options of a ``verify`` run on the world of :func:`served_domains`."""
    return [
        "--config",
        str(tmp_path / "publish.toml"),
        "--db",
        str(tmp_path / "mtasts.sqlite3"),
        "--nameserver",
        f"{dns.address}:{dns.port}",
        "--ca-file",
        str(tmp_path / "certs" / "ca.pem"),
        "--https-port",
        str(port),
        "--timeout",
        "5",
    ]


async def run_verify(tmp_path: Path, dns: DnsServer, port: int, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "publish",
        "verify",
        *verify_options(tmp_path, dns, port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert not stderr, stderr.decode()
    assert process.returncode is not None
    return process.returncode, stdout.decode()


@dataclass(frozen=True)
class ServedDomains:
    """:data:`GOOD`, :data:`DRIFT` and :data:`TWICE` enforced for 20 days, served by a running
    policy host (DRIFT's certificate with 10 days left) and a running authoritative DNS server
    (TWICE with a second ``_mta-sts`` record)."""

    tmp_path: Path
    config: Path
    ns_address: str
    web_address: str
    txt: list[Record]
    dns: DnsServer
    host: PolicyHost

    def options(self) -> list[str]:
        return verify_options(self.tmp_path, self.dns, self.host.bound[0].port)

    async def drift(self) -> None:
        """The configuration changes (DRIFT's max_age) and the host reloads, without apply; and
        a second MX appears in DNS that DRIFT's policy does not list."""
        server = f'[server]\nlisten = ["{self.web_address}:0"]\nadmin = "off"\n\n'
        self.config.write_text(server + domain_config(GOOD) + domain_config(DRIFT, 43200) + domain_config(TWICE))
        assert (await self.host.reload()).ok
        records = [*self.txt, Record(f"{DRIFT}.", "MX", f"20 mx2.{DRIFT}.")]
        fresh = Zone(APEX, zone_records(self.ns_address, self.web_address, records))
        self.dns.zone.rrsets, self.dns.zone.names = fresh.rrsets, fresh.names


@asynccontextmanager
async def served_domains(tmp_path: Path) -> AsyncIterator[ServedDomains]:
    material = make_domains(tmp_path / "certs", 0)
    now = datetime.now(UTC)
    for name in (GOOD, DRIFT, TWICE):
        # drift's certificate has 10 days left: verify must say so, the host still serves it
        not_after = now + timedelta(days=10) if name == DRIFT else None
        issued = material.ca.issue_cert(f"mta-sts.{name}", not_after=not_after)
        issued.private_key_pem.write_to_path(str(tmp_path / f"{name}.key"))
        (tmp_path / f"{name}.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    hosts = iter(random_network().hosts())
    ns_address, web_address = (str(next(hosts)) for _ in range(2))
    config = tmp_path / "publish.toml"
    server = f'[server]\nlisten = ["{web_address}:0"]\nadmin = "off"\n\n'
    config.write_text(server + "\n".join(domain_config(n) for n in (GOOD, DRIFT, TWICE)))
    since = now - timedelta(days=20)
    with SqlPublishHistory(ReportStore(f"sqlite:///{tmp_path / 'mtasts.sqlite3'}")) as history:
        for name in (GOOD, DRIFT, TWICE):
            history.record(Served(name, "20261101T000000", enforce_body(name), Mode.ENFORCE, 86400, since))
    txt = [Record(f"_mta-sts.{name}.", "TXT", '"v=STSv1; id=20261101T000000"') for name in (GOOD, DRIFT, TWICE)] + [
        Record(f"_mta-sts.{TWICE}.", "TXT", '"v=STSv1; id=20261201T000000"')
    ]
    dns = DnsServer(Zone(APEX, zone_records(ns_address, web_address, txt)), ns_address)
    host = PolicyHost(load_snapshot(config), loader=lambda generation: load_snapshot(config, generation=generation))
    try:
        await dns.start()
        await host.start()
        yield ServedDomains(tmp_path, config, ns_address, web_address, txt, dns, host)
    finally:
        await host.stop()
        await dns.stop()


@pytest.mark.lab
async def test_verify_finds_the_drift_a_sender_would_suffer(tmp_path: Path) -> None:
    async with served_domains(tmp_path) as world:
        dns, port = world.dns, world.host.bound[0].port

        code, out = await run_verify(tmp_path, dns, port, GOOD)
        assert (code, out) == (
            0,
            f"{GOOD}: ok (id 20261101T000000, sha256 {_sha(enforce_body(GOOD))})\n"
            "1 domain verified: 0 errors, 0 warnings, 0 notes\n",
        )

        await world.drift()

        code, out = await run_verify(tmp_path, dns, port)
        assert code == 1
        assert out.splitlines()[0] == f"{GOOD}: ok (id 20261101T000000, sha256 {_sha(enforce_body(GOOD))})"
        assert f"{DRIFT}: 3 problems" in out
        assert (
            f"{TWICE}: 1 problem (sha256 {_sha(enforce_body(TWICE))})\n"
            f"  error txt-multiple: _mta-sts.{TWICE} has 2 TXT records beginning with v=STSv1\n"
        ) in out
        assert "\n    v=STSv1; id=20261101T000000\n" in out  # each record as evidence (in DNS's order)
        assert "\n    v=STSv1; id=20261201T000000\n" in out
        assert out.endswith("3 domains verified: 3 errors, 1 warning, 0 notes\n")

        code, data = await run_verify(tmp_path, dns, port, "--json", DRIFT)
        assert code == 1
        [verdict] = json.loads(data)
        assert verdict["served_sha256"] == _sha(enforce_body(DRIFT, 43200), full=True)
        found = {f["code"]: f for f in verdict["findings"]}
        assert list(found) == ["certificate-expiring", "body-changed-id-unchanged", "mx-not-in-policy"]
        assert found["certificate-expiring"]["address"] == world.web_address
        assert (
            "(9.9 days left)" in found["certificate-expiring"]["message"]
            or "(10.0 days left)" in (found["certificate-expiring"]["message"])
        )
        assert found["body-changed-id-unchanged"]["severity"] == "error"
        assert "never recorded" in found["body-changed-id-unchanged"]["fix"]
        assert found["mx-not-in-policy"]["host"] == f"mx2.{DRIFT}"
        assert found["mx-not-in-policy"]["severity"] == "error"


def _sha(data: bytes, *, full: bool = False) -> str:
    from mtasts.publish.history import body_sha256

    return body_sha256(data) if full else body_sha256(data)[:12]


def test_verify_of_a_domain_nobody_configured_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(f'[server]\nlisten = ["127.0.0.1:0"]\nadmin = "off"\n\n{domain_config(GOOD)}')
    result = runner.invoke(
        app, ["publish", "verify", "other.example", "--config", str(config), "--db", str(tmp_path / "db.sqlite3")]
    )
    assert result.exit_code == 2
    assert "other.example: not in the configuration and never published" in result.output


def test_verify_without_its_configuration_cannot_run(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["publish", "verify", "--config", str(tmp_path / "nowhere.toml")])
    assert result.exit_code == 3
    assert "cannot read the configuration" in result.output
