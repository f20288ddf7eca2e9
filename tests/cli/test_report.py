"""``mtasts report``, run as a user would."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.tlsrpt_report import parse_report
from tests.commands import MTASTS
from tests.conftest import TLSRPT_SAMPLES, require_shared
from tests.report.test_mail import BODY, REPORT, message

runner = CliRunner()


def test_parse_json_prints_one_object_per_report(tmp_path: Path) -> None:
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(BODY))
    (tmp_path / "b.eml").write_bytes(message(("application/tlsrpt+json", BODY, "r.json")))
    result = runner.invoke(app, ["report", "parse", "--json", str(tmp_path / "a.json.gz"), str(tmp_path / "b.eml")])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert len(reports) == 2
    for report in reports:
        assert report["organization_name"] == "Example Sender"
        assert report["report_id"] == "r-1"
        assert report["date_range"] == {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T23:59:59Z"}
        (policy,) = report["policies"]
        assert policy["policy_type"] == "sts"
        assert policy["policy_domain"] == "example.com"
        assert policy["mx_host"] == []
        assert (policy["total_successful"], policy["total_failure"]) == (7, 1)
        (detail,) = policy["failure_details"]
        assert detail["result_type"] == "starttls-not-supported"
        assert detail["failed_session_count"] == 1
        assert {"sending_mta_ip", "receiving_mx_hostname", "receiving_ip"} <= detail.keys()


def test_parse_a_bad_file_exits_1_with_the_error_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"organization-name": "x"')
    result = runner.invoke(app, ["report", "parse", str(bad)])
    assert result.exit_code == 1
    assert "report.json.syntax" in result.stderr


def test_parse_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "parse", str(tmp_path / "nope.json")])
    assert result.exit_code == 3  # could not run: a file that cannot be read
    assert "cannot read" in result.stderr


@pytest.mark.parametrize(
    "data",
    [BODY, gzip.compress(BODY), message(("application/tlsrpt+gzip", gzip.compress(BODY), "r.json.gz"))],
    ids=["json", "gzip", "e-mail"],
)
def test_parse_reads_standard_input_as_bytes(data: bytes) -> None:
    result = runner.invoke(app, ["report", "parse", "--json", "-"], input=data)
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert (report["source"], report["report_id"]) == ("<stdin>", "r-1")
    table = runner.invoke(app, ["report", "parse", "-"], input=data, env={"COLUMNS": "160"})
    assert table.exit_code == 0
    assert "<stdin>" in table.stdout


def test_parse_reads_an_mbox_on_standard_input_and_a_file_beside_it(tmp_path: Path) -> None:
    mail = message(("application/tlsrpt+json", BODY, "r.json"))
    mbox = b"".join(b"From sender@example.com Sat Nov 28 00:00:00 2026\n" + mail + b"\n" for _ in range(2))
    (tmp_path / "a.json").write_bytes(BODY)
    result = runner.invoke(app, ["report", "parse", "--json", "-", str(tmp_path / "a.json")], input=mbox)
    assert result.exit_code == 0, result.output
    assert [r["source"] for r in json.loads(result.stdout)] == ["<stdin>#1", "<stdin>#2", str(tmp_path / "a.json")]


def test_parse_of_standard_input_names_it_in_errors() -> None:
    result = runner.invoke(app, ["report", "parse", "-"], input=b'{"organization-name": "x"')
    assert result.exit_code == 1
    assert "<stdin>" in result.stderr
    assert "report.json.syntax" in result.stderr


def test_parse_of_an_endless_standard_input_stops_at_the_file_limit() -> None:
    """Bounded as a file is: /dev/zero on stdin is read up to the 64 MiB limit (plus one byte)
    and refused as too large, instead of filling memory forever. A real process: the test needs a
    real endless stream."""
    import subprocess

    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(
            [*MTASTS, "report", "parse", "-"],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "mail.too_large" in done.stderr
    assert "<stdin>" in done.stderr


def test_parse_table_shows_failures(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(BODY)
    result = runner.invoke(app, ["report", "parse", str(tmp_path / "a.json")], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "Example Sender" in result.stdout
    assert "starttls-not-supported" in result.stdout


def test_parse_the_sample_corpus() -> None:
    require_shared(TLSRPT_SAMPLES)
    result = runner.invoke(app, ["report", "parse", "--json", str(TLSRPT_SAMPLES)])
    assert result.exit_code == 1  # the corpus holds negative samples
    reports = json.loads(result.stdout)
    assert len(reports) == 33
    assert "mail.no_report" in result.stderr
    assert "report.policy.type" in result.stderr


def test_summary_after_ingesting_the_samples_names_failing_senders(tmp_path: Path) -> None:
    require_shared(TLSRPT_SAMPLES)
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3"), "COLUMNS": "200"}
    runner.invoke(app, ["report", "ingest", str(TLSRPT_SAMPLES)], env=env)
    text = runner.invoke(app, ["report", "summary"], env=env)
    assert text.exit_code == 0, text.output
    assert "Senders to work with" in text.stdout
    assert "sts-policy-fetch-error" in text.stdout
    assert "Microsoft Corporation" in text.stdout
    result = runner.invoke(app, ["report", "summary", "--json", "--domain", "eden.one"], env=env)
    data = json.loads(result.stdout)
    (domain,) = data["domains"]
    assert domain["policy_domain"] == "eden.one"
    assert (domain["total_successful"], domain["total_failure"]) == (1, 2)
    assert domain["success_rate"] == 1 / 3
    assert domain["by_result_type"] == {"sts-policy-fetch-error": 2}
    assert domain["by_organization"] == {
        "Microsoft Corporation": {"total_successful": 0, "total_failure": 2},
        "Google Inc.": {"total_successful": 1, "total_failure": 0},
    }
    assert [s["organization_name"] for s in data["failing_senders"]] == ["Microsoft Corporation"]


def test_summary_on_an_empty_store_says_what_to_do(tmp_path: Path) -> None:
    from mtasts.store.store import ReportStore

    with ReportStore(str(tmp_path / "db.sqlite3")):
        pass  # a database with the schema and no report (what an ingest of nothing leaves)
    result = runner.invoke(app, ["report", "summary"], env={"MTASTS_DB": str(tmp_path / "db.sqlite3")})
    assert result.exit_code == 0
    assert "No reports stored in sqlite:///" in result.stdout
    assert "mtasts report ingest" in result.stdout


def test_export_csv_and_json(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(BODY)
    env = {"MTASTS_DB": str(tmp_path / "db.sqlite3")}
    runner.invoke(app, ["report", "ingest", str(tmp_path / "a.json")], env=env)
    as_csv = runner.invoke(app, ["report", "export", "--format", "csv"], env=env)
    assert as_csv.exit_code == 0, as_csv.output
    header, row = as_csv.stdout.splitlines()
    assert header.startswith("day,start,end,organization_name,report_id,policy_index,policy_type,policy_domain")
    assert row.split(",")[3:11] == ["Example Sender", "r-1", "0", "sts", "example.com", "7", "1", "1"]
    failures = runner.invoke(app, ["report", "export", "--format", "csv-failures"], env=env)
    assert failures.exit_code == 0, failures.output
    _, detail = failures.stdout.splitlines()
    assert detail.split(",")[1:8] == ["Example Sender", "r-1", "0", "sts", "example.com", "starttls-not-supported", "1"]
    as_json = runner.invoke(app, ["report", "export", "--format", "json", "-o", str(tmp_path / "out.json")], env=env)
    assert as_json.exit_code == 0
    (exported,) = json.loads((tmp_path / "out.json").read_text())
    assert exported["report_id"] == "r-1"
    assert exported["source"] == str(tmp_path / "a.json")


def test_serve_over_tls_until_interrupted(tmp_path: Path) -> None:
    import signal
    import socket
    import ssl
    import subprocess
    import time

    import httpx
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [*MTASTS, "report", "serve", "--port", str(port)]
    command += ["--cert", str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem")]
    command += ["--db", str(tmp_path / "db.sqlite3")]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        assert "listening on https://127.0.0.1:" in server.stderr.readline()
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(verify=context) as client:
            response = client.post(
                f"https://localhost:{port}/", content=BODY, headers={"Content-Type": "application/tlsrpt+json"}
            )
        assert response.status_code == 201
        server.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.poll() is not None, "the server did not stop on Ctrl-C"
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        if server.stderr is not None:
            server.stderr.close()
    listed = runner.invoke(app, ["report", "export", "--format", "json", "--db", str(tmp_path / "db.sqlite3")])
    assert [r["report_id"] for r in json.loads(listed.stdout)] == ["r-1"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL as given to --db: a SQLite file, or a fresh schema of the real PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "reports.sqlite3")
    return str(request.getfixturevalue("pg")())


def test_summary_over_days_survives_counts_that_add_past_64_bits(tmp_path: Path, db_url: str) -> None:
    """Rows an older mtasts stored (it did not cap counts at parse time): three reports of one day
    with 2^62 sessions each. SQLite's SUM() raised "integer overflow" out of 'summary --days'."""
    from sqlalchemy import text

    from mtasts.store.store import ReportStore

    with ReportStore(db_url) as store:
        store.add_reports(
            [parse_report(json.dumps({**REPORT, "report-id": f"old-{n}"}).encode()) for n in range(3)],
            source="old",
            now=datetime(2026, 11, 29, tzinfo=UTC),
        )
        with store.engine.begin() as connection:
            connection.execute(text("UPDATE tlsrpt_policy SET total_successful = :n, total_failure = :n"), {"n": 2**62})
            connection.execute(text("UPDATE tlsrpt_failure SET failed_session_count = :n"), {"n": 2**62})
            # and the roll-ups it kept for them, saturated (a period is summed from those since 0007)
            for table, columns in (
                ("tlsrpt_day_total", "successful = :m, failed = :m"),
                ("tlsrpt_sender_total", "successful = :m, failed = :m"),
                ("tlsrpt_reporter_day", "successful = :m, failed = :m"),
                ("tlsrpt_failure_total", "failed = :m"),
                ("tlsrpt_failure_day", "failed = :m"),
            ):
                connection.execute(text(f"UPDATE {table} SET {columns}"), {"m": 2**63 - 1})
    days = (datetime.now(UTC).date() - date(2026, 11, 28)).days + 1
    result = runner.invoke(app, ["report", "summary", "--days", str(days), "--json", "--db", db_url])
    assert result.exit_code == 0, result.output
    (domain,) = json.loads(result.stdout)["domains"]
    assert (domain["total_successful"], domain["total_failure"]) == (2**63 - 1, 2**63 - 1)  # saturated
    assert domain["by_result_type"] == {"starttls-not-supported": 2**63 - 1}
    table = runner.invoke(app, ["report", "summary", "--days", str(days), "--db", db_url], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "9223372036854775807" in table.stdout
