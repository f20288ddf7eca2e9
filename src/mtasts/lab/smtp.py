"""The lab's MX hosts: a small real ESMTP server (RFC 5321, STARTTLS per RFC 3207).

Banner, EHLO/HELO, STARTTLS (an in-band upgrade with ``StreamWriter.start_tls``, made safe as
:meth:`_Conversation.do_STARTTLS` explains; the session restarts after it),
MAIL, RCPT, DATA, RSET, NOOP, QUIT. Accepted mail is kept per MX host in a
:class:`Mailboxes`, with the TLS version it arrived over, and so is every STARTTLS the host
answered (:class:`Handshake`): whether the handshake completed and the client then used the
session, or it failed, or the client hung up right after it (how a client that checks the
certificate once the handshake is done, as Postfix does, refuses it). A host's
:class:`~mtasts.lab.scenarios.MxFault` changes what it offers (no STARTTLS, 454 to STARTTLS,
TLS 1.0 only); its certificate comes from :class:`~mtasts.lab.certs.LabCertificates`. Line
lengths, message sizes and every wait are bounded by :class:`~mtasts.lab._net.Limits`.

With a ``delay``, every reply the client waits for (the greeting, each command's reply, a
multi-line EHLO reply as one, the 220 to STARTTLS) leaves that long after the command was read:
one round trip per exchange, as on a network with that RTT. The TLS handshake after STARTTLS is
not delayed (one more round trip on a real network; the lab's figures are a lower bound). The
421 sent to a client refused by a connection cap is not delayed either: it is written at accept,
by :mod:`mtasts.net.server`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

from mtasts.lab._net import DEFAULT_LIMITS, Handler, Limits, SharedPortServer, sanitize
from mtasts.lab.plan import SmtpHost
from mtasts.lab.scenarios import MxFault

__all__ = ["Handshake", "HandshakeOutcome", "Mailboxes", "Message", "SmtpServer"]

log = logging.getLogger("mtasts.lab.smtp")


@dataclass(frozen=True, slots=True)
class Message:
    """One accepted message: envelope, content (dot-unstuffed, CRLF line ends) and transport."""

    host: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes
    tls_version: str | None  # e.g. "TLSv1.3"; None when sent in clear text


class HandshakeOutcome(StrEnum):
    """How a STARTTLS ended, as the MX host saw it."""

    USED = "used"  # the handshake completed and the client greeted again over TLS (RFC 3207 §4.2)
    FAILED = "failed"  # the handshake did not complete (a TLS alert from the client, a reset, a timeout)
    ABANDONED = "abandoned"  # it completed, then the client left without a greeting over TLS


@dataclass(frozen=True, slots=True)
class Handshake:
    """One STARTTLS an MX host answered: the outcome, the TLS version agreed (``None`` when the
    handshake failed), the commands the client sent over TLS (verbs, at most 10: Postfix that
    rejects the certificate sends only ``QUIT``) and what ended it (the TLS error, or how the
    connection ended)."""

    host: str
    outcome: HandshakeOutcome
    tls_version: str | None
    commands: tuple[str, ...] = ()
    detail: str = ""


class Mailboxes:
    """Accepted mail per MX host name, and the TLS handshakes each host answered."""

    def __init__(self) -> None:
        self._by_host: dict[str, list[Message]] = {}
        self._handshakes: dict[str, list[Handshake]] = {}

    def add(self, message: Message) -> None:
        self._by_host.setdefault(message.host, []).append(message)

    def add_handshake(self, handshake: Handshake) -> None:
        self._handshakes.setdefault(handshake.host, []).append(handshake)

    def handshakes(self, host: str) -> tuple[Handshake, ...]:
        """The STARTTLS handshakes ``host`` answered, oldest first (recorded when each ends)."""
        return tuple(self._handshakes.get(host, ()))

    def messages(self, host: str) -> tuple[Message, ...]:
        """The mail ``host`` accepted, oldest first."""
        return tuple(self._by_host.get(host, ()))

    def all(self) -> tuple[Message, ...]:
        """Every accepted message."""
        return tuple(m for messages in self._by_host.values() for m in messages)


@dataclass(slots=True)
class _Session:
    """Per-connection state; reset by EHLO, RSET and STARTTLS."""

    greeted: bool = False
    tls_version: str | None = None
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)

    def reset_transaction(self) -> None:
        self.mail_from = None
        self.rcpt_to = []


class _LineTooLong(Exception):
    """The client sent a line longer than the limit (the connection is then closed)."""


class SmtpServer(SharedPortServer[SmtpHost]):
    """ESMTP on one shared port for several MX hosts, each on its own address."""

    busy_reply = b"421 4.7.0 Too many connections, try again later\r\n"  # RFC 5321 §3.8

    def __init__(
        self,
        hosts: Sequence[SmtpHost],
        contexts: Callable[[SmtpHost], ssl.SSLContext],
        mailboxes: Mailboxes,
        *,
        port: int = 0,
        limits: Limits = DEFAULT_LIMITS,
        delay: float = 0.0,
    ) -> None:
        self.contexts = contexts
        self.mailboxes = mailboxes
        super().__init__("smtp", hosts, port=port, limits=limits, delay=delay)

    def _stream_limit(self) -> int:
        return self.limits.max_smtp_line

    def _handler(self, host: SmtpHost) -> Handler:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _Conversation(self, host, reader, writer).run()

        return serve


class _Conversation:
    """One SMTP session: reads commands, answers them, stores mail."""

    def __init__(
        self, server: SmtpServer, host: SmtpHost, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.host = host
        self.limits = server.limits
        self.delay = server.delay
        self.reader = reader
        self.writer = writer
        self.session = _Session()
        self.commands_over_tls: list[str] = []  # the verbs, for the handshake's record

    async def reply(self, *lines: str) -> None:
        """Send one reply (several lines: a multi-line reply), after the lab's delay if any."""
        out = [f"{line[:3]}-{line[4:]}" for line in lines[:-1]] + [lines[-1]]
        if self.delay:
            await asyncio.sleep(self.delay)
        self.writer.write("".join(f"{line}\r\n" for line in out).encode("ascii"))
        await asyncio.wait_for(self.writer.drain(), self.limits.idle_timeout)

    async def read_line(self) -> bytes:
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), self.limits.idle_timeout)
        except asyncio.LimitOverrunError:
            raise _LineTooLong from None
        if len(line) > self.limits.max_smtp_line:
            raise _LineTooLong
        return line

    async def run(self) -> None:
        ended = "the session ended"
        try:
            await self._converse()
        except BaseException as exc:  # recorded below, then handled as before (mtasts.net.server)
            ended = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise
        finally:
            if self.session.tls_version is not None:  # a handshake completed: was the session taken?
                greeted = {"EHLO", "HELO"} & set(self.commands_over_tls)
                outcome = HandshakeOutcome.USED if greeted else HandshakeOutcome.ABANDONED
                self._record(outcome, self.session.tls_version, ended)

    def _record(self, outcome: HandshakeOutcome, version: str | None, detail: str) -> None:
        commands = tuple(self.commands_over_tls)
        self.server.mailboxes.add_handshake(Handshake(self.host.name, outcome, version, commands, detail[:200]))

    async def _converse(self) -> None:
        await self.reply(f"220 {self.host.name} ESMTP mtasts lab")
        while True:
            try:
                raw = await self.read_line()
            except _LineTooLong:
                await self.reply("500 5.5.2 Line too long")
                return
            command = raw.rstrip(b"\r\n").decode("latin-1")
            verb, _, argument = command.partition(" ")
            if self.session.tls_version is not None and len(self.commands_over_tls) < 10:
                self.commands_over_tls.append(sanitize(verb.upper(), 16))
            handler = getattr(self, f"do_{verb.upper()}", None) if verb.isascii() and verb.isalpha() else None
            if handler is None:
                log.debug("smtp %s: unknown command %s", self.host.name, sanitize(command))
                await self.reply("500 5.5.1 Command not recognised")
                continue
            if not await handler(argument.strip()):
                return

    # Each do_<VERB> answers and returns False when the session ends.

    async def do_EHLO(self, argument: str) -> bool:
        if not argument:
            await self.reply("501 5.5.4 EHLO needs a domain")
            return True
        self.session.greeted = True
        self.session.reset_transaction()
        lines = [f"250 {self.host.name} greets {sanitize(argument, 64)}", f"250 SIZE {self.limits.max_message_bytes}"]
        lines.append("250 8BITMIME")
        if self.host.fault is not MxFault.NO_STARTTLS and self.session.tls_version is None:
            lines.append("250 STARTTLS")
        lines.append("250 ENHANCEDSTATUSCODES")
        await self.reply(*lines)
        return True

    async def do_HELO(self, argument: str) -> bool:
        if not argument:
            await self.reply("501 5.5.4 HELO needs a domain")
            return True
        self.session.greeted = True
        self.session.reset_transaction()
        await self.reply(f"250 {self.host.name}")
        return True

    async def do_STARTTLS(self, argument: str) -> bool:
        if argument:
            await self.reply("501 5.5.4 STARTTLS takes no argument")
            return True
        if self.host.fault is MxFault.NO_STARTTLS or self.session.tls_version is not None:
            await self.reply("502 5.5.1 STARTTLS not available")
            return True
        if self.host.fault is MxFault.STARTTLS_454:
            await self.reply("454 4.7.0 TLS not available due to temporary reason")
            return True
        # The upgrade must start from an empty stream buffer: a byte read here but not yet
        # consumed would be lost to the TLS layer (a ClientHello: a stalled handshake) or, worse,
        # obeyed after the handshake as if it came over TLS (the STARTTLS command injection
        # RFC 3207 §5 warns about). So: stop reading from the socket first (whatever arrives now
        # stays in the kernel until the TLS layer reads it), then check that nothing beyond the
        # STARTTLS line was read (a client that pipelined past STARTTLS breaks RFC 3207 §4 and is
        # refused), then answer and upgrade, with no await in between (StreamWriter.start_tls's
        # own drain may wait, but reading stays paused until the TLS protocol is in place).
        # The lab's delay is served before all that, so the check also covers what a client
        # pipelined while it waited, and nothing awaits between the check and the upgrade.
        if self.delay:
            await asyncio.sleep(self.delay)
        cast(asyncio.ReadTransport, self.writer.transport).pause_reading()
        pending = _buffered(self.reader)
        if pending:
            log.debug("smtp %s: %s bytes sent after STARTTLS before the handshake", self.host.name, pending)
            await self.reply("554 5.5.1 Nothing may follow STARTTLS before the TLS handshake")
            return False
        self.writer.write(b"220 2.0.0 Ready to start TLS\r\n")
        try:
            # drain (a client that does not read) + handshake: both bounded
            async with asyncio.timeout(self.limits.idle_timeout + self.limits.handshake_timeout):
                await self.writer.start_tls(
                    self.server.contexts(self.host), ssl_handshake_timeout=self.limits.handshake_timeout
                )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.debug("smtp %s: TLS handshake failed: %r", self.host.name, exc)
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            self._record(HandshakeOutcome.FAILED, None, str(reason))
            return False
        ssl_object = self.writer.get_extra_info("ssl_object")
        version = ssl_object.version() if isinstance(ssl_object, ssl.SSLObject) else None
        self.session = _Session(tls_version=version or "unknown")
        return True

    async def do_MAIL(self, argument: str) -> bool:
        if not self.session.greeted:
            await self.reply("503 5.5.1 Say EHLO first")
        elif self.session.mail_from is not None:
            await self.reply("503 5.5.1 Nested MAIL command")
        elif not argument.upper().startswith("FROM:"):
            await self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
        else:
            self.session.mail_from = _path(argument[5:])
            await self.reply("250 2.1.0 OK")
        return True

    async def do_RCPT(self, argument: str) -> bool:
        if self.session.mail_from is None:
            await self.reply("503 5.5.1 Need MAIL first")
        elif not argument.upper().startswith("TO:"):
            await self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
        elif len(self.session.rcpt_to) >= 100:
            await self.reply("452 4.5.3 Too many recipients")
        else:
            self.session.rcpt_to.append(_path(argument[3:]))
            await self.reply("250 2.1.5 OK")
        return True

    async def do_DATA(self, argument: str) -> bool:
        if argument:
            await self.reply("501 5.5.4 DATA takes no argument")
            return True
        if self.session.mail_from is None or not self.session.rcpt_to:
            await self.reply("503 5.5.1 Need RCPT first")
            return True
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                line = await self.read_line()
            except _LineTooLong:
                await self.reply("500 5.5.2 Line too long")
                return False
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size <= self.limits.max_message_bytes:
                chunks.append(line if line.endswith(b"\r\n") else line[:-1] + b"\r\n")
        if size > self.limits.max_message_bytes:
            self.session.reset_transaction()
            await self.reply("552 5.3.4 Message too big")
            return True
        self.server.mailboxes.add(
            Message(
                host=self.host.name,
                mail_from=self.session.mail_from,
                rcpt_to=tuple(self.session.rcpt_to),
                data=b"".join(chunks),
                tls_version=self.session.tls_version,
            )
        )
        self.session.reset_transaction()
        await self.reply("250 2.0.0 OK queued")
        return True

    async def do_RSET(self, argument: str) -> bool:
        self.session.reset_transaction()
        await self.reply("250 2.0.0 OK")
        return True

    async def do_NOOP(self, argument: str) -> bool:
        await self.reply("250 2.0.0 OK")
        return True

    async def do_VRFY(self, argument: str) -> bool:
        await self.reply("252 2.1.5 Cannot VRFY user")
        return True

    async def do_QUIT(self, argument: str) -> bool:
        await self.reply("221 2.0.0 Bye")
        return False


def _buffered(reader: asyncio.StreamReader) -> int:
    """How many bytes the stream holds that were received but not read yet (-1: unknown).

    StreamReader has no public peek; its buffer is a CPython detail (also used under uvloop,
    whose streams are asyncio's). Should it ever change, the answer is "unknown", which the
    caller treats as "not empty": STARTTLS is then refused rather than made unsafe, and the
    STARTTLS tests fail loudly.
    """
    buffer = getattr(reader, "_buffer", None)
    return len(buffer) if isinstance(buffer, bytes | bytearray) else -1


def _path(text: str) -> str:
    """The address of ``<address> [parameters]`` (the brackets and parameters dropped)."""
    text = text.strip()
    if text.startswith("<"):
        return text[1 : text.find(">")] if ">" in text else text[1:]
    return text.split(" ", 1)[0]
