"""Ingest from an IMAP mailbox (aioimaplib): fetch, commit, and only then flag or move.

Messages are read with ``BODY.PEEK[]`` (reading does not mark them seen). After the reports of
a message are committed, the message gets the keyword ``TLSRPT-Ingested`` (and ``\\Seen``) or
is moved to another folder (``MOVE``; never deleted before the commit). A message that is not a
report, or that fails in any other way, gets ``TLSRPT-Rejected`` and is left where it is (set
aside: ``--retry-failed`` reads it again). A crash between commit and flag means the message is
fetched again next time and recognised as a duplicate.

Every command has a deadline and a dropped connection fails the run at once, with one line
saying how many messages were processed and how many are left; the next run resumes there.
A ``?move=`` folder is checked (``STATUS``) before any message is touched.

URL: ``imaps://USER[:PASSWORD]@HOST[:PORT]/MAILBOX[?move=FOLDER&timeout=SECONDS]``
(``imap://`` for plain IMAP on a trusted network or loopback); the password may come from
``$MTASTS_IMAP_PASSWORD``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import aioimaplib

from mtasts.core.problems import ParseError, Problem
from mtasts.core.tlsrpt_report import DEFAULT_LIMITS, ReportLimits, TlsRptReport
from mtasts.report.ingest import IngestOutcome, Parser, run_level_store_error, unexpected_problem, utc_now
from mtasts.report.mail import parse_any
from mtasts.store.interface import ReportStoreProtocol

__all__ = ["INGESTED", "REJECTED", "ImapError", "ImapSettings", "ImapUnavailable", "ingest_imap", "parse_imap_url"]

log = logging.getLogger(__name__)

INGESTED: Final = "TLSRPT-Ingested"
REJECTED: Final = "TLSRPT-Rejected"
_SIZE_RE: Final = re.compile(rb"RFC822\.SIZE (\d+)")
PASSWORD_ENV: Final = "MTASTS_IMAP_PASSWORD"  # noqa: S105 - the name of a variable
GREETING_TIMEOUT: Final = 10.0
"""An IMAP server greets at once; silence this long means a wrong port (often a TLS-only one)."""
T = TypeVar("T")


class ImapError(Exception):
    """The IMAP server refused or failed a command (``command``, ``response``)."""

    def __init__(self, command: str, response: str) -> None:
        super().__init__(f"IMAP {command} failed: {response}")
        self.command = command
        self.response = response


class ImapUnavailable(ImapError):
    """The server stopped answering (no reply before the deadline) or the connection dropped."""


def _os_reason(exc: OSError) -> str:
    """The system's reason: asyncio's "Connect call failed ('192.0.2.1', 143)" hides it in the
    errno (the address is said after the reason anyway)."""
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)
    return exc.strerror or str(exc) or type(exc).__name__


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
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the port of the IMAP URL is not a number from 1 to 65535 ({exc})") from None
    if not parts.hostname or not parts.username:
        raise ValueError(f"{url!r}: give the user and host, as in imaps://user@mail.example.com/INBOX")
    password = unquote(parts.password) if parts.password is not None else environ.get(PASSWORD_ENV)
    if password is None:
        raise ValueError(f"no password: put it in the URL or in ${PASSWORD_ENV}")
    query = parse_qs(parts.query)
    timeout = 30.0
    if "timeout" in query:
        try:
            timeout = float(query["timeout"][0])
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 3600:
            raise ValueError(f"?timeout={query['timeout'][0]}: give seconds, more than 0 and at most 3600")
    tls = parts.scheme == "imaps"
    return ImapSettings(
        host=parts.hostname,
        user=unquote(parts.username),
        password=password,
        port=port or (993 if tls else 143),
        tls=tls,
        mailbox=unquote(parts.path.lstrip("/")) or "INBOX",
        move_to=query["move"][0] if "move" in query else None,
        timeout=timeout,
    )


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(response: aioimaplib.Response) -> str:
    return " ".join(line.decode(errors="replace") for line in response.lines if isinstance(line, bytes)).strip()


def _check(command: str, response: aioimaplib.Response) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(command, _text(response) or response.result)
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


class _Session:
    """One connection, where every command has a deadline and a dropped connection fails the
    command at once.

    aioimaplib leaves both to its caller: its UID STORE and UID MOVE wait without a timeout,
    and it does not fail pending commands when the connection drops. So each command runs
    against two things, the deadline and a future the connection-lost callback completes;
    whichever comes first ends the wait.
    """

    def __init__(self, settings: ImapSettings, ssl_context: ssl.SSLContext | None) -> None:
        self.settings = settings
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        context = (ssl_context or ssl.create_default_context()) if settings.tls else None
        self.client = aioimaplib.IMAP4(
            host=settings.host,
            port=settings.port,
            timeout=settings.timeout,
            conn_lost_cb=self._lost,
            ssl_context=context,
        )

    def _lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    async def run(self, command: str, awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
        deadline = self.settings.timeout if timeout is None else timeout
        task: asyncio.Future[T] = asyncio.ensure_future(awaitable)
        waiting: set[asyncio.Future[Any]] = {task, self.lost}
        try:
            await asyncio.wait(waiting, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            if self.lost.done():
                reason = self.lost.result()
                raise ImapUnavailable(command, "the server closed the connection" + (f" ({reason})" if reason else ""))
            raise ImapUnavailable(command, f"no answer within {deadline:g} s (the server froze or is overloaded)")
        try:
            return task.result()
        except (aioimaplib.CommandTimeout, TimeoutError):
            raise ImapUnavailable(command, f"no answer within {deadline:g} s") from None
        except aioimaplib.AioImapException as exc:
            raise ImapError(command, str(exc) or type(exc).__name__) from exc
        except ssl.SSLError as exc:
            hint = ""
            if self.settings.tls and "WRONG_VERSION_NUMBER" in str(exc).upper():
                hint = ": is this a plain IMAP port? imap:// is IMAP without TLS"
            raise ImapUnavailable(command, f"TLS failed ({exc.reason or exc}){hint}") from exc
        except OSError as exc:
            raise ImapUnavailable(command, _os_reason(exc)) from exc

    async def connect(self) -> None:
        greeting = min(self.settings.timeout, GREETING_TIMEOUT)
        try:
            await self.run("connect", self.client.wait_hello_from_server(), timeout=greeting)
        except ImapUnavailable as exc:
            if exc.response.startswith("no answer"):
                hint = (
                    "is it a TLS-only port (993)? then use imaps://"
                    if not self.settings.tls
                    else "is the server an IMAP server?"
                )
                raise ImapUnavailable("connect", f"no IMAP greeting within {greeting:g} s: {hint}") from None
            raise

    async def command(
        self, command: str, awaitable: Awaitable[aioimaplib.Response], **kw: float
    ) -> aioimaplib.Response:
        return _check(command, await self.run(command, awaitable, **kw))

    def close(self) -> None:
        protocol = self.client.protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        for task in list(getattr(protocol, "tasks", ())):
            task.cancel()


def _uids(response: aioimaplib.Response) -> list[str]:
    return [
        uid for line in response.lines[:-1] if isinstance(line, bytes) for uid in line.decode().split() if uid.isdigit()
    ]


async def _check_move_target(session: _Session, settings: ImapSettings) -> None:
    """Refuse a ``?move=`` target that cannot work before any message is touched."""
    target = settings.move_to
    assert target is not None
    if target == settings.mailbox:
        raise ImapError("MOVE", f"?move={target} names the mailbox being read: give another folder")
    if "MOVE" not in session.client.protocol.capabilities:
        raise ImapError("MOVE", "the server does not support MOVE (RFC 6851): drop ?move= to flag messages instead")
    status = await session.run("STATUS", session.client.status(_quote(target), "(MESSAGES)"))
    if status.result != "OK":
        raise ImapError(
            "STATUS",
            f"the folder {target!r} named in ?move= cannot be used ({_text(status) or status.result}): "
            "create it, or fix the URL; no message was touched",
        )


async def ingest_imap(
    store: ReportStoreProtocol,
    settings: ImapSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: ReportLimits = DEFAULT_LIMITS,
    clock: Callable[[], datetime] = utc_now,
    on_outcome: Callable[[IngestOutcome], None] | None = None,
    retry_failed: bool = False,
    parse: Parser = parse_any,
) -> list[IngestOutcome]:
    """Ingest every message of the mailbox not yet flagged; return what happened to each.

    A message that fails (not a report, or anything unexpected) gets :data:`REJECTED` and the
    run goes on; ``retry_failed`` reads those again. Raises :class:`ImapError` (one line,
    saying how many messages were processed and how many are left) when the server refuses,
    stops answering or drops the connection, and :class:`~mtasts.store.errors.StoreError` when
    the database fails; in both cases the message in hand is left unflagged for the next run.
    """
    session = _Session(settings, ssl_context)
    client = session.client
    outcomes: list[IngestOutcome] = []
    uids: list[str] = []
    where = f"{settings.host}:{settings.port}"
    try:
        await session.connect()
        await session.command("LOGIN", client.login(settings.user, settings.password))
        await session.command("SELECT", client.select(_quote(settings.mailbox)))
        if settings.move_to:
            await _check_move_target(session, settings)
            # flagged by an earlier run that could not move them (killed, or the move failed)
            stranded = _uids(await session.command("SEARCH", client.uid_search(f"KEYWORD {INGESTED}")))
            if stranded:
                await session.command("MOVE", client.uid("move", ",".join(stranded), _quote(settings.move_to)))
        criteria = f"UNKEYWORD {INGESTED}" if retry_failed else f"UNKEYWORD {INGESTED} UNKEYWORD {REJECTED}"
        uids = _uids(await session.command("SEARCH", client.uid_search(criteria)))
        for uid in uids:
            outcome = await _ingest_one(
                session, store, uid, limits=limits, clock=clock, parse=parse, unreject=retry_failed
            )
            if outcome is None:
                continue  # expunged meanwhile
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        with contextlib.suppress(ImapError):
            await session.run("LOGOUT", client.logout(), timeout=min(settings.timeout, 5.0))
    except ImapError as exc:
        done = len(outcomes)
        processed = f"{done} {'message' if done == 1 else 'messages'} processed"
        left = f"; {processed}, {len(uids) - done} left for the next run" if uids else ""
        raise type(exc)(exc.command, f"{exc.response} ({where}){left}") from exc
    finally:
        session.close()
    return outcomes


async def _ingest_one(
    session: _Session,
    store: ReportStoreProtocol,
    uid: str,
    *,
    limits: ReportLimits,
    clock: Callable[[], datetime],
    parse: Parser,
    unreject: bool,
) -> IngestOutcome | None:
    settings, client = session.settings, session.client
    label = f"imap://{settings.host}/{settings.mailbox};UID={uid}"
    size = _size(await session.command("FETCH", client.uid("fetch", uid, "(RFC822.SIZE)")))
    problem: Problem | None = None
    reports: tuple[TlsRptReport, ...] = ()
    if size is not None and size > settings.max_message:
        problem = Problem(
            "mail.too_large",
            f"the message is larger than {settings.max_message} bytes ({size})",
            "Report e-mails are small; this one was not downloaded.",
        )
    else:
        # a large body may take longer than one short answer: one more deadline per 1 MB
        body_deadline = settings.timeout * (1 + (size or 0) // 1_000_000)
        fetched = await session.command("FETCH", client.uid("fetch", uid, "(BODY.PEEK[])"), timeout=body_deadline)
        data = _literal(fetched)
        if data is None:
            return None
        try:
            reports = parse(data, limits)
        except ParseError as exc:
            problem = exc.errors[0]
        except Exception as exc:  # a bug met on this message: set it aside, go on
            log.debug("parsing %s failed", label, exc_info=True)
            problem = unexpected_problem(exc)
    if problem is None:
        try:
            results = await asyncio.to_thread(store.add_reports, reports, source=label, now=clock())
        except Exception as exc:
            stop = run_level_store_error(exc, store.url)
            if stop is not None:
                raise stop from exc
            log.debug("storing %s failed", label, exc_info=True)
            problem = unexpected_problem(exc)
        else:
            # committed: only now may the message be marked or moved
            await session.command("STORE", client.uid("store", uid, f"+FLAGS.SILENT (\\Seen {INGESTED})"))
            if unreject:  # set aside by an earlier run, ingested now
                await session.command("STORE", client.uid("store", uid, f"-FLAGS.SILENT ({REJECTED})"))
            if settings.move_to:
                await session.command("MOVE", client.uid("move", uid, _quote(settings.move_to)))
            return IngestOutcome(label, tuple(results))
    log.info("not ingested: %s: %s", label, problem.message)
    await session.command("STORE", client.uid("store", uid, f"+FLAGS.SILENT ({REJECTED})"))
    return IngestOutcome(label, error=problem, moved_to=f"{label} (keyword {REJECTED})")
