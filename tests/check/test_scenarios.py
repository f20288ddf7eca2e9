"""Every scenario of the lab catalogue through the real inspector: the finding codes and the
sender's verdict each scenario declares. Real DNS, HTTPS and SMTP on loopback; nothing mocked."""

from __future__ import annotations

from typing import Any

import pytest

from mtasts.check.inspect import Inspector
from mtasts.core.problems import Severity
from mtasts.lab.scenarios import CATALOGUE, FINDING_CODES
from mtasts.net.settings import NetworkSettings


@pytest.mark.lab
@pytest.mark.parametrize("name", list(CATALOGUE))
async def test_scenario(lab: Any, lab_settings: NetworkSettings, name: str) -> None:
    expected = CATALOGUE[name].expect
    report = await Inspector(lab_settings).check(lab.domain(name))
    found = {f.code for f in report.findings}
    assert found == set(expected.findings), [f.message for f in report.findings]
    assert report.verdict.delivery.value == expected.delivery.value, report.verdict.summary
    if name.endswith("-ok"):
        assert not [f for f in report.findings if f.severity is not Severity.INFO], (
            "a correct domain has no error or warning"
        )
    for finding in report.findings:
        assert finding.message
        assert finding.fix


@pytest.mark.lab
async def test_every_finding_names_host_and_address_where_it_applies(lab: Any, lab_settings: NetworkSettings) -> None:
    report = await Inspector(lab_settings).check(lab.domain("mx-cert-expired"))
    [finding] = [f for f in report.findings if f.code == "mx-cert-expired"]
    assert finding.host == f"mx1.{lab.domain('mx-cert-expired')}"
    assert finding.address == lab.address(finding.host)
    assert finding.severity is Severity.ERROR
    assert "Renew" in finding.fix


@pytest.mark.lab
async def test_severity_follows_the_mode(lab: Any, lab_settings: NetworkSettings) -> None:
    """The same MX failure is an error under enforce; the readiness line names it under testing."""
    enforce = await Inspector(lab_settings).check(lab.domain("mx-no-starttls"))
    assert {f.severity for f in enforce.findings if f.code == "mx-no-starttls"} == {Severity.ERROR}
    assert not enforce.verdict.mail_flows
    assert enforce.verdict.summary.startswith("mail would be deferred")


@pytest.mark.lab
@pytest.mark.parametrize("scenario", ["no-sts-record", "sts-lookup-servfail", "sts-record-bad-id"])
async def test_readiness_blames_the_record_when_the_policy_is_fine(
    lab: Any, lab_settings: NetworkSettings, scenario: str
) -> None:
    """The policy host serves a valid policy, but no valid record announces it (none, a failed
    lookup, an invalid id): the readiness line says to fix the record, not the policy."""
    report = await Inspector(lab_settings).check(lab.domain(scenario))
    assert report.analysis is not None
    assert report.analysis.policy is not None  # served and valid
    assert report.verdict.readiness is not None
    assert report.verdict.readiness.startswith("senders do not apply the policy served: no valid _mta-sts record")


@pytest.mark.lab
async def test_slow_hosts_cost_only_their_own_timeout(lab: Any, lab_settings: NetworkSettings) -> None:
    """A hanging policy host and a silent nameserver each take one timeout, in parallel."""
    inspector = Inspector(lab_settings)
    names = [lab.domain(n) for n in ("policy-hang", "sts-lookup-timeout", "enforce-ok", "mx-cert-expired")]
    reports = {r.domain: r async for r in inspector.check_many(names, concurrency=4)}
    assert set(reports) == set(names)
    assert "policy-timeout" in {f.code for f in reports[lab.domain("policy-hang")].findings}
    assert reports[lab.domain("enforce-ok")].worst is None
    # each domain's own checks ran concurrently: no domain took two timeouts
    assert all(r.elapsed < 2 * lab_settings.timeout for r in reports.values())


@pytest.mark.lab
async def test_refusing_private_addresses(lab: Any, lab_settings: NetworkSettings) -> None:
    """A hosted inspector must not be turned against its own network: every lab address is
    loopback, so nothing is contacted and the report says why."""
    from dataclasses import replace

    report = await Inspector(replace(lab_settings, allow_private=False)).check(lab.domain("enforce-ok"))
    by_code = {f.code: f for f in report.findings}
    assert "non-public addresses" in by_code["policy-fetch-failed"].message
    assert "non-public addresses" in by_code["mx-unreachable"].message
    assert report.observations is not None
    assert report.observations.probes == ()


def test_every_finding_code_has_a_lab_scenario() -> None:
    """Every code of docs/check.md is proven against the lab, except those about what no domain
    can cause: an invalid name (no lab needed), bugs of mtasts (tests/check/test_robustness.py
    injects them) and trouble on the checking side (tests/check/test_local_trouble.py)."""
    covered = set().union(*(scenario.expect.findings for scenario in CATALOGUE.values()))
    not_from_a_domain = {
        "domain-invalid",
        "check-internal-error",
        "policy-internal-error",
        "mx-internal-error",
        "local-dns-unreachable",
        "local-port25-blocked",
    }
    assert covered == FINDING_CODES - not_from_a_domain
