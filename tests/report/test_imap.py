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
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from sqlalchemy.exc import OperationalError

from mtasts.report.imap import INGESTED, REJECTED, ImapError, ingest_imap, parse_imap_url
from mtasts.store.store import ReportStore
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
        with ReportStore(f"sqlite:///{db}", connect_args={"timeout": 0.2}) as store, pytest.raises(OperationalError):
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
    command = [sys.executable, "-c", "from mtasts.cli.main import run; run()", "report", "ingest"]
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
