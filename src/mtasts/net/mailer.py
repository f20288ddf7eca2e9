"""Mail submission: one message through one SMTP server, TLS verified, AUTH only when encrypted.

This is for one-shot jobs (``mtasts report digest`` from cron, alerts later), so it is
synchronous :mod:`smtplib`: one connection, one message, then the process ends; an event loop
would buy nothing. Everything else in :mod:`mtasts.net` is asyncio because it runs many probes
at once.

Security follows RFC 8314: implicit TLS (``tls``, port 465) or STARTTLS (``starttls``, port
587, RFC 6409), the certificate verified against the system's trust store or the CA file given,
the name checked, TLS 1.2 or newer. A server that does not offer STARTTLS is an error, never a
silent fall-back to plain text. ``none`` (port 25) is for a local relay that has no TLS, chosen
explicitly; AUTH is never sent on such a connection (:class:`SmtpSettings` refuses the
combination), so a password never travels in clear.

Failures become one :class:`MailError` whose :attr:`~MailError.kind` names what failed
(:class:`MailFailureKind`) and whose message is for people; ``smtplib``, ``ssl`` and
``OSError`` are translated here, once.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from enum import StrEnum
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_PORTS",
    "MailError",
    "MailFailureKind",
    "SmtpSecurity",
    "SmtpSettings",
    "compose",
    "send",
]


class SmtpSecurity(StrEnum):
    """How the connection to the submission server is protected."""

    STARTTLS = "starttls"  # plain connect, then STARTTLS (required), then EHLO, AUTH, mail
    TLS = "tls"  # TLS from the first byte ("implicit TLS", RFC 8314)
    NONE = "none"  # no TLS at all: only for a trusted local relay, and never with AUTH


DEFAULT_PORTS: Final[Mapping[SmtpSecurity, int]] = {
    SmtpSecurity.STARTTLS: 587,  # submission (RFC 6409)
    SmtpSecurity.TLS: 465,  # submissions, implicit TLS (RFC 8314)
    SmtpSecurity.NONE: 25,
}


class MailFailureKind(StrEnum):
    UNREACHABLE = "unreachable"  # no connection: refused, no route, unknown host
    TIMEOUT = "timeout"
    NO_STARTTLS = "no-starttls"  # STARTTLS was required and the server did not offer it
    UNTRUSTED = "untrusted"  # the certificate did not verify (chain, name, dates)
    TLS = "tls"  # any other TLS failure (handshake, version, a plain-text port)
    CA_FILE = "ca-file"  # the CA file given holds no usable certificate
    NO_AUTH = "no-auth"  # a user was given and the server offers no usable AUTH
    AUTH_REFUSED = "auth-refused"  # the user name or password was refused
    REFUSED = "refused"  # the sender, a recipient or the message was refused
    PROTOCOL = "protocol"  # an unexpected reply, or the server hung up


class MailError(Exception):
    """The message could not be submitted; ``str()`` says why, for people."""

    def __init__(self, kind: MailFailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to submit. The password is kept out of ``repr()`` (logs, tracebacks)."""

    host: str
    port: int
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # trust only these CAs instead of the system's store
    timeout: float = 30.0  # seconds, for the connection and each reply

    def __post_init__(self) -> None:
        if self.user is not None and self.password is None:
            raise ValueError("an SMTP user needs a password")
        if self.user is not None and self.security is SmtpSecurity.NONE:
            raise ValueError("AUTH is never sent over an unencrypted connection")

    @property
    def address(self) -> str:
        """``host:port`` as people write it (``[v6]:port`` for IPv6)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def compose(*, sender: str, recipients: Sequence[str], subject: str, body: str, now: datetime) -> EmailMessage:
    """A plain-text message with the headers a mail system expects: ``From``, ``To``,
    ``Subject``, ``Date`` (``now``, which must be aware) and a ``Message-ID`` on the sender's
    domain (``localhost`` when it has none). A header value that cannot be a header (a line
    break, an address the parser refuses) raises :class:`ValueError`."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=_domain_of(sender))
    message.set_content(body)
    return message


def _domain_of(sender: str) -> str:
    """The domain of the first address in ``sender``, if it can stand in a Message-ID."""
    (_, address), *_ = getaddresses([sender]) or [("", "")]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return domain if domain and all(c.isalnum() or c in ".-[]:" for c in domain) else "localhost"


def send(message: EmailMessage, settings: SmtpSettings) -> None:
    """Submit ``message`` (envelope from its ``From``, to its ``To``/``Cc``/``Bcc``) through the
    server of ``settings``, or raise :class:`MailError`. A recipient refused while others were
    accepted is an error too: the message went out, but not to everyone."""
    context = _tls_context(settings.ca_file) if settings.security is not SmtpSecurity.NONE else None
    with _translated(settings) as step:
        step[0] = "connect"
        client: smtplib.SMTP
        if settings.security is SmtpSecurity.TLS:
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            step[0] = "ehlo"
            client.ehlo()
            if settings.security is SmtpSecurity.STARTTLS:
                if not client.has_extn("starttls"):
                    raise MailError(
                        MailFailureKind.NO_STARTTLS,
                        f"{settings.address} does not offer STARTTLS; nothing was sent in clear",
                    )
                step[0] = "starttls"
                client.starttls(context=context)
                step[0] = "ehlo"
                client.ehlo()  # RFC 3207 §4.2: forget what was said before TLS; AUTH is offered now
            if settings.user is not None and settings.password is not None:
                if not client.has_extn("auth"):
                    raise MailError(MailFailureKind.NO_AUTH, f"{settings.address} offers no AUTH (SMTP authentication)")
                step[0] = "auth"
                _login(client, settings)
            step[0] = "send"
            refused = client.send_message(message)
        except BaseException:
            client.close()  # no QUIT: after a failure the peer may be in no state to answer it
            raise
        _quit_quietly(client)
        if refused:
            who = ", ".join(f"{rcpt} ({_reply(code, text)})" for rcpt, (code, text) in sorted(refused.items()))
            raise MailError(MailFailureKind.REFUSED, f"{settings.address} refused {who}; the other recipients got it")


