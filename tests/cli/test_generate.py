"""``mtasts generate``: policy and records for a domain with two MX."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

import mtasts
from mtasts.cli.main import app

ARGS = ["generate", "--domain", "example.com", "--mx", "mx1.example.com", "--mx", "mx2.example.com"]


def test_two_mx_json(runner: CliRunner) -> None:
    result = runner.invoke(
        app, [*ARGS, "--mode", "testing", "--max-age", "604800", "--rua", "mailto:tlsrpt@example.com", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    policy = mtasts.parse_policy(plan["policy_text"])
    assert policy.mx == ("mx1.example.com", "mx2.example.com")
    assert plan["policy_url"] == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    records = {r["name"]: r["value"] for r in plan["records"]}
    record = mtasts.parse_sts_record(records["_mta-sts.example.com"])
    assert re.fullmatch(r"\d{8}T\d{6}", record.id)
    assert mtasts.parse_tlsrpt_record(records["_smtp._tls.example.com"]).rua == ("mailto:tlsrpt@example.com",)
    assert plan["warnings"] == []


def test_warnings_for_short_max_age_and_first_enforce(runner: CliRunner) -> None:
    result = runner.invoke(app, [*ARGS, "--mode", "enforce", "--max-age", "3600"])
    assert result.exit_code == 0
    assert "generate.max_age.short" in result.output
    assert "generate.enforce.first" in result.output
    assert "generate.tlsrpt.missing" in result.output
    assert '_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=' in result.output
    existing = runner.invoke(app, [*ARGS, "--mode", "enforce", "--max-age", "604800", "--existing", "--json"])
    assert [w["code"] for w in json.loads(existing.output)["warnings"]] == ["generate.tlsrpt.missing"]


def test_unicode_names_become_alabels(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        [
            "generate",
            "-d",
            "bücher.example",
            "--mx",
            "*.bücher.example",
            "--mode",
            "none",
            "--max-age",
            "86400",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["domain"] == "xn--bcher-kva.example"
    assert plan["policy"]["mx"] == ["*.xn--bcher-kva.example"]


def test_invalid_input_is_refused_plainly(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["generate", "-d", "example.com", "--mx", "mail_1.example.com", "--mode", "testing", "--max-age", "86400"]
    )
    assert result.exit_code == 2  # the command line holds a value that cannot be published
    assert "'_' at position 5 is not allowed" in result.output
    bad_max_age = runner.invoke(app, [*ARGS, "--mode", "testing", "--max-age", "31557601"])
    assert bad_max_age.exit_code == 2
    assert "less than or equal to 31557600" in bad_max_age.output
