"""What mtasts.net.server lets a server decide about admission: caps of TLS handshakes in
progress at accept, connection caps applied once a connection is open (so the protocol can
say why it refuses), a library's protocol class served as it is, the end of a handshake that
failed, stopping to listen before the connections end. Real sockets and TLS on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import cast

import pytest
import trustme

from mtasts.net.server import Listener, ProtocolAdapter, Refusal, ServerLimits, ServerProtocol, StreamServer
from tests.conftest import has_ipv6_loopback
from tests.net.test_server import (
    LineProtocol,
    client_context,
    connect_from,
    echo_names,
    greet_and_wait,
    server_context,
    serving,
    wait_until,
)

_GONE = (ConnectionResetError, ssl.SSLError, ConnectionAbortedError, BrokenPipeError)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), 10)
    except _GONE:
        return b""


async def open_tls(port: int, ca: trustme.CA, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(ca), server_hostname="a.test", local_addr=(source, 0)
    )


def test_refusals_say_which_cap_and_whose_count() -> None:
    assert str(Refusal("handshakes", "client", 3)) == "this client has 3 TLS handshakes in progress"
    assert str(Refusal("handshakes", "server", 6)) == "the server has 6 TLS handshakes in progress"
    assert str(Refusal("connections", "client", 2)) == "this client has 2 connections open"
    assert str(Refusal("connections", "server", 4)) == "the server has 4 connections open"
    with pytest.raises(ValueError, match="max_handshakes must be"):
        ServerLimits(max_handshakes=0)


@pytest.mark.parametrize("kind", ["handler", "protocol"])
async def test_handshakes_in_progress_are_capped_at_accept_apart_from_connections(ca: trustme.CA, kind: str) -> None:
    limits = ServerLimits(max_connections=10, max_handshakes=2, max_handshakes_per_client=1, handshake_timeout=30)
    context = server_context(ca, "a.test")
    listener = (
        Listener("127.0.0.1", echo_names, context)
        if kind == "handler"
        else Listener("127.0.0.1", tls=context, protocol=LineProtocol)
    )
    refused: list[tuple[str, Refusal]] = []
    server = StreamServer("test", limits=limits, on_refused=lambda client, why: refused.append((client, why)))
    await server.start([listener])
    try:
        silent = [await connect_from("127.0.0.2", server.port)]  # no ClientHello: a handshake in progress
        await wait_until(lambda: server.connections.handshakes() == 1)
        reader, writer = await connect_from("127.0.0.2", server.port)
        assert await read_all(reader) == b""  # closed at once, not at the 30 s deadline
        writer.close()
        assert refused == [("127.0.0.2", Refusal("handshakes", "client", 1))]
        silent.append(await connect_from("127.0.0.3", server.port))
        await wait_until(lambda: server.connections.handshakes() == 2)
        reader, writer = await connect_from("127.0.0.4", server.port)
        assert await read_all(reader) == b""
        writer.close()
        assert refused[-1] == ("127.0.0.4", Refusal("handshakes", "server", 2))
        assert server.refused == 2
        for _, silent_writer in silent:
            silent_writer.close()
        await wait_until(lambda: server.connections.handshakes() == 0 and len(server) == 0)
        # an open connection is no handshake in progress: two from one client
        opened = []
        for _ in range(2):  # (the server has done the first handshake once it answers)
            opened.append(await open_tls(server.port, ca, "127.0.0.2"))
            opened[-1][1].write(b"x\n")
            assert (await opened[-1][0].readline()).startswith(b"ok TLSv1")
        assert (server.connections.handshakes(), server.connections.handshakes("127.0.0.2")) == (0, 0)
        for _, open_writer in opened:
            open_writer.close()
        await wait_until(lambda: len(server) == 0)
    finally:
        await server.stop()
    assert server.connections.handshakes() == 0


class BusyLineProtocol(LineProtocol):
    """Tells a client over a cap why, in its own words, then closes."""

    __slots__ = ()

    def refused(self, refusal: Refusal) -> None:
        self.transport.write(f"busy: {refusal}\n".encode())
        self.close()


async def test_caps_applied_once_open_let_the_protocol_answer_a_refused_client(ca: trustme.CA) -> None:
    limits = ServerLimits(
        max_connections=2, max_connections_per_client=1, max_handshakes=10, max_handshakes_per_client=10
    )
    listener = Listener("127.0.0.1", tls=server_context(ca, "a.test"), protocol=BusyLineProtocol, admit_when_open=True)
    async with serving([listener], limits=limits) as server:
        first_reader, first_writer = await open_tls(server.port, ca, "127.0.0.2")
        first_writer.write(b"x\n")
        assert await first_reader.readline() == b"ok TLSv1.3\n"
        reader, writer = await open_tls(server.port, ca, "127.0.0.2")  # over the per-client cap
        assert await read_all(reader) == b"busy: this client has 1 connections open\n"
        writer.close()
        # in its handshake a connection holds no connection slot
        silent = await connect_from("127.0.0.3", server.port)
        await wait_until(lambda: server.connections.handshakes() == 1)
        second_reader, second_writer = await open_tls(server.port, ca, "127.0.0.3")
        second_writer.write(b"x\n")
        assert await second_reader.readline() == b"ok TLSv1.3\n"
        assert len(server) == 2
        reader, writer = await open_tls(server.port, ca, "127.0.0.4")
        assert await read_all(reader) == b"busy: the server has 2 connections open\n"
        writer.close()
        assert server.refused == 2
        for held in (first_writer, second_writer, silent[1]):
            held.close()
        await wait_until(lambda: len(server) == 0 and server.connections.handshakes() == 0)


async def test_admit_when_open_needs_a_protocol_and_handshake_caps() -> None:
    with pytest.raises(ValueError, match="admit_when_open needs a protocol"):
        Listener("127.0.0.1", echo_names, admit_when_open=True)
    server = StreamServer("test")
    with pytest.raises(ValueError, match="max_handshakes"):
        await server.start([Listener("127.0.0.1", protocol=LineProtocol, admit_when_open=True)])
    assert server.sockets == ()


class Echo(asyncio.Protocol):
    """A protocol of no mtasts kind (as a library's would be): echoes, says when it ends."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.events: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS one is no subclass
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"echo: " + data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")


async def test_a_protocol_of_another_kind_is_served_through_an_adapter(ca: trustme.CA) -> None:
    inners: list[Echo] = []

    def make(client: str) -> ServerProtocol:
        inners.append(Echo())
        return ProtocolAdapter(client, inners[-1])

    listener = Listener("127.0.0.1", tls=server_context(ca, "a.test"), protocol=make)
    server = StreamServer("test", limits=ServerLimits(max_connections_per_client=1))
    await server.start([listener])
    try:
        reader, writer = await open_tls(server.port, ca, "127.0.0.2")
        writer.write(b"one\n")
        assert await reader.readline() == b"echo: one\n"
        assert len(server) == 1  # the adapter holds the connection's slot
        with pytest.raises(_GONE):  # the cap applies to it like to any
            await open_tls(server.port, ca, "127.0.0.2")
        assert server.refused == 1
        writer.close()
        await wait_until(lambda: len(server) == 0)
        assert inners[0].events[0] == "made"
        assert inners[0].events[-1] == "lost"
        held_reader, _held_writer = await open_tls(server.port, ca, "127.0.0.3")
        await wait_until(lambda: len(server) == 1)
    finally:
        await server.stop()
    assert inners[-1].events == ["made", "lost"]  # stop() reached the library's protocol too
    assert await read_all(held_reader) == b""


class Recording(LineProtocol):
    failures: list[BaseException] = []  # noqa: RUF012 -- the test's record, one per run

    __slots__ = ()

    def setup_failed(self, exc: OSError | TimeoutError) -> None:
        self.failures.append(exc)


async def test_a_protocol_hears_of_a_handshake_that_failed(ca: trustme.CA) -> None:
    Recording.failures = []
    listener = Listener("127.0.0.1", tls=server_context(ca, "a.test"), protocol=Recording)
    async with serving([listener], limits=ServerLimits(handshake_timeout=0.3)) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")  # plain HTTP on the TLS port
        assert await read_all(reader) == b""
        writer.close()
        await wait_until(lambda: len(Recording.failures) == 1)
        assert isinstance(Recording.failures[0], ssl.SSLError)
        assert "HTTP_REQUEST" in str(Recording.failures[0])
        silent = await asyncio.open_connection("127.0.0.1", server.port)
        await wait_until(lambda: len(Recording.failures) == 2)  # the handshake deadline
        assert isinstance(Recording.failures[1], (TimeoutError, ConnectionAbortedError))
        silent[1].close()
        await wait_until(lambda: len(server) == 0)


async def test_close_stops_listening_and_leaves_the_connections_to_stop(ca: trustme.CA) -> None:
    server = StreamServer("test")
    await server.start([Listener("127.0.0.1", tls=server_context(ca, "a.test"), protocol=LineProtocol)])
    port = server.port
    reader, writer = await open_tls(port, ca, "127.0.0.2")
    writer.write(b"x\n")
    assert await reader.readline() == b"ok TLSv1.3\n"
    server.close()
    server.close()  # twice is harmless
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"y\n")
    assert await reader.readline() == b"ok TLSv1.3\n"  # the open one goes on
    await server.stop()
    assert await read_all(reader) == b""
    writer.close()
    assert len(server) == 0


async def test_accepted_sockets_inherit_the_listeners_receive_buffer() -> None:
    sizes: list[int] = []

    async def size_of(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sizes.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    async with serving([Listener("127.0.0.1", size_of, receive_buffer=16 * 1024)]) as server:
        listening = server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await read_all(reader)
        writer.close()
    async with serving([Listener("127.0.0.1", size_of)]) as server:
        default = server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert listening < default  # Linux reports twice what was asked: 32 KiB
    assert sizes == [listening]


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 on this machine")
async def test_an_ipv6_wildcard_listener_takes_ipv4_only_when_dual_stack() -> None:
    for dual_stack in (False, True):
        async with serving([Listener("::", greet_and_wait, dual_stack=dual_stack)]) as server:
            if dual_stack:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                assert await reader.readline() == b"hello\n"
                writer.close()
            else:
                with pytest.raises(ConnectionRefusedError):
                    await asyncio.open_connection("127.0.0.1", server.port)
            reader, writer = await asyncio.open_connection("::1", server.port)
            assert await reader.readline() == b"hello\n"
            writer.close()
