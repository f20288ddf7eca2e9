"""The shared server plumbing (mtasts.net.server), with real sockets and real TLS on loopback.

The suite runs on uvloop (tests/conftest.py), the loop the lost-ClientHello bug showed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trustme
from cryptography import x509

from mtasts.net.server import (
    Listener,
    ServerLimits,
    ServerProtocol,
    StreamServer,
    close_writer,
    sanitize,
    select_by_sni,
)

_PATIENCE = 20.0  # seconds: how long a test waits for something that must happen (not a timing claim)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names, key_type=trustme.KeyType.ECDSA).configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """Verifies chain and host name, trusting only ``ca`` (no system store: that takes 0.1 s)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


def served_names(ssl_object: ssl.SSLObject | ssl.SSLSocket | Any) -> list[str]:
    der = ssl_object.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    names: list[str] = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    return names


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(_PATIENCE):
        while not condition():
            await asyncio.sleep(0.01)


async def echo_names(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one line with b"ok" and the TLS version (so a client sees the handler ran)."""
    await reader.readline()
    ssl_object = writer.get_extra_info("ssl_object")
    writer.write(b"ok " + (ssl_object.version() if ssl_object else "plain").encode() + b"\n")
    await writer.drain()


async def greet_and_wait(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello\n")
    await writer.drain()
    await reader.read()  # until the client leaves


@contextlib.asynccontextmanager
async def serving(
    listeners: list[Listener], *, limits: ServerLimits | None = None, busy_reply: bytes | None = None
) -> AsyncIterator[StreamServer]:
    server = StreamServer("test", limits=limits or ServerLimits(), busy_reply=busy_reply)
    await server.start(listeners)
    try:
        yield server
    finally:
        await server.stop()


async def early_hello_handshake(
    address: str, port: int, context: ssl.SSLContext, server_hostname: str | None
) -> ssl.SSLObject:
    """A TLS handshake whose ClientHello is in the server's socket buffer before the server
    accepts: connecting and sending block this (the server's) loop, so the server cannot accept
    in between. A server that reads before its TLS layer takes over loses exactly this
    ClientHello (under uvloop that was most real clients)."""
    loop = asyncio.get_running_loop()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with socket.create_connection((address, port), timeout=5) as sock:
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(outgoing.read())  # the whole ClientHello, before the loop runs again
        sock.setblocking(False)
        async with asyncio.timeout(_PATIENCE):
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if pending := outgoing.read():
                        await loop.sock_sendall(sock, pending)
                    data = await loop.sock_recv(sock, 65536)
                    if not data:
                        raise ConnectionResetError("the server closed the connection during the handshake") from None
                    incoming.write(data)
            if pending := outgoing.read():  # the client's Finished
                await loop.sock_sendall(sock, pending)
    return tls


# --- TLS at accept ------------------------------------------------------------------------------


async def test_a_client_hello_sent_before_accept_is_not_lost(ca: trustme.CA) -> None:
    context, client = server_context(ca, "a.test"), client_context(ca)
    async with serving([Listener("127.0.0.1", echo_names, context)]) as server:
        for _ in range(100):
            tls = await early_hello_handshake("127.0.0.1", server.port, client, "a.test")
            assert served_names(tls) == ["a.test"]


async def test_the_certificate_is_chosen_by_sni_else_the_default(ca: trustme.CA) -> None:
    a, b, default = server_context(ca, "a.test"), server_context(ca, "b.test"), server_context(ca, "default.test")
    listening = select_by_sni(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), {"a.test": a, "B.Test.": b}, default)
    unchecked = client_context(ca)
    unchecked.check_hostname = False
    async with serving([Listener("127.0.0.1", echo_names, listening)]) as server:
        for sni, expected in [
            ("a.test", "a.test"),
            ("A.TEST", "a.test"),
            ("b.test", "b.test"),
            ("b.test.", "b.test"),
            ("other.test", "default.test"),
            (None, "default.test"),
        ]:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, ssl=unchecked, server_hostname=sni or ""
            )
            assert served_names(writer.get_extra_info("ssl_object")) == [expected], sni
            writer.write(b"x\n")
            assert await reader.readline() == b"ok TLSv1.3\n"
            writer.close()
            await writer.wait_closed()


async def test_one_context_per_listening_address_on_one_port(ca: trustme.CA) -> None:
    listeners = [
        Listener("127.0.0.1", echo_names, server_context(ca, "one.test")),
        Listener("127.0.0.2", echo_names, server_context(ca, "two.test")),
        Listener("127.0.0.3", echo_names),  # plain TCP on the same port number
    ]
    async with serving(listeners) as server:
        assert {sock.getsockname()[1] for sock in server.sockets} == {server.port}
        for address, name in [("127.0.0.1", "one.test"), ("127.0.0.2", "two.test")]:
            tls = await early_hello_handshake(address, server.port, client_context(ca), name)
            assert served_names(tls) == [name]
        reader, writer = await asyncio.open_connection("127.0.0.3", server.port)
        writer.write(b"x\n")
        assert await reader.readline() == b"ok plain\n"
        await close_writer(writer)


async def test_the_handshake_has_a_deadline(ca: trustme.CA) -> None:
    limits = ServerLimits(handshake_timeout=0.2)
    async with serving([Listener("127.0.0.1", echo_names, server_context(ca, "a.test"))], limits=limits) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # TCP only, no ClientHello
        await wait_until(lambda: len(server) == 1)
        async with asyncio.timeout(_PATIENCE):
            assert await reader.read() == b""  # closed by the server, not left to hang
        await wait_until(lambda: len(server) == 0)
        writer.close()


async def test_failed_handshakes_are_not_errors_and_do_not_stop_the_server(
    ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving([Listener("127.0.0.1", echo_names, server_context(ca, "a.test"))]) as server:
        with caplog.at_level(logging.DEBUG):
            for garbage in [b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b""]:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(garbage)
                if not garbage:
                    writer.write_eof()
                with contextlib.suppress(ConnectionResetError):
                    async with asyncio.timeout(_PATIENCE):
                        await reader.read()
                writer.close()
            await wait_until(lambda: len(server) == 0)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        tls = await early_hello_handshake("127.0.0.1", server.port, client_context(ca), "a.test")
        assert served_names(tls) == ["a.test"]


# --- handlers -----------------------------------------------------------------------------------


async def test_a_handler_bug_ends_one_connection_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def buggy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        await echo_names(reader, writer)

    async with serving([Listener("127.0.0.1", buggy, name="buggy")]) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await reader.read() == b""
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"x\n")
        assert await reader.readline() == b"ok plain\n"
        writer.close()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "buggy: unexpected error serving 127.0.0.1"
    ]


async def test_stream_limit_bounds_lines() -> None:
    seen: list[BaseException] = []

    async def read_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\n")
        except (asyncio.LimitOverrunError, ValueError) as exc:
            seen.append(exc)

    server = StreamServer("test", stream_limit=100)
    await server.start([Listener("127.0.0.1", read_line)])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"x" * 1000 + b"\n")
        assert await reader.read() == b""
        writer.close()
    finally:
        await server.stop()
    assert len(seen) == 1


# --- connection caps ------------------------------------------------------------------------------


async def connect_from(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def test_connections_are_capped_per_client_and_per_server() -> None:
    limits = ServerLimits(max_connections=3, max_connections_per_client=2)
    async with serving([Listener("127.0.0.1", greet_and_wait)], limits=limits, busy_reply=b"busy\n") as server:
        held = []
        for source in ["127.0.0.1", "127.0.0.1"]:
            held.append(await connect_from(source, server.port))
            assert await held[-1][0].readline() == b"hello\n"
        reader, writer = await connect_from("127.0.0.1", server.port)  # a third from the same client
        assert await reader.read() == b"busy\n"
        writer.close()
        held.append(await connect_from("127.0.0.2", server.port))  # another client still gets in
        assert await held[-1][0].readline() == b"hello\n"
        reader, writer = await connect_from("127.0.0.3", server.port)  # the server is full
        assert await reader.read() == b"busy\n"
        writer.close()
        assert (len(server), server.connections.of("127.0.0.1"), server.refused) == (3, 2, 2)
        held[0][1].close()  # a slot comes back when a connection ends
        await wait_until(lambda: len(server) == 2)
        reader, writer = await connect_from("127.0.0.1", server.port)
        assert await reader.readline() == b"hello\n"
        writer.close()
        for _, held_writer in held:
            held_writer.close()
        await wait_until(lambda: len(server) == 0)
        assert server.connections.of("127.0.0.1") == 0


async def test_connections_in_their_handshake_hold_a_slot_until_the_deadline(ca: trustme.CA) -> None:
    limits = ServerLimits(max_connections=10, max_connections_per_client=1, handshake_timeout=0.3)
    context = server_context(ca, "a.test")
    async with serving([Listener("127.0.0.1", echo_names, context)], limits=limits) as server:
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", server.port)  # no ClientHello
        await wait_until(lambda: len(server) == 1)
        with pytest.raises((ConnectionResetError, ssl.SSLError, ConnectionAbortedError, BrokenPipeError)):
            await early_hello_handshake("127.0.0.1", server.port, client_context(ca), "a.test")  # refused: cap
        assert server.refused == 1
        assert await silent_reader.read() == b""  # the silent one is dropped at the handshake deadline
        silent_writer.close()
        await wait_until(lambda: len(server) == 0)
        tls = await early_hello_handshake("127.0.0.1", server.port, client_context(ca), "a.test")
        assert served_names(tls) == ["a.test"]


def test_limits_are_validated() -> None:
    for bad in [
        {"handshake_timeout": 0},
        {"close_timeout": -1},
        {"max_connections": 0},
        {"max_connections_per_client": 0},
    ]:
        with pytest.raises(ValueError, match="must be"):
            ServerLimits(**bad)


# --- lifecycle ------------------------------------------------------------------------------------


async def test_stop_ends_every_connection_and_listener(ca: trustme.CA) -> None:
    started = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started.set()
        await asyncio.sleep(3600)

    server = StreamServer("test")
    await server.start([Listener("127.0.0.1", hold, server_context(ca, "a.test")), Listener("127.0.0.2", hold)])
    port = server.port
    in_handshake = await asyncio.open_connection("127.0.0.1", port)
    established_tls = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca), server_hostname="a.test")
    plain = await asyncio.open_connection("127.0.0.2", port)
    await wait_until(lambda: len(server) == 3)
    await started.wait()
    await server.stop()
    assert len(server) == 0
    for reader, writer in [in_handshake, established_tls, plain]:
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            assert await reader.read() == b""
        writer.transport.abort()
    current = asyncio.current_task()
    assert not [t for t in asyncio.all_tasks() if t is not current and "test" in t.get_name()]
    for address in ["127.0.0.1", "127.0.0.2"]:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(address, port)
    await server.stop()  # twice is harmless


async def test_a_taken_port_is_reported_and_nothing_is_left_bound() -> None:
    async with serving([Listener("127.0.0.1", greet_and_wait)]) as first:
        second = StreamServer("second")
        with pytest.raises(OSError, match="in use"):
            await second.start(
                [Listener("127.0.0.2", greet_and_wait), Listener("127.0.0.1", greet_and_wait)], first.port
            )
        assert second.sockets == ()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.2", first.port)
        with pytest.raises(RuntimeError, match="already listening"):
            await first.start([Listener("127.0.0.3", greet_and_wait)])


# --- protocol listeners ----------------------------------------------------------------------------


class LineProtocol(ServerProtocol):
    """Answers each line from ``data_received`` (no stream, no task): ``ok`` and the TLS version;
    a line ``stream`` hands the rest of the connection, bytes after it included, to
    :func:`echo_rest` on a stream; ``hold`` keeps the connection open without answering."""

    __slots__ = ("buffer",)

    def __init__(self, client: str) -> None:
        super().__init__(client)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            if line == b"stream":
                self.hand_over(echo_rest, self.buffer)
                return
            if line == b"hold":
                continue
            ssl_object = self.transport.get_extra_info("ssl_object")
            self.transport.write(b"ok " + (ssl_object.version() if ssl_object else "plain").encode() + b"\n")
            if line == b"bye":
                self.close()
                return


async def echo_rest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every line, prefixed, until the client leaves."""
    while line := await reader.readline():
        writer.write(b"stream: " + line)
        await writer.drain()


async def test_a_listener_has_a_handler_or_a_protocol() -> None:
    for bad in [{}, {"handler": echo_names, "protocol": LineProtocol}]:
        with pytest.raises(ValueError, match="handler or a protocol"):
            Listener("127.0.0.1", **bad)  # type: ignore[arg-type]


async def test_a_protocol_listener_terminates_tls_at_accept_and_chooses_by_sni(ca: trustme.CA) -> None:
    a, default = server_context(ca, "a.test"), server_context(ca, "default.test")
    listening = select_by_sni(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), {"a.test": a}, default)
    async with serving([Listener("127.0.0.1", tls=listening, protocol=LineProtocol)]) as server:
        for _ in range(50):  # the ClientHello is in the socket before the server accepts
            tls = await early_hello_handshake("127.0.0.1", server.port, client_context(ca), "a.test")
            assert served_names(tls) == ["a.test"]
        unchecked = client_context(ca)
        unchecked.check_hostname = False
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=unchecked, server_hostname="")
        assert served_names(writer.get_extra_info("ssl_object")) == ["default.test"]
        writer.write(b"x\nbye\n")
        assert await reader.read() == b"ok TLSv1.3\nok TLSv1.3\n"  # and the server closed
        writer.close()
        await wait_until(lambda: len(server) == 0)


