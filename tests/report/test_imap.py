"""IMAP ingest against a real Dovecot: flag or move only after commit; a kill loses nothing."""

from __future__ import annotations

import dataclasses
import gzip
import imaplib
import json
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from mtasts.cli.exitcodes import ExitCode
from mtasts.core.tlsrpt_report import ReportLimits, TlsRptReport
from mtasts.report.imap import INGESTED, REJECTED, ImapError, ingest_imap, parse_imap_url
from mtasts.report.ingest import UNEXPECTED
from mtasts.report.mail import parse_any
from mtasts.store.errors import StoreUnavailable
from mtasts.store.store import ReportStore
from tests.commands import MTASTS
from tests.report.dovecot import PASSWORD, USER, Dovecot, start_dovecot
from tests.report.test_mail import REPORT, message

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.fixture
def dovecot(report_ca: trustme.CA) -> Iterator[Dovecot]:
    # not tmp_path: pytest makes it private (0700) and Dovecot's own users must reach the files
    root = Path(tempfile.mkdtemp(prefix="mtasts-dovecot-"))
    try:
        server = start_dovecot(root, report_ca)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def imap_session(server: Dovecot, context: ssl.SSLContext) -> imaplib.IMAP4_SSL:
    session = imaplib.IMAP4_SSL("localhost", server.port, ssl_context=context)
    session.login(USER, PASSWORD)
    return session


def report_message(number: int) -> bytes:
    body = gzip.compress(json.dumps({**REPORT, "report-id": f"r-{number}"}).encode())
    return message(("application/tlsrpt+gzip", body, f"r{number}.json.gz"))


def append(server: Dovecot, context: ssl.SSLContext, messages: list[bytes], mailbox: str = "INBOX") -> None:
    session = imap_session(server, context)
    try:
        for raw in messages:
            assert session.append(mailbox, None, None, raw)[0] == "OK"
    finally:
        session.logout()


def flags(server: Dovecot, context: ssl.SSLContext, mailbox: str = "INBOX") -> list[str]:
    """The flags of every message in ``mailbox``, in UID order."""
    session = imap_session(server, context)
    try:
        session.select(f'"{mailbox}"', readonly=True)
        status, data = session.uid("FETCH", "1:*", "(FLAGS)")
        assert status == "OK"
        return [item.decode() for item in data if isinstance(item, bytes)]
    finally:
        session.logout()


def settings_for(server: Dovecot, **query: str) -> object:
    url = server.url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    return parse_imap_url(url, {})


