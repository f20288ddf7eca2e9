"""Output that fits where it goes (issue 9, point 1), seen as a user sees it.

On a real terminal (a pseudo-terminal 60, 100 or 200 columns wide) no line is wider than the
terminal, no domain or host name is split, and the report summary's sparkline shrinks or goes
before any data does. Piped, there are no escape codes, no box drawing, no trailing spaces and
no hard wrap. ``--width``, ``MTASTS_WIDTH`` and ``COLUMNS`` ask for a width explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.lab.world import check_options as lab_check_options
from mtasts.report.analysis import RESULT_TYPE_HELP
from tests.cli.terminal import (
    BOX_DRAWING,
    assert_fits,
    assert_plain,
    assert_whole,
    in_terminal,
    piped,
)
from tests.conftest import TLSRPT_SAMPLES, require_shared

WIDTHS = (60, 100, 200)

# A subsidiary with a long name reports for a long domain, with long names at both ends.
LONG_DOMAIN = "reports.northwind-traders-europe.example"
SENDING_IP = "2001:db8:4711:1234:5678:9abc:def0:1234"
RECEIVING_MX = "inbound-mx-frankfurt-02.northwind-traders-europe.example"
LONG_REPORT = {
    "organization-name": "Northwind Mail Security Services GmbH",
    "date-range": {"start-datetime": "2026-11-27T00:00:00Z", "end-datetime": "2026-11-27T23:59:59Z"},
    "contact-info": "tlsrpt@northwind.example",
    "report-id": "2026-11-27T00:00:00Z_northwind-europe",
    "policies": [
        {
            "policy": {"policy-type": "sts", "policy-domain": LONG_DOMAIN, "mx-host": ["mx1.northwind.example"]},
            "summary": {"total-successful-session-count": 1200, "total-failure-session-count": 35},
            "failure-details": [
                {
                    "result-type": "certificate-host-mismatch",
                    "sending-mta-ip": SENDING_IP,
                    "receiving-mx-hostname": RECEIVING_MX,
                    "failed-session-count": 35,
                    "failure-reason-code": "the certificate names inbound.northwind.example only, "
                    "not the MX host the policy allows",
                }
            ],
        }
    ],
}


# --- report summary ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store holding the shared sample corpus plus the long-named report; the environment
    that points mtasts at it."""
    require_shared(TLSRPT_SAMPLES)
    folder = tmp_path_factory.mktemp("widths")
    (folder / "northwind.json").write_text(json.dumps(LONG_REPORT), "utf-8")
    env = {"MTASTS_DB": str(folder / "db.sqlite3")}
    runner = CliRunner()
    for source in (TLSRPT_SAMPLES, folder / "northwind.json"):
        runner.invoke(app, ["report", "ingest", str(source)], env=env)
    return env


@pytest.fixture(scope="module")
def summary_data(report_db: dict[str, str]) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["report", "summary", "--json"], env=report_db)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    assert LONG_DOMAIN in {d["policy_domain"] for d in data["domains"]}
    return data


def _domains(data: dict[str, Any]) -> list[str]:
    return [d["policy_domain"] or "(none)" for d in data["domains"]]


def _result_types(data: dict[str, Any]) -> set[str]:
    return {kind for d in data["domains"] for kind in d["by_result_type"]}


@pytest.mark.parametrize("columns", WIDTHS)
def test_summary_fits_the_terminal(columns: int, report_db: dict[str, str], summary_data: dict[str, Any]) -> None:
    shown = in_terminal(["report", "summary"], columns, env=report_db)
    assert shown.returncode == 0, shown.stdout
    assert_fits(shown.lines, columns)
    assert_whole(shown.lines, _domains(summary_data))
    assert_whole(shown.lines, {d["readiness"]["verdict"] for d in summary_data["domains"]})
    assert_whole(shown.lines, _result_types(summary_data))
    assert_whole(shown.lines, {s["organization_name"] for s in summary_data["failing_senders"]})
    if columns == 200:  # room for everything, the decoration too
        assert "daily success (30 days)" in shown.stdout


