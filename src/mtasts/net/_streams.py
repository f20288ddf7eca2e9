"""Small helpers for asyncio streams shared by the adapters."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl

from mtasts.core.addresses import refusal_reason

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class AddressRefused(OSError):
    """Raised instead of connecting to an address ``--refuse-private`` forbids."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, f"refused to connect: {reason}")
        self.reason = reason


async def open_stream(address: str, port: int, *, refuse_non_public: bool, limit: int) -> Streams:
    """The one place the inspector opens a TCP connection (policy host and MX alike), so that
    the "globally reachable addresses only" rule cannot be bypassed by any caller: the DNS
    layer already drops such addresses, this is the second lock on the same door."""
    if refuse_non_public:
        reason = refusal_reason(address)
        if reason is not None:
            raise AddressRefused(reason)
    return await asyncio.open_connection(address, port, limit=limit)


async def close_quietly(writer: asyncio.StreamWriter, timeout: float = 1.0, *, abort: bool = False) -> None:
    """Close a stream without letting a peer that misbehaves on close delay or fail us.

    ``abort`` drops the connection at once (no TLS close_notify, unread data discarded): for
    giving up on a peer, where a graceful close could wait on data we refuse to read.
    """
    if abort:
        writer.transport.abort()
    writer.close()
    # ValueError: a handshake that failed in Python after OpenSSL finished it (a certificate
    # Python cannot decode) is raised again by wait_closed; it was already reported
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError, ValueError):
        async with asyncio.timeout(timeout):  # not wait_for: no task per close
            await writer.wait_closed()


class _EofReceivedQuirk(logging.Filter):
    """Two lines asyncio logs that are wrong or already reported.

    asyncio logs "returning true from eof_received() has no effect when using ssl" when a
    peer closes right after a STARTTLS handshake, before ``StreamWriter.start_tls`` has told
    its protocol that the stream is now TLS (CPython's ``streams._replace_writer``). The close
    is handled correctly; only the log line is wrong, so it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "eof_received() has no effect when using ssl" in message:
            return False
        # asyncio also logs, with a traceback, every handshake whose certificate Python cannot
        # decode (UnicodeDecodeError in getpeercert); the inspector reports it as a finding
        error = record.exc_info[1] if record.exc_info else None
        return not (message.startswith("SSL handshake failed") and isinstance(error, ValueError))


_QUIRK_FILTER = _EofReceivedQuirk()


def silence_starttls_eof_warning() -> None:
    """Install the filter above on the asyncio logger (idempotent)."""
    logger = logging.getLogger("asyncio")
    if _QUIRK_FILTER not in logger.filters:
        logger.addFilter(_QUIRK_FILTER)