_MECHANISMS: Final = ("PLAIN", "LOGIN")  # inside TLS both are safe, and every submission server has one


def _quit_quietly(client: smtplib.SMTP) -> None:
    """QUIT and close. Once the message is accepted it is sent: a QUIT that fails (a reply
    other than 221, a hang-up) must not turn that into an error, nor hide an earlier one."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


def _login(client: smtplib.SMTP, settings: SmtpSettings) -> None:
    """AUTH once, with the first mechanism both sides know. ``smtplib``'s ``login`` would try
    each mechanism in turn, so one wrong password would count as several failed logins at a
    server that locks accounts out."""
    offered = client.esmtp_features.get("auth", "").upper().split()
    name = next((m for m in _MECHANISMS if m in offered), None)
    if name is None:
        raise MailError(
            MailFailureKind.NO_AUTH, f"{settings.address} offers AUTH {' '.join(offered)}, not PLAIN or LOGIN"
        )
    client.user, client.password = settings.user or "", settings.password or ""
    method = client.auth_plain if name == "PLAIN" else client.auth_login
    client.auth(name, method)


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: the system's trust store, or only the CAs in ``ca_file``."""
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _ssl_reason(exc)
        raise MailError(MailFailureKind.CA_FILE, f"cannot use the CA file {ca_file}: {reason}") from exc
    if ca_file is not None and not context.get_ca_certs():
        raise MailError(MailFailureKind.CA_FILE, f"cannot use the CA file {ca_file}: it holds no CA certificate")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextmanager
def _translated(settings: SmtpSettings) -> Iterator[list[str]]:
    """Turn what ``smtplib``, ``ssl`` and sockets raise into :class:`MailError`, most specific
    first; the caller keeps the step it is at in the yielded list, for the message."""
    step = ["connect"]
    where = settings.address
    try:
        yield step
    except MailError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise MailError(
            MailFailureKind.UNTRUSTED,
            f"the certificate of {where} is not trusted: {exc.verify_message or _ssl_reason(exc)}; nothing was sent",
        ) from exc
    except ssl.SSLError as exc:
        hint = (
            " (is it a STARTTLS or plain port?)"
            if settings.security is SmtpSecurity.TLS and step[0] == "connect"
            else ""
        )
        raise MailError(MailFailureKind.TLS, f"TLS with {where} failed: {_ssl_reason(exc)}{hint}") from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(
            MailFailureKind.AUTH_REFUSED,
            f"{where} refused the user name or password of {settings.user!r}: {_reply(exc.smtp_code, exc.smtp_error)}",
        ) from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise MailError(MailFailureKind.NO_AUTH, f"{where} offers no AUTH (SMTP authentication): {exc}") from exc
    except smtplib.SMTPRecipientsRefused as exc:
        who = ", ".join(f"{rcpt} ({_reply(code, text)})" for rcpt, (code, text) in sorted(exc.recipients.items()))
        raise MailError(MailFailureKind.REFUSED, f"{where} refused every recipient: {who}") from exc
    except smtplib.SMTPSenderRefused as exc:
        raise MailError(
            MailFailureKind.REFUSED, f"{where} refused the sender {exc.sender}: {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from exc
    except smtplib.SMTPDataError as exc:
        raise MailError(
            MailFailureKind.REFUSED, f"{where} refused the message: {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from exc
    except smtplib.SMTPServerDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read timeout as a hang-up
            raise MailError(
                MailFailureKind.TIMEOUT, f"{where} did not answer within {settings.timeout:g} s (during {step[0]})"
            ) from exc
        raise MailError(
            MailFailureKind.PROTOCOL, f"{where} closed the connection during {step[0]}: {exc or 'no reason given'}"
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise MailError(
            MailFailureKind.PROTOCOL, f"{where} answered {step[0]} with {_reply(exc.smtp_code, exc.smtp_error)}"
        ) from exc
    except smtplib.SMTPException as exc:  # "No suitable authentication method found." and the like
        kind = MailFailureKind.NO_AUTH if step[0] == "auth" else MailFailureKind.PROTOCOL
        raise MailError(kind, f"{where}: {exc}") from exc
    except TimeoutError as exc:
        raise MailError(
            MailFailureKind.TIMEOUT, f"{where} did not answer within {settings.timeout:g} s (during {step[0]})"
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        kind = MailFailureKind.UNREACHABLE if step[0] == "connect" else MailFailureKind.PROTOCOL
        raise MailError(
            kind, f"cannot reach {where}: {reason}" if step[0] == "connect" else f"{where}: {reason}"
        ) from exc


def _reply(code: int, text: bytes | str) -> str:
    """An SMTP reply on one line, its text cleaned of control characters."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    clean = " ".join("".join(c if c.isprintable() else " " for c in raw).split())
    return f"{code} {clean}".strip()


def _ssl_reason(exc: ssl.SSLError | OSError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason).replace("_", " ").lower() if reason else str(exc) or type(exc).__name__