def test_summary_at_100_columns_drops_the_sparkline_not_the_data(
    report_db: dict[str, str], summary_data: dict[str, Any]
) -> None:
    """The issue's case: at 100 columns the summary cut domain names, verdicts and result types
    while its sparkline took 32 columns. Now each domain's row holds its name, counts, last
    report and verdict in full, and the decoration is what gave way."""
    shown = in_terminal(["report", "summary"], 100, env=report_db)
    table = shown.stdout.split("Senders to work with")[0].splitlines()
    assert not any("daily success" in line for line in table)  # the decoration went first
    assert any("domain" in line and "enforce?" in line for line in table)  # still a table
    for domain in summary_data["domains"]:
        name = domain["policy_domain"] or "(none)"
        readiness = domain["readiness"]
        row = [line for line in table if line.startswith(name + " ")]
        assert len(row) == 1, (name, table)
        assert readiness["verdict"] in row[0]
        assert readiness["until"] in row[0]
        assert f" {domain['total_successful']} " in row[0]
    result_types = shown.stdout.split("Failures by result type")[1]
    for kind in _result_types(summary_data):
        assert kind in result_types
    # the meaning of each result type is prose: it wraps between words, never inside one
    meaning = RESULT_TYPE_HELP["certificate-host-mismatch"]
    assert_whole(result_types.splitlines(), meaning.split())


def test_summary_piped_is_plain_one_line_per_domain(report_db: dict[str, str], summary_data: dict[str, Any]) -> None:
    result = piped(["report", "summary"], env=report_db)
    assert result.returncode == 0, result.stderr
    assert_plain(result.stdout)
    assert "daily success (30 days)" in result.stdout  # nothing to save room for
    for domain in summary_data["domains"]:
        name = domain["policy_domain"] or "(none)"
        (row,) = [line for line in result.lines if line.startswith(name + " ")][:1]
        assert domain["readiness"]["verdict"] in row
    # the longest failure reason of the corpus (Mail.ru's, 150 characters) is one line
    reasons = [r for s in summary_data["failing_senders"] for r in s["reasons"][:2]]
    longest = max(reasons, key=len)
    assert len(longest) > 120
    assert any(longest in line for line in result.lines)


def test_report_parse_piped_keeps_the_file_path_whole(tmp_path: Path) -> None:
    """The caption names the file it came from; piped, it used to be cut at 80 columns."""
    folder = tmp_path / "tlsrpt-archive" / "northwind-traders-europe" / "2026" / "11" / "27"
    folder.mkdir(parents=True)
    path = folder / "northwind.example!reports.northwind-traders-europe.example!1764201600!1764287999.json"
    path.write_text(json.dumps(LONG_REPORT), "utf-8")
    result = piped(["report", "parse", str(path)])
    assert result.returncode == 0, result.stderr
    assert_plain(result.stdout)
    assert any(str(path) in line for line in result.lines)
    (row,) = [line for line in result.lines if line.startswith(LONG_DOMAIN + " ")]
    assert "certificate-host-mismatch ×35" in row
    assert f"{SENDING_IP} → {RECEIVING_MX}" in row  # ":1234:" is an address, not an emoji code


@pytest.mark.parametrize("columns", WIDTHS)
def test_report_parse_fits_the_terminal(columns: int, tmp_path: Path) -> None:
    path = tmp_path / "northwind.json"
    path.write_text(json.dumps(LONG_REPORT), "utf-8")
    shown = in_terminal(["report", "parse", str(path)], columns)
    assert shown.returncode == 0, shown.stdout
    assert_fits(shown.lines, columns)
    assert_whole(shown.lines, [LONG_DOMAIN, SENDING_IP, RECEIVING_MX, "certificate-host-mismatch"])


# --- check and demo, on the lab ---------------------------------------------------------------


@pytest.fixture(scope="module")
def check_options(lab: Any) -> list[str]:
    return lab_check_options(lab.info(), timeout=2)


@pytest.fixture(scope="module")
def expired(lab: Any, check_options: list[str]) -> dict[str, Any]:
    """What ``mtasts check --json`` says of the domain whose MX certificate expired."""
    result = CliRunner().invoke(app, ["check", "--json", lab.domain("mx-cert-expired"), *check_options])
    (report,) = json.loads(result.stdout)
    return dict(report)


@pytest.mark.lab
@pytest.mark.parametrize("columns", WIDTHS)
def test_check_fits_the_terminal(columns: int, check_options: list[str], expired: dict[str, Any]) -> None:
    shown = in_terminal(["check", expired["domain"], *check_options], columns)
    assert shown.returncode == 1, shown.stdout
    assert_fits(shown.lines, columns)
    assert_whole(shown.lines, [expired["domain"], *expired["mx"]])
    for finding in expired["findings"]:
        assert_whole(shown.lines, [finding["code"]])