async def test_a_protocol_connection_continues_as_a_stream() -> None:
    async with serving([Listener("127.0.0.1", protocol=LineProtocol)]) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"one\nstream\ntwo\n")  # "two" arrives with the line that hands over
        assert await reader.readline() == b"ok plain\n"
        assert await reader.readline() == b"stream: two\n"
        writer.write(b"three\n")
        assert await reader.readline() == b"stream: three\n"
        assert len(server) == 1  # still counted
        writer.close()
        await wait_until(lambda: len(server) == 0)


async def test_protocol_connections_are_capped_and_counted_through_their_handshake(ca: trustme.CA) -> None:
    limits = ServerLimits(max_connections=10, max_connections_per_client=2, handshake_timeout=0.3)
    listener = Listener("127.0.0.1", tls=server_context(ca, "a.test"), protocol=LineProtocol)
    async with serving([listener], limits=limits) as server:
        silent = await asyncio.open_connection("127.0.0.1", server.port)  # no ClientHello
        open_reader, open_writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca), server_hostname="a.test"
        )
        await wait_until(lambda: len(server) == 2)
        with pytest.raises((ConnectionResetError, ssl.SSLError, ConnectionAbortedError, BrokenPipeError)):
            await early_hello_handshake("127.0.0.1", server.port, client_context(ca), "a.test")  # a third: refused
        assert server.refused == 1
        assert await silent[0].read() == b""  # dropped at the handshake deadline, its slot given back
        silent[1].close()
        await wait_until(lambda: len(server) == 1)
        open_writer.write(b"x\n")
        assert await open_reader.readline() == b"ok TLSv1.3\n"  # the open one is not touched
        open_writer.close()
        await wait_until(lambda: len(server) == 0)
        assert server.connections.of("127.0.0.1") == 0


async def test_stop_ends_protocol_connections_handshakes_and_streams(ca: trustme.CA) -> None:
    server = StreamServer("test")
    await server.start([Listener("127.0.0.1", tls=server_context(ca, "a.test"), protocol=LineProtocol)])
    in_handshake = await asyncio.open_connection("127.0.0.1", server.port)
    clients = []
    for first in [b"hold\n", b"stream\n"]:  # one served by callbacks, one handed over to a stream
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca), server_hostname="a.test"
        )
        writer.write(first + b"x\n")
        assert await reader.readline() in (b"ok TLSv1.3\n", b"stream: x\n")
        clients.append((reader, writer))
    await wait_until(lambda: len(server) == 3)
    await server.stop()
    assert len(server) == 0
    for reader, writer in [in_handshake, *clients]:
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            assert await reader.read() == b""
        writer.transport.abort()
    current = asyncio.current_task()
    assert not [t for t in asyncio.all_tasks() if t is not current and "test" in t.get_name()]


def test_sanitize() -> None:
    assert sanitize(b"EHLO \x00\xff\r\n") == "EHLO \\x00\\xff\\x0d\\x0a"
    assert sanitize("x" * 100, 10) == "x" * 10 + "..."
