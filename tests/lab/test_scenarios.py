"""The scenario catalogue: required names, valid expectations, one deviation each."""

from __future__ import annotations

import dataclasses

import pytest

from mtasts.lab.scenarios import (
    CATALOGUE,
    FINDING_CODES,
    INFO_CODES,
    Delivery,
    Expectation,
    Scenario,
    get_scenario,
    select_scenarios,
)

REQUIRED = [
    "enforce-ok",
    "testing-ok",
    "none-ok",
    "wildcard-ok",
    "split-txt-ok",
    "cname-policy-host-ok",
    "no-sts-record",
    "multiple-sts-records",
    "sts-record-bad-id",
    "policy-404",
    "policy-redirect",
    "policy-content-type",
    "policy-cert-wrong-name",
    "policy-cert-expired",
    "policy-cert-untrusted",
    "policy-too-large",
    "policy-hang",
    "policy-syntax",
    "mx-not-in-policy",
    "mx-no-starttls",
    "mx-starttls-454",
    "mx-cert-wrong-name",
    "mx-cert-expired",
    "mx-cert-untrusted",
    "mx-cert-self-signed",
    "mx-tls10-only",
    "mx-unreachable",
    "mx-cert-expiring-soon",
    "tlsrpt-missing",
    "tlsrpt-invalid",
]

EXPECTED_FINDINGS = {
    "enforce-ok": set(),
    "testing-ok": {"policy-mode-testing"},
    "none-ok": {"policy-mode-none"},
    "no-sts-record": {"no-sts-record"},
    "multiple-sts-records": {"multiple-sts-records"},
    "sts-record-bad-id": {"sts-record-syntax"},
    "policy-404": {"policy-fetch-http-status"},
    "policy-redirect": {"policy-fetch-redirect"},
    "policy-too-large": {"policy-too-large"},
    "policy-hang": {"policy-timeout"},
    "mx-starttls-454": {"mx-starttls-failed"},
    "mx-cert-wrong-name": {"mx-cert-name-mismatch"},
    "mx-cert-self-signed": {"mx-cert-untrusted"},
    "mx-tls10-only": {"mx-tls-version-too-old"},
    "mx-cert-chain-incomplete": {"mx-cert-chain-incomplete"},
    "tlsrpt-invalid": {"tlsrpt-syntax"},
}


@pytest.mark.parametrize("name", REQUIRED)
def test_required_scenario_exists(name: str) -> None:
    assert CATALOGUE[name].name == name


@pytest.mark.parametrize(("name", "findings"), EXPECTED_FINDINGS.items())
def test_expected_findings(name: str, findings: set[str]) -> None:
    assert CATALOGUE[name].expect.findings == findings


@pytest.mark.parametrize("scenario", CATALOGUE.values(), ids=lambda s: s.name)
def test_expectation_is_consistent(scenario: Scenario) -> None:
    assert scenario.expect.findings <= FINDING_CODES
    assert scenario.description.endswith(".")
    if scenario.name.endswith("-ok"):
        assert scenario.expect.findings <= INFO_CODES
        assert scenario.expect.delivery in (Delivery.VALIDATED, Delivery.NOT_ENFORCED)
    else:
        broken = scenario.expect.findings - INFO_CODES or scenario.expect.delivery is Delivery.UNDELIVERABLE
        assert broken, "a broken scenario expects an error or warning, or mail that cannot be delivered"


@pytest.mark.parametrize("scenario", CATALOGUE.values(), ids=lambda s: s.name)
def test_one_thing_changed(scenario: Scenario) -> None:
    """Every broken scenario differs from a correct one in at most one field group."""
    base = Scenario("base", "Base.", scenario.expect)
    changed = {
        f.name
        for f in dataclasses.fields(Scenario)
        if f.name not in ("name", "description", "expect") and getattr(scenario, f.name) != getattr(base, f.name)
    }
    assert len(changed) <= 1, changed


def test_unknown_finding_code_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown finding codes"):
        Expectation(Delivery.DEFER, frozenset({"no-such-code"}))


def test_scenario_name_must_be_a_label() -> None:
    with pytest.raises(ValueError, match="DNS label"):
        Scenario("not a label", "X.", Expectation(Delivery.VALIDATED))


def test_select_scenarios() -> None:
    assert select_scenarios(None) == tuple(CATALOGUE.values())
    assert [s.name for s in select_scenarios(["policy-404", "enforce-ok"])] == ["policy-404", "enforce-ok"]
    with pytest.raises(ValueError, match="unique"):
        select_scenarios(["enforce-ok", "enforce-ok"])
    with pytest.raises(KeyError, match="mtasts lab list"):
        get_scenario("nope")
