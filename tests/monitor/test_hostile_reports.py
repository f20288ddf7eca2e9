"""A TLS report is anyone's to send: its organisation name and result types reach ``monitor
run``'s lines, the notification mail and the daemon's log, and must reach them as text (no
terminal escape sequence, no extra line)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.lab.testing import LabController
from tests.monitor.test_cli import monitor
from tests.monitor.test_report_events import tls_report
from tests.net.test_mailer import submission_server

HOSTILE_ORG = "Mail Co\x1b[2J\x1b]8;;http://evil.example/\x1b\\\nNEW error forged.example: finding: \u202egro"


def hostile_store(runner: CliRunner, tmp_path: Path, domain: str) -> Path:
    """A database where a sender that reported daily without trouble now fails, under a hostile name."""
    db, folder = tmp_path / "monitor.sqlite3", tmp_path / "reports"
    today = datetime.now(UTC).date()
    folder.mkdir()
    for n in range(2, 10):
        (folder / f"ok{n}.json").write_text(json.dumps(tls_report("Mail Co", today - timedelta(days=n), domain)))
    for n in (0, 1):
        bad = tls_report(HOSTILE_ORG, today - timedelta(days=n), domain, ok=900, failed=100)
        (folder / f"bad{n}.json").write_text(json.dumps(bad))
    ingested = runner.invoke(app, ["report", "ingest", "--db", str(db), str(folder)])
    assert ingested.exit_code == 0, ingested.output
    return db


ESCAPED = "Mail Co\\x1b[2J\\x1b]8;;http://evil.example/\\x1b\\\\x0aNEW error forged.example"


def test_a_hostile_sender_name_reaches_monitor_run_as_one_line_of_text(
    runner: CliRunner, world: LabController, tmp_path: Path
) -> None:
    domain = world.domain("two-mx")
    code, out, err = monitor(runner, world, hostile_store(runner, tmp_path, domain), domain)
    assert (code, err) == (0, "")
    assert "\x1b" not in out
    assert "\u202e" not in out
    (line,) = [line for line in out.splitlines() if "new-failing-sender" in line]
    assert ESCAPED in line
    assert not any(line.startswith("NEW error forged.example") for line in out.splitlines())


def test_a_hostile_sender_name_stays_on_its_line_in_the_notification_mail(
    runner: CliRunner, world: LabController, tmp_path: Path
) -> None:
    domain = world.domain("two-mx")
    db = hostile_store(runner, tmp_path, domain)
    with submission_server(None, mode="plain") as server:
        mail = ["--mail-to", "postmaster@example.com", "--smtp", f"127.0.0.1:{server.port}", "--smtp-security", "none"]
        code, _, err = monitor(runner, world, db, domain, *mail)
    assert (code, err) == (0, "")
    (delivered,) = server.delivered
    assert "\n" not in str(delivered.message["Subject"])
    body = delivered.message.get_content().replace("\r\n", "\n")  # the wire's line ends
    assert "\x1b" not in body
    assert "\u202e" not in body
    assert not any(line.startswith("NEW error forged.example") for line in body.splitlines())
    (line,) = [line for line in body.splitlines() if "new-failing-sender" in line]
    assert ESCAPED in line
