"""Small helpers for asyncio streams shared by the adapters."""

from __future__ import annotations

import asyncio
import contextlib
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
