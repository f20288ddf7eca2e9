"""The socketmap server: TCP listeners on the shared plumbing, UNIX sockets beside them.

Each connection is a loop of "read what arrived, feed the codec, answer every complete
request, write the answers in one go" (Postfix pipelines nothing, but a benchmark or a
``postmap -q -`` may), with no state beyond the stream. TCP listeners are
:class:`~mtasts.net.server.StreamServer` ones (connection caps, clean stop); UNIX sockets get
the same caps through :class:`~mtasts.net.server.Connections`, and their mode, owner and group
are set right after bind, before the first connection can be accepted.

An unexpected error while answering becomes ``TEMP`` and a sanitised log line (the mail waits,
the daemon keeps serving); a fatal framing error is answered ``PERM`` and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtasts.net.listen import parse_address
from mtasts.net.server import DEFAULT_SERVER_LIMITS, Connections, Listener, ServerLimits, StreamServer, sanitize
from mtasts.resolver.service import PolicyResolver
from mtasts.resolver.socketmap import CLOSED, NEED_DATA, Malformed, SocketmapReader, Status, encode_reply

__all__ = ["ListenSpec", "SocketmapServer", "parse_listen"]

log = logging.getLogger("mtasts.resolver.server")

_READ_SIZE = 64 * 1024
_INTERNAL_ERROR = encode_reply(Status.TEMP, "internal error in the MTA-STS resolver")


@dataclass(frozen=True, slots=True)
class ListenSpec:
    """``inet:HOST:PORT`` (``host``, ``port``) or ``unix:PATH`` (``path``), as Postfix writes
    socketmap addresses. ``mode``, ``owner`` and ``group`` apply to UNIX sockets."""

    host: str | None = None
    port: int = 0
    path: Path | None = None
    mode: int = 0o660
    owner: str | None = None
    group: str | None = None

    def to_text(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        shown = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"inet:{shown}:{self.port}"


def parse_listen(text: str) -> ListenSpec:
    """``inet:HOST:PORT``, ``inet:[IPv6]:PORT`` or ``unix:PATH``; ``ValueError`` says why not."""
    kind, colon, rest = text.strip().partition(":")
    if not colon or kind not in ("inet", "unix") or not rest:
        raise ValueError(f"{text!r} is not inet:HOST:PORT or unix:PATH")
    if kind == "unix":
        return ListenSpec(path=Path(rest))
    address = parse_address(rest)  # the policy host's reading of IPv4:PORT and [IPv6]:PORT
    return ListenSpec(host=address.host, port=address.port)


class SocketmapServer:
    """Serves ``resolver`` on every listen address. Nothing is bound before :meth:`start`."""

    def __init__(
        self,
        resolver: PolicyResolver,
        listen: Sequence[ListenSpec],
        *,
        limits: ServerLimits = DEFAULT_SERVER_LIMITS,
        idle_timeout: float = 60.0,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self.resolver = resolver
        self.listen = tuple(listen)
        self.limits = limits
        self.idle_timeout = idle_timeout
        self._tcp: list[StreamServer] = []
        self._unix: list[tuple[asyncio.Server, Path]] = []
        self._unix_connections = Connections(
            max_connections=limits.max_connections, max_per_client=limits.max_connections
        )
        self.addresses: list[str] = []  # where it listens, ports filled in

    async def start(self) -> None:
        """Bind every address (port 0 picks a free one: see :attr:`addresses`)."""
        try:
            for spec in self.listen:
                if spec.path is not None:
                    await self._start_unix(spec)
                    self.addresses.append(spec.to_text())
                else:
                    assert spec.host is not None
                    server = StreamServer("socketmap", limits=self.limits, stream_limit=_READ_SIZE)
                    port = await server.start([Listener(spec.host, self._serve, name="socketmap")], spec.port)
                    self._tcp.append(server)
                    self.addresses.append(ListenSpec(host=spec.host, port=port).to_text())
        except BaseException:
            await self.stop()
            raise

    async def _start_unix(self, spec: ListenSpec) -> None:
        assert spec.path is not None
        path = spec.path
        if path.is_socket():  # a leftover of a daemon that did not stop cleanly
            path.unlink()
        connections = self._unix_connections

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is None or not connections.admit("unix"):
                writer.transport.abort()
                return
            connections.track(task, "unix")
            connections.opened(writer)
            try:
                await self._serve(reader, writer)
            except (OSError, asyncio.IncompleteReadError) as exc:
                log.debug("socketmap (unix): connection ended: %r", exc)
            finally:
                connections.closed(writer)
                if connections.closing:
                    writer.transport.abort()
                else:
                    writer.close()

        old_umask = os.umask(0o177)  # nobody may connect before the mode below is set
        try:
            server = await asyncio.start_unix_server(accept, path=str(path), limit=_READ_SIZE)
        finally:
            os.umask(old_umask)
        self._unix.append((server, path))
        if spec.owner is not None and spec.group is not None:
            shutil.chown(path, spec.owner, spec.group)
        elif spec.owner is not None:
            shutil.chown(path, user=spec.owner)
        elif spec.group is not None:
            shutil.chown(path, group=spec.group)
        path.chmod(stat.S_IMODE(spec.mode))

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        for server in self._tcp:
            await server.stop()
        self._tcp.clear()
        for unix_server, path in self._unix:
            unix_server.close()
            with contextlib.suppress(OSError):
                path.unlink()
        await self._unix_connections.aclose()
        self._unix.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = SocketmapReader()
        resolver = self.resolver
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                return  # idle: Postfix itself closes after 10 s and reconnects when needed
            if not data:
                return
            codec.receive_data(data)
            replies: list[bytes] = []
            close = False
            while True:
                event = codec.next_event()
                if event is NEED_DATA or event is CLOSED:
                    break
                if isinstance(event, Malformed):
                    resolver.counters["malformed_requests"] += 1
                    replies.append(event.reply())
                    if event.fatal:
                        log.info("socketmap: closing a connection after a framing error: %s", event.reason)
                        close = True
                        break
                    continue
                try:
                    replies.append(await resolver.reply(event.name, event.key))
                except Exception:  # a bug: this one lookup is deferred, the daemon goes on
                    resolver.counters["internal_errors"] += 1
                    log.exception("socketmap: unexpected error answering %s", sanitize(event.key))
                    replies.append(_INTERNAL_ERROR)
            if replies:
                writer.write(b"".join(replies))
                await writer.drain()
            if close:
                return
