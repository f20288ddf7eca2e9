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
    assert "record.id.syntax" in result.output  # a ParseError problem, shown with its code
    assert "policy.mode.value" in result.output


def test_demo_chosen_scenarios() -> None:
    result = CliRunner().invoke(app, ["demo", "-s", "policy-hang", "-s", "mx-unreachable"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "policy-hang.mtasts.test" in result.output
    assert "fetch failed" in result.output


def test_demo_unknown_scenario() -> None:
    assert CliRunner().invoke(app, ["demo", "-s", "nope"]).exit_code == 2
