"""The roll-out guards quote the TLS reports (who reported, what failed), and anyone may send
a report: ``publish status`` must show a sender's name as text, never pass an ESC sequence or a
line break from it to the terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.policy import Mode
from mtasts.core.tlsrpt_report import parse_report
from mtasts.publish.history import Served
from mtasts.store.store import ReportStore
from tests.publish.test_plan_cli import DOMAIN, LIVE_ID, MX, body, config_text, record_history

ORG = "Reporter\x1b[2J\x1b]8;;http://evil.example/\x1b\\\nexample.org: enforce since 2026-01-01"


def test_status_shows_a_hostile_reporter_name_as_text(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(config_text("127.0.0.1", 86400))
    db = tmp_path / "mtasts.sqlite3"
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    record_history(db, Served(DOMAIN, LIVE_ID, body(86400), Mode.TESTING, 86400, since))
    day = (since + timedelta(days=1)).strftime("%Y-%m-%d")
    report = {
        "organization-name": ORG,
        "date-range": {"start-datetime": f"{day}T00:00:00Z", "end-datetime": f"{day}T23:59:59Z"},
        "contact-info": "tlsrpt@reporter.example",
        "report-id": "r-1",
        "policies": [
            {
                "policy": {"policy-type": "sts", "policy-domain": DOMAIN, "policy-string": [], "mx-host": [MX]},
                "summary": {"total-successful-session-count": 50, "total-failure-session-count": 0},
            }
        ],
    }
    with ReportStore(f"sqlite:///{db}") as store:
        store.add_reports([parse_report(json.dumps(report).encode())], source="test", now=datetime.now(UTC))
    result = runner.invoke(app, ["publish", "status", "--config", str(config), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output, repr(result.output)
    assert not any(line.startswith("example.org") for line in result.output.splitlines())
    assert "(Reporter\\x1b[2J\\x1b]8;;http://evil.example/\\x1b\\\\x0aexample.org: enforce since" in result.output
