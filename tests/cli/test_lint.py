"""``mtasts lint``: what a domain owner sees for valid and broken input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mtasts.cli.main import app

RFC_EXAMPLE = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "mx: backupmx.example.com\r\nmax_age: 604800\r\n"
)


def test_valid_policy(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "mta-sts.txt"
    path.write_text(RFC_EXAMPLE, newline="")
    result = runner.invoke(app, ["lint", "policy", str(path)])
    assert result.exit_code == 0
    assert "valid policy" in result.output


def test_broken_policy_tells_what_to_fix(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "mta-sts.txt"
    path.write_text("version: STSv1\nmode: enforce\nmx: mail.example.com.\nmax_age: +86400\n")
    result = runner.invoke(app, ["lint", "policy", str(path)])
    assert result.exit_code == 1
    assert f"{path}:3:5" in result.output
    assert "Remove the trailing dot: 'mx: mail.example.com'." in result.output
    assert f"{path}:4:10" in result.output
    assert "digits 0-9 only" in result.output
    assert "invalid policy: 2 errors" in result.output


def test_policy_from_stdin_as_json(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["lint", "policy", "-", "--json"], input="version: STSv1\nmode: none\nmode: enforce\nmax_age: 1\n"
    )
    assert result.exit_code == 0
    document = json.loads(result.output)
    assert document["valid"] is True
    assert document["parsed"]["mode"] == "none"
    assert [p["code"] for p in document["problems"]] == ["policy.field.duplicate"]
    assert document["problems"][0]["severity"] == "warning"


def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["lint", "policy", str(tmp_path / "nope.txt")])
    assert result.exit_code == 3  # could not run: a file that cannot be read
    assert result.stderr == f"mtasts: error: cannot read {tmp_path / 'nope.txt'}: No such file or directory\n"


def test_record(runner: CliRunner) -> None:
    assert runner.invoke(app, ["lint", "record", "v=STSv1; id=20261129T081500"]).exit_code == 0
    result = runner.invoke(app, ["lint", "record", "v=STSv1; id=2026-11-29", "--json"])
    assert result.exit_code == 1
    [problem] = json.loads(result.output)["problems"]
    assert problem["code"] == "record.id.syntax"
    assert problem["column"] == 13
    assert problem["fix"]


def test_tlsrpt(runner: CliRunner) -> None:
    result = runner.invoke(app, ["lint", "tlsrpt", "v=TLSRPTv1; rua=mailto:tlsrpt@example.com!10m"])
    assert result.exit_code == 1
    assert "must be percent-encoded" in result.output
    assert runner.invoke(app, ["lint", "tlsrpt", "v=TLSRPTv1; rua=https://r.example.com/v1"]).exit_code == 0
