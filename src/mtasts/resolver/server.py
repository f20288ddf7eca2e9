"""The socketmap server: one ``asyncio.Protocol`` per connection, TCP and UNIX sockets.

Postfix asks for every MX of every message and flushes its own cache after each delivery
request, so the daemon's cost per cached answer is what matters. Each connection is therefore a
protocol object, not a task reading a stream: :meth:`_Connection.data_received` feeds the
sans-I/O codec (:mod:`mtasts.resolver.socketmap`) and answers every complete request at once
from :meth:`PolicyResolver.reply_now <mtasts.resolver.service.PolicyResolver.reply_now>`
(cached answers, parent probes, junk keys: no task, no await, one ``write`` for all the
replies a read produced). A read that is exactly one request, as nearly every read is (Postfix
waits for each reply), skips the codec's buffer and loop (:meth:`SocketmapReader.take_whole
<mtasts.resolver.socketmap.SocketmapReader.take_whole>`, with a table of requests already parsed
that the connections share). Only a request that needs network work (a first lookup) gets a task;
while it runs the connection stops reading, so replies stay in request order and nothing is
buffered beyond the codec's one partial frame. Reading also stops while the peer does not read
its replies (``pause_writing``), so a client cannot make the daemon buffer without bound.

Limits, each a test of ``tests/resolver/test_daemon.py``: requests of at most 10,000 bytes
(Postfix's own); a malformed request gets a well-formed answer (``NOTFOUND`` where framing
allows, and the connection stays usable; ``PERM`` and close where it does not); a connection
idle for ``idle_timeout`` seconds is closed (Postfix closes its own after 10 s and reconnects
when needed); connections are capped in total and per client address
(:class:`~mtasts.net.server.ServerLimits`) at accept, before any work is done for them; UNIX
sockets get their mode, owner and group right after bind, before the first connection can be
accepted (the socket is created under umask 0177). An unexpected error while answering becomes
``TEMP`` and a sanitised log line (the mail waits, the daemon keeps serving).

Stopping is graceful when asked (``stop(grace=...)``, what SIGTERM does in ``serve``): the
listeners close first, idle connections are closed at once (Postfix reconnects when it needs
to), and a connection waiting for a lookup is closed once that lookup, and every request it had
already sent, is answered; whatever is left when the grace time is over is aborted. A reload
changes the connection cap in place (:meth:`SocketmapServer.set_limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtasts.net.listen import parse_address
from mtasts.net.server import DEFAULT_SERVER_LIMITS, Connections, ServerLimits, sanitize
from mtasts.resolver.service import PolicyResolver
from mtasts.resolver.socketmap import CLOSED, NEED_DATA, Malformed, Request, SocketmapReader, Status, encode_reply

__all__ = ["ListenSpec", "SocketmapServer", "freeze_heap", "parse_listen"]

log = logging.getLogger("mtasts.resolver.server")

_BACKLOG = 1024
_INTERNAL_ERROR = encode_reply(Status.TEMP, "internal error in the MTA-STS resolver")
_UNIX_CLIENT = "unix"  # UNIX peers have no address: they share the total cap only


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


def freeze_heap() -> None:
    """Move everything the daemon holds once it is started (modules, zones, the cache loaded
    from the store) out of every later collection of CPython's cyclic garbage collector.

    A cached answer allocates nothing that outlives it, so the collector does not run while
    the daemon only answers (none ran in 5 s of 50-connection load, ``bench/resolver.py``);
    it runs when background work (first lookups, TXT re-checks, refreshes) allocates, and
    then its full collections walk the whole heap: 29 ms measured in a daemon with 1,000 cached
    domains, every connection's answers waiting meanwhile. Frozen, they walk only what came
    after. Called once, after start-up, as ``mtasts publish serve`` does; not at a reload:
    frozen objects are never collected as cycles, so freezing while connections are open
    would keep their cyclic garbage for good."""
    gc.collect()
    gc.freeze()


class SocketmapServer:
    """Serves ``resolver`` on every listen address and on every socket in ``sockets``.

    ``listen`` are the addresses to bind (:class:`ListenSpec`); ``sockets`` are listening
    sockets already bound by someone else (systemd socket activation: the descriptors
    ``sd_listen_fds`` passes, from ``LISTEN_FDS``), TCP (``AF_INET``/``AF_INET6``) or UNIX
    (``AF_UNIX``) stream sockets, served as they are: the mode and owner of an inherited UNIX
    socket are its creator's (systemd's ``SocketMode=``, ``SocketUser=``, ``SocketGroup=``), and
    :meth:`stop` closes them. Either may be empty, not both. ``limits`` caps connections (in
    total, and per client address for TCP); ``idle_timeout`` closes a connection that sent
    nothing for that long. Nothing is bound before :meth:`start`.
    """

    def __init__(
        self,
        resolver: PolicyResolver,
        listen: Sequence[ListenSpec],
        *,
        limits: ServerLimits = DEFAULT_SERVER_LIMITS,
        idle_timeout: float = 60.0,
        sockets: Sequence[socket.socket] = (),
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        for sock in sockets:
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
                raise ValueError(f"cannot serve socketmap on {sock!r}: not a TCP or UNIX stream socket")
        self.resolver = resolver
        self.listen = tuple(listen)
        self.sockets = tuple(sockets)
        if not self.listen and not self.sockets:
            raise ValueError("nothing to listen on: give listen addresses or sockets")
        self.limits = limits
        self.idle_timeout = idle_timeout
        self._servers: list[asyncio.Server] = []
        self._unix_paths: list[Path] = []
        self._tcp_slots = Connections(
            max_connections=limits.max_connections, max_per_client=limits.max_connections_per_client
        )
        self._unix_slots = Connections(max_connections=limits.max_connections, max_per_client=limits.max_connections)
        self._open: set[_Connection] = set()
        self._known_requests: dict[bytes, tuple[str, str]] = {}  # shared by the connections' codecs
        self.addresses: list[str] = []  # where it listens, ports filled in

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        return len(self._open)

    @property
    def refused(self) -> int:
        """How many connections a cap turned away."""
        return self._tcp_slots.refused + self._unix_slots.refused

    async def start(self) -> None:
        """Bind every address (port 0 picks a free one: see :attr:`addresses`) and serve the
        inherited sockets."""
        self._tcp_slots.closing = self._unix_slots.closing = False
        try:
            for spec in self.listen:
                if spec.path is not None:
                    await self._start_unix(spec)
                    self.addresses.append(spec.to_text())
                else:
                    assert spec.host is not None
                    server = await self._loop.create_server(
                        self._tcp_connection, spec.host, spec.port, backlog=_BACKLOG, reuse_address=True
                    )
                    self._servers.append(server)
                    port = server.sockets[0].getsockname()[1]
                    self.addresses.append(ListenSpec(host=spec.host, port=port).to_text())
            for sock in self.sockets:
                if sock.family == socket.AF_UNIX:
                    server = await self._loop.create_unix_server(self._unix_connection, sock=sock, backlog=_BACKLOG)
                    self.addresses.append(f"unix:{sock.getsockname()}")
                else:
                    server = await self._loop.create_server(self._tcp_connection, sock=sock, backlog=_BACKLOG)
                    host, port = sock.getsockname()[:2]
                    self.addresses.append(ListenSpec(host=host, port=port).to_text())
                self._servers.append(server)
        except BaseException:
            await self.stop()
            raise

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _tcp_connection(self) -> _Connection:
        return _Connection(self, self._tcp_slots, None)

    def _unix_connection(self) -> _Connection:
        return _Connection(self, self._unix_slots, _UNIX_CLIENT)

    async def _start_unix(self, spec: ListenSpec) -> None:
        assert spec.path is not None
        path = spec.path
        if path.is_socket():  # a leftover of a daemon that did not stop cleanly
            path.unlink()
        old_umask = os.umask(0o177)  # nobody may connect before the mode below is set
        try:
            server = await self._loop.create_unix_server(self._unix_connection, path=str(path), backlog=_BACKLOG)
        finally:
            os.umask(old_umask)
        self._servers.append(server)
        self._unix_paths.append(path)
        if spec.owner is not None and spec.group is not None:
            shutil.chown(path, spec.owner, spec.group)
        elif spec.owner is not None:
            shutil.chown(path, user=spec.owner)
        elif spec.group is not None:
            shutil.chown(path, group=spec.group)
        path.chmod(stat.S_IMODE(spec.mode))

    def set_limits(self, limits: ServerLimits) -> None:
        """Cap connections by ``limits`` from now on (a reload). Connections already open stay
        open, even beyond a lowered cap; new ones are refused until the count is below it."""
        self.limits = limits
        self._tcp_slots.max_connections = limits.max_connections
        self._tcp_slots.max_per_client = limits.max_connections_per_client
        self._unix_slots.max_connections = self._unix_slots.max_per_client = limits.max_connections

    @property
    def lookups_in_progress(self) -> int:
        """How many connections wait for a lookup's answer now."""
        return sum(1 for connection in self._open if connection.waiting)

    def stop_accepting(self) -> None:
        """Close the listening sockets (and remove the UNIX socket files); a connection that
        still gets through is turned away at once. Connections already open are kept."""
        self._tcp_slots.closing = self._unix_slots.closing = True
        for server in self._servers:
            server.close()
        self._servers.clear()
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                path.unlink()
        self._unix_paths.clear()

    def drain(self) -> list[asyncio.Future[None]]:
        """Stop reading on every open connection; each closes as soon as nothing is waited for
        on it (an idle one at once). One future per connection, done when it is closed."""
        return [connection.drain() for connection in list(self._open)]

    async def stop(self, *, grace: float = 0.0) -> None:
        """Stop listening and end every connection.

        With ``grace`` (seconds), a graceful stop (SIGTERM): nothing new is accepted, an idle
        connection is closed at once, and a connection waiting for a lookup gets its answer,
        and every request it had already sent answered, before it is closed, for at most
        ``grace`` seconds; then (or without ``grace``) the rest are aborted (lookups in
        progress cancelled; the discoveries behind them go on in the resolver until it stops).
        """
        self.stop_accepting()
        closing = self.drain() if grace > 0 else []
        if closing:
            await asyncio.wait(closing, timeout=grace)
        pending = [c.abort() for c in list(self._open)]
        tasks = [task for task in pending if task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(3):  # let connection_lost callbacks run, which close the sockets
            await asyncio.sleep(0)


class _Connection(asyncio.Protocol):
    """One socketmap connection: bytes in, replies out, a task only for a lookup that waits."""

    def __init__(self, server: SocketmapServer, slots: Connections, client: str | None) -> None:
        self._server = server
        self._resolver = server.resolver
        self._reply_now = server.resolver.reply_now  # bound once: called for every request
        self._slots = slots
        self._client = client
        self._admitted = False
        self._codec = SocketmapReader(known=server._known_requests)
        self._transport: Any = None
        self._loop = asyncio.get_running_loop()
        self._pending: asyncio.Task[None] | None = None  # the lookup being waited for
        self._write_paused = False
        self._eof = False  # the peer has shut down its sending side
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._draining = False  # the server stops: answer what was asked, then close
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # --- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        client = self._client
        if client is None:
            peer = transport.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
            self._client = client
        if not self._slots.admit(client):
            log.debug("socketmap: refused a connection from %s (connection cap)", client)
            self._transport.abort()
            return
        self._admitted = True
        self._server._open.add(self)
        self._last_activity = self._loop.time()
        self._idle_timer = self._loop.call_at(self._last_activity + self._server.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self._last_activity = self._loop.time()
        if self._pending is None:
            whole = self._codec.take_whole(data)
            if whole is not None:  # one complete request, nothing before it: most reads
                self._answer_one(whole)
                return
        self._codec.receive_data(data)
        if self._pending is None:
            self._answer()

    def eof_received(self) -> bool | None:
        """The peer is done sending (``postmap -q - < file`` ends so): every complete request
        has been answered, unless one is waited for; close once its reply is out."""
        self._eof = True
        return True if self._pending is not None else None

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._pending is None:
            self._resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._pending is not None:
            self._pending.cancel()  # the discovery itself is the resolver's and goes on
        if self._admitted:
            self._admitted = False
            self._server._open.discard(self)
            assert self._client is not None
            self._slots.release(self._client)
        if not self._closed.done():
            self._closed.set_result(None)
        if exc is not None:
            log.debug("socketmap: connection from %s ended: %r", self._client, exc)

    # --- answering -----------------------------------------------------------------------------

    def _answer(self) -> None:
        """Answer every complete request in the buffer, in order, in one write; start a task
        (and stop reading) at the first one that cannot be answered now."""
        codec = self._codec
        resolver = self._resolver
        replies: list[bytes] = []
        while codec.buffered:  # (nothing buffered: next_event would say NEED_DATA)
            event = codec.next_event()
            if event is NEED_DATA or event is CLOSED:
                break
            if isinstance(event, Malformed):
                resolver.counters["malformed_requests"] += 1
                replies.append(event.reply())
                if event.fatal:
                    log.info("socketmap: closing a connection after a framing error: %s", event.reason)
                    self._write(replies)
                    self._transport.close()  # after the PERM reply is sent
                    return
                continue
            try:
                reply = resolver.reply_now(event.name, event.key)
            except Exception:  # a bug: this one lookup is deferred, the daemon goes on
                reply = self._internal_error(event)
            if reply is None:
                self._write(replies)
                self._pause_reading()
                self._pending = self._loop.create_task(self._answer_later(event), name="mtasts socketmap lookup")
                return
            replies.append(reply)
        self._write(replies)
        if self._eof or self._draining:
            self._transport.close()

    def _answer_one(self, request: tuple[str, str]) -> None:
        """:meth:`_answer` for a read that held exactly one request (the codec holds nothing
        else): the same answer, the same task when it must wait, without the codec's loop."""
        try:
            reply = self._reply_now(*request)
        except Exception:  # a bug: as in _answer
            reply = self._internal_error(Request(*request))
        if reply is None:
            self._pause_reading()
            self._pending = self._loop.create_task(
                self._answer_later(Request(*request)), name="mtasts socketmap lookup"
            )
            return
        self._transport.write(reply)
        if self._eof or self._draining:
            self._transport.close()

    async def _answer_later(self, request: Request) -> None:
        try:
            reply = await self._resolver.reply(request.name, request.key)
        except Exception:  # a bug, as above
            reply = self._internal_error(request)
        self._pending = None
        if self._transport.is_closing():
            return
        self._transport.write(reply)
        self._last_activity = self._loop.time()
        if not self._write_paused:
            self._resume_reading()
        self._answer()  # what arrived meanwhile

    def _internal_error(self, request: Request) -> bytes:
        self._resolver.counters["internal_errors"] += 1
        log.exception("socketmap: unexpected error answering %s", sanitize(request.key))
        return _INTERNAL_ERROR

    def _write(self, replies: list[bytes]) -> None:
        if replies:
            self._transport.write(replies[0] if len(replies) == 1 else b"".join(replies))
            self._last_activity = self._loop.time()

    # --- flow and time -------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._transport.is_closing():
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self._transport.is_closing() and not self._draining:
            self._transport.resume_reading()

    def _check_idle(self) -> None:
        """Close the connection once it has been idle for ``idle_timeout`` (a lookup being
        waited for is not idleness; it is bounded by the resolver's ``answer_timeout``)."""
        timeout = self._server.idle_timeout
        now = self._loop.time()
        if self._pending is None and now - self._last_activity >= timeout:
            self._idle_timer = None
            log.debug("socketmap: closing a connection from %s idle for %g s", self._client, timeout)
            self._transport.close()
            return
        due = self._last_activity + timeout if self._pending is None else now + timeout
        self._idle_timer = self._loop.call_at(max(due, now + 0.001), self._check_idle)

    @property
    def waiting(self) -> bool:
        """Whether a lookup is being waited for on this connection."""
        return self._pending is not None

    def drain(self) -> asyncio.Future[None]:
        """Stop reading; close once nothing is waited for (at once when idle: replies already
        written are still sent, as ``close`` flushes). Done when the connection is closed."""
        self._draining = True
        if not self._transport.is_closing():
            self._transport.pause_reading()
            if self._pending is None:
                self._transport.close()
        return self._closed

    def abort(self) -> asyncio.Task[None] | None:
        """End the connection now (the server stops); the cancelled lookup task, if any."""
        pending = self._pending
        if pending is not None:
            pending.cancel()
        self._transport.abort()
        return pending
