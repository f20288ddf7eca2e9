"""Every string of a TLS report is the sender's (anyone may send one, RFC 8460 §5): stored by
``mtasts report ingest`` and shown by ``summary``, ``parse``, ``digest`` (printed and mailed),
it must read as text: no Rich markup interpreted, no ESC sequence, line break or BiDi
override passed to the terminal or the mail, each written as its escape instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from mtasts.cli.main import app
from tests.cli.test_digest import day, mail_args, report, store
from tests.net.test_mailer import submission_server

ORG = "Evil\x1b[31m[red]Corp[/red]\u202eLTR\nFORGED line"
RESULT = "x\x1b[2J[bold]kind[/bold]"
REASON = "rc\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\"
MX = "mx\x1b[1m.example.com"
DOMAIN = "exa\x1b[5mmple.com"
RAW = ("\x1b", "\u202e", "\r", "\x08")


def hostile() -> dict[str, Any]:
    """A report of yesterday whose every shown string carries a control character."""
    bad = report(ORG, day(-1), domain=DOMAIN, ok=0, failed=40)
    bad["report-id"] = "id\x1b[7m[link=http://evil.example/]L[/link]"
    (detail,) = bad["policies"][0]["failure-details"]
    detail |= {"result-type": RESULT, "failure-reason-code": REASON, "receiving-mx-hostname": MX}
    return bad


def assert_text_only(out: str) -> None:
    assert not any(char in out for char in RAW), repr(out)
    assert "FORGED" not in [line.split(" ", 1)[0].strip() for line in out.splitlines()]


def test_summary_shows_a_hostile_report_as_escaped_text(tmp_path: Path) -> None:
    db = store(tmp_path, [report("Good", day(-3)), hostile()])
    result = CliRunner().invoke(app, ["report", "summary", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert_text_only(result.stdout)
    assert "Evil\\x1b[31m[red]Corp[/red]\\u202eLTR\\x0aFORGED line" in result.stdout  # markup shown, not read
    assert "rc\\x1b]8;;http://evil.example/\\x1b\\link" in result.stdout
    assert "mx\\x1b[1m.example.com" in result.stdout


def test_parse_shows_a_hostile_report_as_escaped_text(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(hostile()))
    result = CliRunner().invoke(app, ["report", "parse", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert_text_only(result.stdout)
    assert "id\\x1b[7m[link=http://evil.example/]L[/link]" in result.stdout


def test_a_hostile_mime_type_is_escaped_in_the_ingest_error(tmp_path: Path) -> None:
    mail = (
        b"From: r@sender.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: application/tlsrpt+\x1b[31mjson\r\n\r\nnot a report\r\n--b--\r\n"
    )
    (tmp_path / "m.eml").write_bytes(mail)
    result = CliRunner().invoke(app, ["report", "ingest", "--db", str(tmp_path / "db"), str(tmp_path / "m.eml")])
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr
    assert "the application/tlsrpt+\\x1b[31mjson part holds neither gzip nor JSON" in result.stderr


def test_digest_printed_writes_each_alert_as_one_line(tmp_path: Path) -> None:
    db = store(tmp_path, [report("Good", day(-3)), hostile()])
    result = CliRunner().invoke(app, ["report", "digest", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert_text_only(result.stdout)
    (alert,) = [line for line in result.stdout.splitlines() if "newly fails" in line]
    assert alert.startswith("  ! Evil\\x1b[31m[red]Corp[/red]\\u202eLTR\\x0aFORGED line newly fails to deliver")


def test_digest_mailed_keeps_the_hostile_text_in_the_body(tmp_path: Path) -> None:
    db = store(tmp_path, [report("Good", day(-3)), hostile()])
    with submission_server(None, mode="plain") as server:
        result = CliRunner().invoke(app, mail_args(db, server.port, "--smtp-security", "none"))
    assert result.exit_code == 0, result.output
    (mail,) = server.delivered
    assert "\n" not in str(mail.message["Subject"])
    body = mail.message.get_content().replace("\r\n", "\n")  # the wire's line ends
    assert_text_only(body)
    assert "Evil\\x1b[31m[red]Corp[/red]\\u202eLTR\\x0aFORGED line → exa\\x1b[5mmple.com" in body
