"""``mtasts report export --format csv|csv-failures``: tables whose columns sum to what they say.

The reports are real ones (the shared TLSRPT samples) plus reports with several failure details
and several policies, stored by ``mtasts report ingest`` and exported through the CLI; the sums
of the CSV columns are compared with the sums over the stored reports (read back from the
store, the source of truth).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.store.store import ReportStore
from tests.conftest import TLSRPT_SAMPLES, require_shared
from tests.report.test_mail import REPORT

runner = CliRunner()


def _detail(result_type: str, count: int, ip: str) -> dict[str, Any]:
    return {
        "result-type": result_type,
        "failed-session-count": count,
        "sending-mta-ip": ip,
        "receiving-mx-hostname": "mx1.example.com",
    }


def many_details(report_id: str) -> bytes:
    """A report with two policies, the first with three failure details, the second with two."""
    report = {
        **REPORT,
        "report-id": report_id,
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": "example.com"},
                "summary": {"total-successful-session-count": 90, "total-failure-session-count": 12},
                "failure-details": [
                    _detail("certificate-expired", 5, "192.0.2.1"),
                    _detail("starttls-not-supported", 4, "192.0.2.2"),
                    _detail("validation-failure", 3, "192.0.2.3"),
                ],
            },
            {
                "policy": {"policy-type": "sts", "policy-domain": "example.net"},
                "summary": {"total-successful-session-count": 10, "total-failure-session-count": 7},
                "failure-details": [
                    _detail("certificate-host-mismatch", 6, "198.51.100.1"),
                    _detail("sts-policy-fetch-error", 1, "198.51.100.2"),
                ],
            },
        ],
    }
    return json.dumps(report).encode()


@pytest.fixture
def store_env(tmp_path: Path) -> dict[str, str]:
    """A database holding the shared samples and two reports with several failure details."""
    require_shared(TLSRPT_SAMPLES)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for number in (1, 2):
        (inbox / f"many-{number}.json").write_bytes(many_details(f"many-{number}"))
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3")}
    for source in (TLSRPT_SAMPLES, inbox):
        runner.invoke(app, ["report", "ingest", str(source)], env=env)
    return env


def export(env: dict[str, str], *options: str) -> list[dict[str, str]]:
    result = runner.invoke(app, ["report", "export", *options], env=env)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def stored_policies(env: dict[str, str], domain: str | None = None) -> list[Any]:
    with ReportStore(env["MTASTS_DB"], create=False) as store:
        reports = [item.report for item in store.reports()]
    return [p for r in reports for p in r.policies if domain is None or p.policy_domain == domain]


def test_csv_has_one_row_per_report_and_policy_so_the_totals_sum_right(store_env: dict[str, str]) -> None:
    rows = export(store_env, "--format", "csv")
    policies = stored_policies(store_env)
    assert len(rows) == len(policies)
    assert sum(int(row["total_failure"]) for row in rows) == sum(p.total_failure for p in policies)
    assert sum(int(row["total_successful"]) for row in rows) == sum(p.total_successful for p in policies)
    keys = [(row["organization_name"], row["report_id"], row["policy_index"]) for row in rows]
    assert len(set(keys)) == len(keys)  # the join key names one row
    many = [row for row in rows if row["report_id"] == "many-1"]
    assert [(r["policy_domain"], r["total_failure"], r["failure_detail_rows"]) for r in many] == [
        ("example.com", "12", "3"),
        ("example.net", "7", "2"),
    ]
    assert "result_type" not in rows[0]  # the details are the other export's rows


def test_csv_failures_has_one_row_per_detail_joined_to_its_policy_row(store_env: dict[str, str]) -> None:
    failures = export(store_env, "--format", "csv-failures")
    policies = stored_policies(store_env)
    details = [d for p in policies for d in p.failure_details]
    assert len(failures) == len(details)
    assert sum(int(row["failed_session_count"]) for row in failures) == sum(d.failed_session_count for d in details)
    by_key = {
        (r["organization_name"], r["report_id"], r["policy_index"]): r for r in export(store_env, "--format", "csv")
    }
    for row in failures:
        policy = by_key[(row["organization_name"], row["report_id"], row["policy_index"])]
        assert (row["policy_type"], row["policy_domain"]) == (policy["policy_type"], policy["policy_domain"])
    for key, policy in by_key.items():  # failure_detail_rows counts the rows that join to it
        assert int(policy["failure_detail_rows"]) == sum(
            1 for r in failures if (r["organization_name"], r["report_id"], r["policy_index"]) == key
        )
    many = [(r["result_type"], r["failed_session_count"], r["sending_mta_ip"]) for r in failures]
    assert ("certificate-host-mismatch", "6", "198.51.100.1") in many


def test_a_domain_filter_keeps_only_that_domains_rows_in_both_exports(store_env: dict[str, str]) -> None:
    rows = export(store_env, "--format", "csv", "--domain", "EXAMPLE.net.")
    failures = export(store_env, "--format", "csv-failures", "--domain", "example.net")
    policies = stored_policies(store_env, "example.net")
    assert {row["policy_domain"] for row in rows + failures} == {"example.net"}
    assert sum(int(row["total_failure"]) for row in rows) == sum(p.total_failure for p in policies) == 14
    assert sum(int(row["failed_session_count"]) for row in failures) == 14


def test_json_export_keeps_its_keys(store_env: dict[str, str], tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["report", "export", "--format", "json", "-o", str(tmp_path / "out.json")], env=store_env
    )
    assert result.exit_code == 0, result.output
    exported = json.loads((tmp_path / "out.json").read_text())
    assert set(exported[0]) == {
        *("organization_name", "report_id", "contact_info", "date_range", "policies", "warnings"),
        *("source", "received_at"),
    }
    (many,) = [r for r in exported if r["report_id"] == "many-1"]
    assert [len(p["failure_details"]) for p in many["policies"]] == [3, 2]


def test_the_help_says_what_each_csv_column_sums_to() -> None:
    result = runner.invoke(app, ["report", "export", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "csv-failures" in text
    assert "the sum of total_failure is the number of failed sessions" in text
    assert "organization_name, report_id and policy_index" in text


def test_names_and_reasons_from_a_report_cannot_become_spreadsheet_formulas(tmp_path: Path) -> None:
    """Anyone can send a report: an organisation name or failure reason that a spreadsheet would
    run as a formula is exported as text (a leading apostrophe); the counts stay numbers."""
    hostile = {
        **REPORT,
        "organization-name": '=HYPERLINK("http://evil.example/","open me")',
        "report-id": "hostile-1",
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": "example.com"},
                "summary": {"total-successful-session-count": 5, "total-failure-session-count": 2},
                "failure-details": [{**_detail("validation-failure", 2, "192.0.2.9"), "failure-reason-code": "+cmd"}],
            }
        ],
    }
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "hostile.json").write_bytes(json.dumps(hostile).encode())
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3")}
    assert runner.invoke(app, ["report", "ingest", str(inbox)], env=env).exit_code == 0
    (policy,) = export(env, "--format", "csv")
    assert policy["organization_name"] == '\'=HYPERLINK("http://evil.example/","open me")'
    assert (policy["total_successful"], policy["total_failure"]) == ("5", "2")
    (failure,) = export(env, "--format", "csv-failures")
    assert failure["organization_name"].startswith("'=")
    assert failure["failure_reason_code"] == "'+cmd"
    assert failure["failed_session_count"] == "2"
