"""``mtasts demo``: the offline first look finishes and exits 0."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app

pytestmark = pytest.mark.lab


def test_demo_exits_zero() -> None:
    result = CliRunner().invoke(app, ["demo"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "enforce-ok.mtasts.test" in result.output
    assert "deliver-validated-tls" in result.output
    assert "sts-record-syntax" in result.output  # the inspector's finding codes
    assert "mx-cert-expired" in result.output
    assert "fix: Renew the certificate" in result.output  # a full report, with the fix
    assert "✗" not in result.output.split("$ mtasts check")[0]  # every row as the scenario expects
    assert "eof_received" not in result.output
    assert "15 domains checked, 15 as their scenarios expect" in result.output


def test_demo_chosen_scenarios() -> None:
    result = CliRunner().invoke(app, ["demo", "-s", "policy-hang", "-s", "mx-unreachable"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "policy-hang.mtasts.test" in result.output
    assert "policy-timeout" in result.output
    assert "mx-unreachable" in result.output


def test_demo_unknown_scenario() -> None:
    assert CliRunner().invoke(app, ["demo", "-s", "nope"]).exit_code == 2
