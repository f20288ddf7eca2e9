"""``check`` never crashes: what goes wrong while probing one host is a finding on that host,
and a bulk run reports every other domain."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.check import inspect
from mtasts.check.inspect import Inspector
from mtasts.cli.main import app
from mtasts.core.problems import Severity
from mtasts.net.settings import NetworkSettings

pytestmark = pytest.mark.lab


def test_a_certificate_cryptography_cannot_parse_does_not_stop_the_run(
    runner: CliRunner, lab: Any, lab_options: list[str]
) -> None:
    """The issue's case: a SAN with a byte >= 0x80 raised ValueError out of the fetch, and with
    --json nothing at all was printed."""
    domains = [lab.domain("policy-cert-malformed"), lab.domain("enforce-ok"), lab.domain("mx-cert-malformed")]
    result = runner.invoke(app, ["check", *domains, "--json", *lab_options])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert [entry["domain"] for entry in document] == domains
    by_domain = {entry["domain"]: entry for entry in document}
    [policy] = by_domain[domains[0]]["findings"]
    assert policy["code"] == "policy-cert-malformed"
    assert policy["host"] == f"mta-sts.{domains[0]}"
    assert "Reissue the certificate" in policy["fix"]
    assert by_domain[domains[1]]["status"] == "ok"
    [mx] = by_domain[domains[2]]["findings"]
    assert (mx["code"], mx["severity"], mx["host"]) == ("mx-cert-malformed", "error", f"mx1.{domains[2]}")
    assert "Traceback" not in result.output


@pytest.fixture
def inspector(lab_settings: NetworkSettings) -> Inspector:
    return Inspector(lab_settings)


# The tests below make mtasts itself fail. No real input is known to do that any more (the one
# the issue found is handled above), so each replaces one component with one that raises: the
# point is what the inspector does with an error nobody anticipated.


async def test_an_unexpected_error_in_one_mx_probe_is_a_finding_on_that_host(
    lab: Any, inspector: Inspector, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_probe = inspect.probe_mx
    broken_host = f"mx1.{lab.domain('mx-cert-expired')}"

    async def probe(host: str, address: str, settings: NetworkSettings, *, now: Any) -> Any:
        if host == broken_host:
            raise RuntimeError("simulated bug")
        return await real_probe(host, address, settings, now=now)

    monkeypatch.setattr(inspect, "probe_mx", probe)
    names = [lab.domain("mx-cert-expired"), lab.domain("enforce-ok")]
    reports = {r.domain: r async for r in inspector.check_many(names, concurrency=2)}
    broken = reports[names[0]]
    [finding] = [f for f in broken.findings if f.code == "mx-internal-error"]
    assert finding.host == broken_host
    assert finding.address == lab.address(broken_host)
    assert finding.severity is Severity.ERROR
    assert "RuntimeError: simulated bug" in finding.message
    assert "--debug" in finding.fix
    assert reports[names[1]].worst is None


async def test_an_unexpected_error_in_the_fetch_is_a_policy_finding(
    lab: Any, inspector: Inspector, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fetch(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("simulated bug")

    monkeypatch.setattr(inspect, "fetch_policy", fetch)
    report = await inspector.check(lab.domain("enforce-ok"))
    codes = {f.code for f in report.findings}
    assert "policy-internal-error" in codes
    assert "policy-fetch-failed" not in codes  # the domain is not blamed
    [finding] = [f for f in report.findings if f.code == "policy-internal-error"]
    assert finding.host == f"mta-sts.{lab.domain('enforce-ok')}"


async def test_an_unexpected_error_in_one_domain_leaves_the_others(
    lab: Any, inspector: Inspector, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_analyse = inspect.analyse
    broken = lab.domain("testing-ok")

    def analyse(observations: Any, **kwargs: Any) -> Any:
        if observations.domain == broken:
            raise KeyError("simulated bug")
        return real_analyse(observations, **kwargs)

    monkeypatch.setattr(inspect, "analyse", analyse)
    names = [lab.domain("enforce-ok"), broken, lab.domain("tlsrpt-missing")]
    reports: dict[str, Any] = {}

    async def collect(iterator: AsyncIterator[Any]) -> None:
        async for report in iterator:
            reports[report.domain] = report

    await collect(inspector.check_many(names, concurrency=1))
    assert set(reports) == set(names)
    [finding] = reports[broken].findings
    assert finding.code == "check-internal-error"
    assert reports[broken].verdict.delivery.value == "unknown"
    assert reports[names[2]].findings[0].code == "tlsrpt-missing"
    assert reports[broken].to_dict()["status"] == "error"
