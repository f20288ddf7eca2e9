"""Ingest from an IMAP mailbox (aioimaplib): fetch, commit, and only then flag or move.

Messages are read with ``BODY.PEEK[]`` (reading does not mark them seen). After the reports of
a message are committed, the message gets the keyword ``TLSRPT-Ingested`` (and ``\\Seen``) or
is moved to another folder (``MOVE``; never deleted before the commit). A message that is not a
report gets ``TLSRPT-Rejected`` and is left where it is. A crash between commit and flag means
the message is fetched again next time and recognised as a duplicate.

URL: ``imaps://USER[:PASSWORD]@HOST[:PORT]/MAILBOX[?move=FOLDER]`` (``imap://`` for plain
IMAP on a trusted network or loopback); the password may come from ``$MTASTS_IMAP_PASSWORD``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

import aioimaplib

from mtasts.core.problems import ParseError, Problem
from mtasts.core.tlsrpt_report import DEFAULT_LIMITS, ReportLimits
from mtasts.report.ingest import IngestOutcome, utc_now
from mtasts.report.mail import MailParseError, parse_any
from mtasts.store.store import ReportStore

__all__ = ["INGESTED", "REJECTED", "ImapError", "ImapSettings", "ingest_imap", "parse_imap_url"]

log = logging.getLogger(__name__)

INGESTED: Final = "TLSRPT-Ingested"
REJECTED: Final = "TLSRPT-Rejected"
_SIZE_RE: Final = re.compile(rb"RFC822\.SIZE (\d+)")
PASSWORD_ENV: Final = "MTASTS_IMAP_PASSWORD"  # noqa: S105 - the name of a variable


class ImapError(Exception):
    """The IMAP server refused or failed a command (``command``, ``response``)."""

    def __init__(self, command: str, response: str) -> None:
        super().__init__(f"IMAP {command} failed: {response}")
        self.command = command
        self.response = response


@dataclass(frozen=True, slots=True)
class ImapSettings:
    host: str
    user: str
    password: str = field(repr=False)
    port: int = 993
    tls: bool = True
    mailbox: str = "INBOX"
    move_to: str | None = None
    timeout: float = 30.0
    max_message: int = 64 * 1024 * 1024


def parse_imap_url(url: str, environ: Mapping[str, str]) -> ImapSettings:
    """Read an ``imap://`` or ``imaps://`` URL; raise ``ValueError`` saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError(f"{url!r}: the URL must start with imaps:// (or imap://)")
    if not parts.hostname or not parts.username:
        raise ValueError(f"{url!r}: give the user and host, as in imaps://user@mail.example.com/INBOX")
    password = unquote(parts.password) if parts.password is not None else environ.get(PASSWORD_ENV)
    if password is None:
        raise ValueError(f"no password: put it in the URL or in ${PASSWORD_ENV}")
    query = parse_qs(parts.query)
    tls = parts.scheme == "imaps"
    return ImapSettings(
        host=parts.hostname,
        user=unquote(parts.username),
        password=password,
        port=parts.port or (993 if tls else 143),
        tls=tls,
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        move_to=query["move"][0] if "move" in query else None,
    )


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(command: str, response: aioimaplib.Response) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(
            command, " ".join(line.decode(errors="replace") for line in response.lines if isinstance(line, bytes))
        )
    return response


def _size(response: aioimaplib.Response) -> int | None:
    for line in response.lines:
        if isinstance(line, bytes) and (match := _SIZE_RE.search(line)):
            return int(match.group(1))
    return None


def _literal(response: aioimaplib.Response) -> bytes | None:
    for line in response.lines:
        if isinstance(line, bytearray):
            return bytes(line)
    return None


async def ingest_imap(
    store: ReportStore,
    settings: ImapSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: ReportLimits = DEFAULT_LIMITS,
    clock: Callable[[], datetime] = utc_now,
    on_outcome: Callable[[IngestOutcome], None] | None = None,
) -> list[IngestOutcome]:
    """Ingest every message of the mailbox not yet flagged; return what happened to each."""
    if settings.tls:
        client = aioimaplib.IMAP4_SSL(
            host=settings.host,
            port=settings.port,
            timeout=settings.timeout,
            ssl_context=ssl_context or ssl.create_default_context(),
        )
    else:
        client = aioimaplib.IMAP4(host=settings.host, port=settings.port, timeout=settings.timeout)
    outcomes: list[IngestOutcome] = []
    try:
        await client.wait_hello_from_server()
        _check("LOGIN", await client.login(settings.user, settings.password))
        _check("SELECT", await client.select(_quote(settings.mailbox)))
        found = _check("SEARCH", await client.uid_search(f"UNKEYWORD {INGESTED} UNKEYWORD {REJECTED}"))
        uids = [uid for line in found.lines[:-1] for uid in line.decode().split() if uid.isdigit()]
        for uid in uids:
            label = f"imap://{settings.host}/{settings.mailbox};UID={uid}"
            size = _size(_check("FETCH", await client.uid("fetch", uid, "(RFC822.SIZE)")))
            try:
                if size is not None and size > settings.max_message:
                    raise MailParseError(
                        Problem(
                            "mail.too_large",
                            f"the message is larger than {settings.max_message} bytes ({size})",
                            "Report e-mails are small; this one was not downloaded.",
                        )
                    )
                data = _literal(_check("FETCH", await client.uid("fetch", uid, "(BODY.PEEK[])")))
                if data is None:
                    continue  # expunged meanwhile
                reports = parse_any(data, limits)
            except ParseError as exc:
                _check("STORE", await client.uid("store", uid, f"+FLAGS.SILENT ({REJECTED})"))
                outcome = IngestOutcome(label, error=exc)
            else:
                results = await asyncio.to_thread(store.add_reports, reports, source=label, now=clock())
                # committed: only now may the message be marked or moved
                _check("STORE", await client.uid("store", uid, f"+FLAGS.SILENT (\\Seen {INGESTED})"))
                if settings.move_to:
                    _check("MOVE", await client.uid("move", uid, _quote(settings.move_to)))
                outcome = IngestOutcome(label, tuple(results))
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        await client.logout()
    finally:
        if client.protocol is not None and client.protocol.transport is not None:
            client.protocol.transport.close()
    return outcomes
