"""Probe one MX address as a sending MTA would: banner, EHLO, STARTTLS, a compliant TLS
handshake, EHLO again, QUIT. No mail is sent."""

from __future__ import annotations

import asyncio
import errno
import time
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from mtasts.net._streams import AddressRefused, Streams, close_quietly, open_stream
from mtasts.net.settings import NetworkSettings
from mtasts.net.tls import TlsResult, inspect_tls

__all__ = ["MxProbe", "SmtpFailureKind", "probe_mx"]

_MAX_LINE = 4096  # RFC 5321 §4.5.3.1.5 says 512; be generous, but bounded
_MAX_REPLY_LINES = 100


class SmtpFailureKind(StrEnum):
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    NO_STARTTLS = "no-starttls"
    STARTTLS_REFUSED = "starttls-refused"
    TLS = "tls"
    INTERNAL = "internal"  # an unexpected error in mtasts itself (a bug, or input it does not handle)


@dataclass(frozen=True, slots=True)
class MxProbe:
    """The outcome of probing one address of one MX host."""

    host: str
    address: str
    port: int
    banner: str = ""
    starttls_offered: bool | None = None
    starttls_reply: str = ""
    tls: TlsResult | None = None
    failure: SmtpFailureKind | None = None
    detail: str = ""
    elapsed: float = 0.0
    connect_error: str = ""  # no byte came from the server: how it failed ("ECONNREFUSED", "timeout")

    @property
    def ok(self) -> bool:
        return self.failure is None and self.tls is not None and self.tls.ok


@dataclass(slots=True)
class _Seen:
    """What the first session showed (the TLS inspection may reconnect)."""

    banner: str | None = None
    starttls_offered: bool | None = None
    starttls_reply: str = ""


class _StepFailed(ConnectionError):
    def __init__(self, kind: SmtpFailureKind, detail: str, **facts: object) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.facts = facts


async def probe_mx(host: str, address: str, settings: NetworkSettings, *, now: datetime) -> MxProbe:
    """Probe ``address`` of MX ``host``; never raises for network or peer trouble."""
    start = time.monotonic()
    probe = MxProbe(host, address, settings.smtp_port)
    seen = _Seen()

    async def connect() -> Streams:
        reader, writer = await open_stream(
            address, settings.smtp_port, refuse_non_public=not settings.allow_private, limit=_MAX_LINE
        )
        try:
            code, lines = await _reply(reader)
            if seen.banner is None:
                seen.banner = lines[0] if lines else ""
            if code != 220:
                raise _StepFailed(SmtpFailureKind.PROTOCOL, f"the server greeted with {code} {' '.join(lines)[:200]}")
            extensions = await _ehlo(reader, writer, settings.ehlo_name)
            offered = "STARTTLS" in extensions
            if seen.starttls_offered is None:
                seen.starttls_offered = offered
            if not offered:
                raise _StepFailed(SmtpFailureKind.NO_STARTTLS, "the server does not offer STARTTLS after EHLO")
            code, lines = await _command(reader, writer, "STARTTLS")
            reply = f"{code} {' '.join(lines)}"[:200]
            if not seen.starttls_reply:
                seen.starttls_reply = reply
            if code != 220:
                raise _StepFailed(SmtpFailureKind.STARTTLS_REFUSED, f"STARTTLS was refused: {reply}")
        except BaseException:
            await close_quietly(writer)
            raise
        return reader, writer

    try:
        async with asyncio.timeout(settings.timeout):
            tls, opened = await inspect_tls(connect, host, settings.ca_file, settings.timeout, now)
            failure, detail = (None, "") if tls.ok else (SmtpFailureKind.TLS, tls.detail)
            if opened is not None:
                reader, writer = opened
                try:
                    # a sender starts over with EHLO inside TLS (RFC 3207 §4.2); a server that
                    # fails here takes no mail over TLS, however good its certificate
                    await _ehlo(reader, writer, settings.ehlo_name)
                    writer.write(b"QUIT\r\n")  # the reply tells nothing more; do not wait for it
                except _StepFailed as failed:
                    failure, detail = SmtpFailureKind.PROTOCOL, f"after STARTTLS: {failed.detail}"
                except (OSError, asyncio.IncompleteReadError) as exc:
                    failure, detail = (
                        SmtpFailureKind.PROTOCOL,
                        f"the connection failed after STARTTLS: {_os_error(exc)}",
                    )
                finally:
                    await close_quietly(writer)
            probe = replace(probe, tls=tls, failure=failure, detail=detail)
    except _StepFailed as failed:
        probe = replace(probe, failure=failed.kind, detail=failed.detail)
    except TimeoutError:
        probe = replace(
            probe,
            failure=SmtpFailureKind.TIMEOUT,
            detail=f"no complete answer within {settings.timeout:g} s",
            connect_error="timeout" if seen.banner is None else "",
        )
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        kind = SmtpFailureKind.UNREACHABLE if seen.banner is None else SmtpFailureKind.PROTOCOL
        detail = f"cannot connect to {address} port {settings.smtp_port}: {_os_error(exc)}"
        signature = ""
        if kind is SmtpFailureKind.PROTOCOL:
            detail = f"the connection failed: {_os_error(exc)}"
        elif isinstance(exc, OSError) and not isinstance(exc, AddressRefused):
            signature = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        probe = replace(probe, failure=kind, detail=detail, connect_error=signature)
    return replace(
        probe,
        banner=seen.banner or "",
        starttls_offered=seen.starttls_offered,
        starttls_reply=seen.starttls_reply,
        elapsed=time.monotonic() - start,
    )


async def _reply(reader: asyncio.StreamReader) -> tuple[int, list[str]]:
    """Read one (possibly multi-line) SMTP reply: ``(code, text lines)``."""
    lines: list[str] = []
    for _ in range(_MAX_REPLY_LINES):
        raw = await reader.readline()
        if not raw:
            raise _StepFailed(SmtpFailureKind.PROTOCOL, "the server closed the connection")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
            raise _StepFailed(SmtpFailureKind.PROTOCOL, f"not an SMTP reply: {line[:80]!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return int(line[:3]), lines
    raise _StepFailed(SmtpFailureKind.PROTOCOL, "the reply has too many lines")


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: str) -> tuple[int, list[str]]:
    writer.write(command.encode("ascii") + b"\r\n")
    await writer.drain()
    return await _reply(reader)


async def _ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> set[str]:
    code, lines = await _command(reader, writer, f"EHLO {name}")
    if code != 250:
        raise _StepFailed(SmtpFailureKind.PROTOCOL, f"EHLO was refused: {code} {' '.join(lines)[:200]}")
    return {line.split(" ", 1)[0].upper() for line in lines[1:]}


def _os_error(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
