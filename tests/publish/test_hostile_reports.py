"""The roll-out guards quote the TLS reports (who reported, what failed), and anyone may send
a report: ``publish status`` must show a sender's name as text, never pass an ESC sequence or a
line break from it to the terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.policy import Mode
from mtasts.publish.history import Served
from tests.publish.test_plan_cli import DOMAIN, LIVE_ID, body, config_text, record_history, store_clean_report

ORG = "Reporter\x1b[2J\x1b]8;;http://evil.example/\x1b\\\nexample.org: enforce since 2026-01-01"


def test_status_shows_a_hostile_reporter_name_as_text(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "publish.toml"
    config.write_text(config_text("127.0.0.1", 86400))
    db = tmp_path / "mtasts.sqlite3"
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    record_history(db, Served(DOMAIN, LIVE_ID, body(86400), Mode.TESTING, 86400, since))
    store_clean_report(db, since + timedelta(days=1), org=ORG)
    result = runner.invoke(app, ["publish", "status", "--config", str(config), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output, repr(result.output)
    assert not any(line.startswith("example.org") for line in result.output.splitlines())
    assert "(Reporter\\x1b[2J\\x1b]8;;http://evil.example/\\x1b\\\\x0aexample.org: enforce since" in result.output
