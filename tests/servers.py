"""A small TCP or TLS server in a thread of its own, for tests that run a real command (typer's
runner or a subprocess) against a peer the lab does not have: a hostile SMTP greeting, a
hostile HTTPS answer. Its loop is uvloop where installed, the loop of the product and of the
lab (:mod:`mtasts.lab.testing`)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

__all__ = ["serving_in_thread"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@contextmanager
def serving_in_thread(address: str, handle: Handler, *, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """``handle`` serving every connection to ``address`` (a free port, TLS with ``tls``) until
    the block ends; yields the port."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.bind((address, 0))
        port = int(probe.getsockname()[1])
    loop = _new_loop()
    started, stop = threading.Event(), asyncio.Event()

    async def serve() -> None:
        async with await asyncio.start_server(handle, address, port, ssl=tls):
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(5), f"the test server on {address}:{port} did not start"
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()