@pytest.mark.lab
def test_check_piped_keeps_each_message_on_one_line(check_options: list[str], expired: dict[str, Any]) -> None:
    result = piped(["check", expired["domain"], *check_options])
    assert result.returncode == 1, result.stderr
    assert_plain(result.stdout)
    (finding,) = expired["findings"]
    assert len(f"    ✗ error {finding['code']}  {finding['message']}") > 80  # longer than the old hard wrap
    assert any(finding["message"] in line for line in result.lines)
    for detail in finding["details"]:
        assert any(detail in line for line in result.lines)
    assert any(finding["fix"] in line for line in result.lines)


DEMO = ["demo", "-s", "multiple-sts-records", "-s", "mx-cert-expired", "-s", "testing-ok"]
DEMO_DOMAINS = ["multiple-sts-records.mtasts.test", "mx-cert-expired.mtasts.test", "testing-ok.mtasts.test"]


@pytest.mark.lab
@pytest.mark.parametrize("columns", WIDTHS)
def test_demo_fits_the_terminal_and_never_splits_a_domain(columns: int) -> None:
    shown = in_terminal(DEMO, columns)
    assert shown.returncode == 0, shown.stdout
    assert_fits(shown.lines, columns)
    assert_whole(shown.lines, [*DEMO_DOMAINS, "deliver-policy-not-enforced", "multiple-sts-records"])
    assert "3 domains checked, 3 as their scenarios expect" in shown.stdout


@pytest.mark.lab
def test_demo_piped_is_plain_one_row_per_domain() -> None:
    result = piped(DEMO)
    assert result.returncode == 0, result.stderr
    assert_plain(result.stdout)
    table = result.stdout.split("$ mtasts check")[0].splitlines()
    for domain in DEMO_DOMAINS:
        (row,) = [line for line in table if line.startswith(domain + " ")]
        assert "✓" in row


# --- help, usage errors, --width ---------------------------------------------------------------


def test_help_and_usage_errors_are_plain_text_when_piped() -> None:
    help_text = piped(["--help"])
    assert help_text.returncode == 0
    assert_plain(help_text.stdout)
    assert "--width N" in help_text.stdout
    assert "Usage: mtasts [OPTIONS] COMMAND [ARGS]..." in help_text.stdout
    error = piped(["check", "--bogus"])
    assert error.returncode == 2
    assert error.stdout == ""
    assert_plain(error.stderr)
    assert "No such option: --bogus" in error.stderr


def test_help_keeps_its_rich_panels_on_a_terminal() -> None:
    """The choice is made from the terminal, not once and for all."""
    shown = in_terminal(["check", "--help"], 100)
    assert shown.returncode == 0
    assert BOX_DRAWING.search(shown.stdout)
    assert_fits(shown.lines, 100)


def test_width_option_overrides_the_terminal(report_db: dict[str, str], summary_data: dict[str, Any]) -> None:
    shown = in_terminal(["--width", "60", "report", "summary"], 200, env=report_db)
    assert_fits(shown.lines, 60)
    assert_whole(shown.lines, _domains(summary_data))


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--width", "70"], {}),
        ([], {"MTASTS_WIDTH": "70"}),
        ([], {"COLUMNS": "70"}),
    ],
    ids=["--width", "MTASTS_WIDTH", "COLUMNS"],
)
def test_a_width_asked_for_applies_to_piped_output(
    args: list[str], env: dict[str, str], report_db: dict[str, str], summary_data: dict[str, Any]
) -> None:
    result = CliRunner().invoke(app, [*args, "report", "summary"], env={**report_db, **env})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert_fits(lines, 70)
    assert_plain(result.stdout)  # laid out for 70 columns, still plain text
    assert_whole(lines, _domains(summary_data))


def test_a_width_too_narrow_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["--width", "5", "lab", "list"])
    assert result.exit_code == 2
    assert "Invalid value for '--width'" in result.output
    assert "greater than or equal to 20" in result.output


@pytest.mark.parametrize("columns", WIDTHS)
def test_lab_list_fits_the_terminal(columns: int) -> None:
    from mtasts.lab.scenarios import CATALOGUE

    shown = in_terminal(["lab", "list"], columns)
    assert shown.returncode == 0, shown.stdout
    assert_fits(shown.lines, columns)
    assert_whole(shown.lines, list(CATALOGUE))


def test_lab_list_piped_is_one_line_per_scenario() -> None:
    from mtasts.lab.scenarios import CATALOGUE

    result = piped(["lab", "list"])
    assert_plain(result.stdout)
    for scenario in CATALOGUE.values():
        (row,) = [line for line in result.lines if line.startswith(scenario.name + " ")]
        assert row.endswith(scenario.description)
