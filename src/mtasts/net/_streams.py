"""Small helpers for asyncio streams shared by the adapters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def close_quietly(writer: asyncio.StreamWriter, timeout: float = 1.0, *, abort: bool = False) -> None:
    """Close a stream without letting a peer that misbehaves on close delay or fail us.

    ``abort`` drops the connection at once (no TLS close_notify, unread data discarded): for
    giving up on a peer, where a graceful close could wait on data we refuse to read.
    """
    if abort:
        writer.transport.abort()
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), timeout)


class _EofReceivedQuirk(logging.Filter):
    """asyncio logs "returning true from eof_received() has no effect when using ssl" when a
    peer closes right after a STARTTLS handshake, before ``StreamWriter.start_tls`` has told
    its protocol that the stream is now TLS (CPython's ``streams._replace_writer``). The close
    is handled correctly; only the log line is wrong, so it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received() has no effect when using ssl" not in record.getMessage()


_QUIRK_FILTER = _EofReceivedQuirk()


def silence_starttls_eof_warning() -> None:
    """Install the filter above on the asyncio logger (idempotent)."""
    logger = logging.getLogger("asyncio")
    if _QUIRK_FILTER not in logger.filters:
        logger.addFilter(_QUIRK_FILTER)
