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


ENFORCE_60 = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 60\n"
GENERATE_60 = ["generate", "-d", "example.com", "--mx", "mail.example.com", "--mode", "enforce", "--max-age", "60"]


def test_risky_max_age_warns_with_generates_code_and_words(runner: CliRunner) -> None:
    # the issue: lint accepted max_age 60 silently while generate warned
    lint = runner.invoke(app, ["lint", "policy", "-", "--rua", "mailto:tlsrpt@example.com", "--json"], input=ENFORCE_60)
    assert lint.exit_code == 0  # a warning, by default not a failure
    document = json.loads(lint.output)
    assert document["valid"] is True
    generate = runner.invoke(
        app,
        [*GENERATE_60, "--rua", "mailto:tlsrpt@example.com", "--existing", "--json"],
    )
    # one rule table: the same code, severity, message and fix
    assert document["problems"] == json.loads(generate.output)["warnings"]
    [warning] = document["problems"]
    assert warning["code"] == "policy.max_age.short"
    assert warning["severity"] == "warning"
    assert "under a week with mode 'enforce'" in warning["message"]
    strict = runner.invoke(
        app, ["lint", "policy", "-", "--rua", "mailto:tlsrpt@example.com", "--fail-on", "warning"], input=ENFORCE_60
    )
    assert strict.exit_code == 1
    assert "valid policy (1 warning)" in strict.output


def test_testing_mode_floor_is_a_day(runner: CliRunner) -> None:
    text = "version: STSv1\nmode: testing\nmx: mail.example.com\nmax_age: {}\n"
    hour = runner.invoke(app, ["lint", "policy", "-", "--json"], input=text.format(3600))
    assert "policy.max_age.short" in [p["code"] for p in json.loads(hour.output)["problems"]]
    day = runner.invoke(app, ["lint", "policy", "-", "--json"], input=text.format(86400))
    assert "policy.max_age.short" not in [p["code"] for p in json.loads(day.output)["problems"]]


def test_tls_reporting_is_a_note_unless_rua_is_given(runner: CliRunner) -> None:
    good = RFC_EXAMPLE.replace("\r\n", "\n")
    unknown = runner.invoke(app, ["lint", "policy", "-", "--fail-on", "warning", "--json"], input=good)
    assert unknown.exit_code == 0  # the file cannot say whether reporting exists: a note, not a warning
    [note] = json.loads(unknown.output)["problems"]
    assert (note["code"], note["severity"]) == ("policy.tlsrpt.missing", "info")
    assert "--rua" in note["fix"]
    told = runner.invoke(app, ["lint", "policy", "-", "--rua", "https://r.example.com/v1", "--json"], input=good)
    assert json.loads(told.output)["problems"] == []
    bad = runner.invoke(app, ["lint", "policy", "-", "--rua", "http://r.example.com/v1"], input=good)
    assert bad.exit_code == 2  # a wrong value on the command line
    assert bad.stderr.startswith("mtasts: error: --rua: ")
    assert bad.stderr.count("\n") == 1
