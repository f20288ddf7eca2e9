"""``mtasts check`` as a user runs it, against the lab."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app

pytestmark = pytest.mark.lab


def test_correct_domain_exits_0(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    result = runner.invoke(app, ["check", lab.domain("enforce-ok"), *lab_options])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output
    assert "mail flows" in result.output


def test_broken_domain_shows_the_fix_and_exits_1(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    result = runner.invoke(app, ["check", lab.domain("mx-cert-wrong-name"), *lab_options])
    assert result.exit_code == 1  # problems found (2 is for usage errors only)
    assert "mx-cert-name-mismatch" in result.output
    assert "fix: Install a certificate whose subjectAltName includes" in result.output
    assert "mail would be deferred" in result.output


def test_warnings_only_exit_1(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    result = runner.invoke(app, ["check", lab.domain("tlsrpt-missing"), *lab_options])
    assert result.exit_code == 1
    assert "tlsrpt-missing" in result.output


def test_json_schema(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    domains = [lab.domain("enforce-ok"), lab.domain("testing-ok"), lab.domain("mx-not-in-policy")]
    result = runner.invoke(app, ["check", *domains, "--json", *lab_options])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert [entry["domain"] for entry in document] == domains
    for entry in document:
        assert {"domain", "findings", "verdict"} <= set(entry)
        for finding in entry["findings"]:
            assert {"code", "severity", "host", "address", "message", "fix"} <= set(finding)
    testing = document[1]
    assert testing["verdict"]["delivery"] == "deliver-policy-not-enforced"
    assert testing["verdict"]["enforce_readiness"] == "switching to enforce now would block no MX"
    [not_listed] = [f for f in document[2]["findings"] if f["code"] == "mx-not-in-policy"]
    assert not_listed["severity"] == "error"
    assert not_listed["address"] is None
    assert not_listed["host"] == f"mx1.{domains[2]}"


def test_bulk_from_stdin_and_file_with_an_invalid_name(
    runner: CliRunner, lab: Any, lab_options: list[str], tmp_path: Path
) -> None:
    listing = tmp_path / "domains.txt"
    listing.write_text(f"# lab domains\n{lab.domain('enforce-ok')}\nnot a domain!\n")
    output = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        ["check", "-", "--file", str(listing), "--output", str(output), "--concurrency", "3", *lab_options],
        input=f"{lab.domain('mx-no-starttls')}\nbücher.{lab.info()['zone']}\n",
    )
    assert result.exit_code == 1
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    by_domain = {line["domain"]: line for line in lines}
    assert len(lines) == 4
    assert by_domain["not a domain!"]["findings"][0]["code"] == "domain-invalid"
    assert f"xn--bcher-kva.{lab.info()['zone']}" in by_domain  # converted to A-labels, then checked
    assert by_domain[lab.domain("enforce-ok")]["status"] == "ok"
    assert "4 domains" in result.output


def test_csv_output(runner: CliRunner, lab: Any, lab_options: list[str], tmp_path: Path) -> None:
    output = tmp_path / "out.csv"
    result = runner.invoke(app, ["check", lab.domain("policy-404"), "--output", str(output), *lab_options])
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [row["code"] for row in rows] == ["policy-fetch-http-status"]
    assert rows[0]["severity"] == "error"


def test_bad_options_are_plain_errors(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", "example.com", "--nameserver", "dns.example"])
    assert result.exit_code == 2
    assert "not an IP address" in result.output
    assert runner.invoke(app, ["check"]).exit_code == 2