async def test_reports_are_stored_then_flagged_and_non_reports_marked_rejected(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    append(
        dovecot, client_ssl, [report_message(n) for n in range(3)] + [message(("application/pdf", b"%PDF", "x.pdf"))]
    )
    settings = parse_imap_url(dovecot.url, {})
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = await ingest_imap(store, settings, ssl_context=client_ssl, clock=lambda: NOW)
        assert [o.stored for o in outcomes] == [1, 1, 1, 0]
        assert outcomes[3].error is not None
        assert outcomes[3].error.code == "mail.no_report"
        assert store.count() == 3
        seen = flags(dovecot, client_ssl)
        assert all(INGESTED in f and "\\Seen" in f for f in seen[:3])
        assert REJECTED in seen[3]
        assert INGESTED not in seen[3]
        again = await ingest_imap(store, settings, ssl_context=client_ssl, clock=lambda: NOW)
        assert again == []  # flagged messages are not fetched again


async def test_move_mode_moves_after_commit(dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path) -> None:
    session = imap_session(dovecot, client_ssl)
    session.create("Processed")
    session.logout()
    append(dovecot, client_ssl, [report_message(n) for n in range(2)])
    settings = parse_imap_url(dovecot.url + "?move=Processed", {})
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = await ingest_imap(store, settings, ssl_context=client_ssl, clock=lambda: NOW)
        assert sum(o.stored for o in outcomes) == 2
    assert flags(dovecot, client_ssl) == []
    assert len(flags(dovecot, client_ssl, "Processed")) == 2


async def test_nothing_is_flagged_when_the_store_cannot_commit(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    append(dovecot, client_ssl, [report_message(1)])
    db = tmp_path / "db.sqlite3"
    with ReportStore(f"sqlite:///{db}") as setup:
        setup.count()
    import sqlite3

    locker = sqlite3.connect(db)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    try:
        with ReportStore(f"sqlite:///{db}", connect_args={"timeout": 0.2}) as store, pytest.raises(StoreUnavailable):
            await ingest_imap(store, parse_imap_url(dovecot.url, {}), ssl_context=client_ssl)
    finally:
        locker.rollback()
        locker.close()
    (only,) = flags(dovecot, client_ssl)
    assert INGESTED not in only
    assert "\\Seen" not in only


async def test_wrong_password_is_an_imap_error(dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path) -> None:
    settings = parse_imap_url(dovecot.url.replace(PASSWORD, "wrong"), {})
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store, pytest.raises(ImapError, match="LOGIN"):
        await ingest_imap(store, settings, ssl_context=client_ssl)


def test_a_killed_imap_ingest_loses_and_duplicates_nothing(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    total = 500
    append(dovecot, client_ssl, [report_message(n) for n in range(total)])
    db = tmp_path / "db.sqlite3"
    command = [*MTASTS, "report", "ingest"]
    command += ["--imap", dovecot.url, "--db", str(db)]
    env = {"SSL_CERT_FILE": str(dovecot.ca_file), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if sum(INGESTED in f for f in flags(dovecot, client_ssl)) >= 20:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
        if process.stderr is not None:
            process.stderr.close()
    flagged = [INGESTED in f for f in flags(dovecot, client_ssl)]
    assert 0 < sum(flagged) < total, "the ingest was not killed mid-way"
    with ReportStore(f"sqlite:///{db}") as store:
        ids = {s.report.report_id for s in store.reports()}
        # no loss: every flagged message's report is committed (UIDs follow the append order)
        assert {f"r-{n}" for n, done in enumerate(flagged) if done} <= ids
        rerun = subprocess.run(command, env=env, capture_output=True, check=False)
        assert rerun.returncode == 0, rerun.stderr.decode()
        assert store.count() == total
        assert len({s.report.report_id for s in store.reports()}) == total
    assert all(INGESTED in f for f in flags(dovecot, client_ssl))


def test_imap_url_parsing() -> None:
    settings = parse_imap_url(
        "imaps://me%40example.com@mail.example.com/Reports%2FTLS?move=Done", {"MTASTS_IMAP_PASSWORD": "pw"}
    )
    assert (settings.user, settings.password, settings.port, settings.mailbox) == (
        "me@example.com",
        "pw",
        993,
        "Reports/TLS",
    )
    assert settings.move_to == "Done"
    assert "pw" not in repr(settings)
    assert parse_imap_url("imap://u:p@127.0.0.1", {}).port == 143
    with pytest.raises(ValueError, match="password"):
        parse_imap_url("imaps://u@h/INBOX", {})
    with pytest.raises(ValueError, match="imaps://"):
        parse_imap_url("https://u:p@h/", {})


async def test_an_oversized_message_is_not_downloaded(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    append(dovecot, client_ssl, [report_message(1), report_message(2) + b"\r\n" + b"x" * 200_000])
    settings = dataclasses.replace(parse_imap_url(dovecot.url, {}), max_message=100_000)
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = await ingest_imap(store, settings, ssl_context=client_ssl, clock=lambda: NOW)
        assert [o.stored for o in outcomes] == [1, 0]
        assert outcomes[1].error is not None
        assert outcomes[1].error.code == "mail.too_large"
    assert REJECTED in flags(dovecot, client_ssl)[1]


# --- faults: a server that dies or freezes, a wrong port, a wrong move target, a poison message ---


def ingest_command(url: str, db: Path, *extra: str) -> list[str]:
    return [
        *MTASTS,
        "report",
        "ingest",
        "--imap",
        url,
        "--db",
        str(db),
        *extra,
    ]


def cli_env(server: Dovecot) -> dict[str, str]:
    return {"SSL_CERT_FILE": str(server.ca_file), "PATH": "/usr/bin:/bin"}


def _run_until_flagged(
    server: Dovecot, context: ssl.SSLContext, command: list[str], count: int
) -> subprocess.Popen[str]:
    process = subprocess.Popen(command, env=cli_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if sum(INGESTED in f for f in flags(server, context)) >= count:
            break
        time.sleep(0.05)
    if process.poll() is not None:
        raise AssertionError(f"the ingest ended before the fault: {process.communicate()}")
    return process


def _assert_resumes(server: Dovecot, context: ssl.SSLContext, db: Path, total: int) -> None:
    """No loss (every flagged message is committed) and, run again, every report exactly once."""
    flagged = [INGESTED in f for f in flags(server, context)]
    assert 0 < sum(flagged) < total, "the fault did not happen mid-run"
    with ReportStore(f"sqlite:///{db}") as store:
        ids = {s.report.report_id for s in store.reports()}
        assert {f"r-{n}" for n, done in enumerate(flagged) if done} <= ids
    rerun = subprocess.run(
        ingest_command(server.url, db), env=cli_env(server), capture_output=True, text=True, check=False
    )
    assert rerun.returncode == ExitCode.OK, rerun.stderr
    with ReportStore(f"sqlite:///{db}") as store:
        assert store.count() == total
        assert len({s.report.report_id for s in store.reports()}) == total
    assert all(INGESTED in f for f in flags(server, context))


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mtasts: error: IMAP "), stderr
    return lines[0]


def test_cli_a_server_killed_mid_run_fails_with_one_line_and_the_next_run_resumes(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, report_ca: trustme.CA, tmp_path: Path
) -> None:
    total = 500
    append(dovecot, client_ssl, [report_message(n) for n in range(total)])
    db = tmp_path / "db.sqlite3"
    process = _run_until_flagged(dovecot, client_ssl, ingest_command(dovecot.url + "?timeout=20", db), 20)
    dovecot.kill()  # the master, the login and the IMAP process, by the master's PID (its group)
    try:
        # was: a hang forever (the pending STORE waits for an answer that never comes)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == ExitCode.CANNOT_RUN, stderr
    line = _one_line(stderr)
    assert "closed the connection" in line
    assert "left for the next run" in line
    assert " stored, " in stdout
    dovecot.restart(report_ca)
    _assert_resumes(dovecot, client_ssl, db, total)


def test_cli_a_server_frozen_mid_run_fails_at_the_deadline_and_the_next_run_resumes(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    total = 500
    append(dovecot, client_ssl, [report_message(n) for n in range(total)])
    db = tmp_path / "db.sqlite3"
    process = _run_until_flagged(dovecot, client_ssl, ingest_command(dovecot.url + "?timeout=3", db), 20)
    dovecot.signal_all(signal.SIGSTOP)  # the connection stays open; nothing answers
    try:
        _stdout, stderr = process.communicate(timeout=120)  # was: forever, or aioimaplib's traceback
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        dovecot.signal_all(signal.SIGCONT)
    assert process.returncode == ExitCode.CANNOT_RUN, stderr
    line = _one_line(stderr)
    assert "no answer within 3 s" in line
    assert "left for the next run" in line
    _assert_resumes(dovecot, client_ssl, db, total)


def test_cli_plain_imap_to_a_tls_only_port_says_so(dovecot: Dovecot, tmp_path: Path) -> None:
    command = ingest_command(dovecot.plain_url + "?timeout=2", tmp_path / "db.sqlite3")
    result = subprocess.run(command, env=cli_env(dovecot), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == ExitCode.CANNOT_RUN
    line = _one_line(result.stderr)  # was: 31 s, then an empty reason
    assert "no IMAP greeting within 2 s" in line
    assert "imaps://" in line


def test_cli_a_missing_move_folder_is_reported_before_any_message_is_touched(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    append(dovecot, client_ssl, [report_message(n) for n in range(3)])
    db = tmp_path / "db.sqlite3"
    for _ in range(2):  # was: each run flagged one more message, failed its move and stopped
        command = ingest_command(dovecot.url + "?move=Nowhere", db)
        result = subprocess.run(command, env=cli_env(dovecot), capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == ExitCode.CANNOT_RUN
        line = _one_line(result.stderr)
        assert "'Nowhere'" in line
        assert "no message was touched" in line
    assert all(INGESTED not in f and "\\Seen" not in f for f in flags(dovecot, client_ssl))
    with ReportStore(f"sqlite:///{db}") as store:
        assert store.count() == 0


async def test_a_message_flagged_but_not_moved_is_moved_by_the_next_run(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    session = imap_session(dovecot, client_ssl)
    session.create("Processed")
    session.logout()
    append(dovecot, client_ssl, [report_message(n) for n in range(2)])
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        # an earlier run committed and flagged the first message, then died before its MOVE
        await ingest_imap(store, parse_imap_url(dovecot.url, {}), ssl_context=client_ssl, clock=lambda: NOW)
        append(dovecot, client_ssl, [report_message(2)])
        settings = parse_imap_url(dovecot.url + "?move=Processed", {})
        outcomes = await ingest_imap(store, settings, ssl_context=client_ssl, clock=lambda: NOW)
        assert [o.stored for o in outcomes] == [1]
        assert store.count() == 3
    assert flags(dovecot, client_ssl) == []
    assert len(flags(dovecot, client_ssl, "Processed")) == 3


async def test_an_unexpected_failure_is_set_aside_with_a_keyword_and_retried_on_request(
    dovecot: Dovecot, client_ssl: ssl.SSLContext, tmp_path: Path
) -> None:
    append(dovecot, client_ssl, [report_message(n) for n in range(4)])

    def broken(data: bytes, limits: ReportLimits) -> tuple[TlsRptReport, ...]:
        # the documented parser seam: no input is known to make today's parser raise anything
        # but ParseError, and a failure nobody anticipated is what must not stop the mailbox
        reports = parse_any(data, limits)
        if reports[0].report_id == "r-1":
            raise RuntimeError("a bug in mtasts")
        return reports

    settings = parse_imap_url(dovecot.url, {})
    with ReportStore(f"sqlite:///{tmp_path / 'db.sqlite3'}") as store:
        outcomes = await ingest_imap(store, settings, ssl_context=client_ssl, parse=broken)
        assert [o.error.code if o.error else o.stored for o in outcomes] == [1, UNEXPECTED, 1, 1]
        seen = flags(dovecot, client_ssl)
        assert REJECTED in seen[1]
        assert INGESTED not in seen[1]
        assert await ingest_imap(store, settings, ssl_context=client_ssl) == []  # not read again
        retried = await ingest_imap(store, settings, ssl_context=client_ssl, retry_failed=True)
        assert [(o.stored, o.set_aside) for o in retried] == [(1, False)]
        assert store.count() == 4
    seen = flags(dovecot, client_ssl)
    assert INGESTED in seen[1]
    assert REJECTED not in seen[1]
