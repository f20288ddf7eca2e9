"""``mtasts web serve`` bounds what one client can hold: the real server, raw sockets.

A head that never ends is answered ``408`` within the deadline; one client's connections are
capped (``503`` with ``Retry-After`` to the one over the cap, served again once it closes some);
a head over 16 KiB is ``431``. Every answer is the API's JSON error shape, and the connection
is closed after it.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from tests.web.conftest import Served, start_server

REQUEST = b"GET / HTTP/1.1\r\nHost: inspector.test\r\n\r\n"


def _address(served: Served) -> tuple[str, int]:
    url = urlsplit(served.url)
    assert url.hostname is not None
    assert url.port is not None
    return url.hostname, url.port


def _connect(served: Served) -> socket.socket:
    return socket.create_connection(_address(served), timeout=10)


def _response(sock: socket.socket, *, until_closed: bool = False) -> bytes:
    """One response's bytes: its head and its ``Content-Length`` body (all, up to the close,
    with ``until_closed``); waits at most the socket's timeout for each read."""
    data = b""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep and not until_closed:
            fields = {name.lower(): value for name, _, value in (line.partition(b":") for line in head.split(b"\r\n"))}
            length = int(fields.get(b"content-length", b"0"))
            if len(rest) >= length:
                return data
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _error(response: bytes) -> dict[str, str]:
    body = json.loads(response.partition(b"\r\n\r\n")[2])
    assert set(body) == {"error"}
    error: dict[str, str] = body["error"]
    return error


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """``mtasts web serve`` with a 1 s head deadline (the hidden ``--header-timeout``)."""
    served = start_server("--header-timeout", "1")
    yield served
    assert served.stop() == 0, served.stderr


def test_a_head_that_never_ends_is_answered_408_and_closed_within_the_deadline(server: Served) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: inspector.test\r\n")  # and never the empty line
        response = _response(sock, until_closed=True)  # read up to the server's close
        elapsed = time.monotonic() - started
    assert _status(response) == 408, response
    assert b"connection: close" in response.lower()
    assert _error(response)["code"] == "http.header_timeout"
    assert 0.9 <= elapsed < 3.0, elapsed


def test_a_head_larger_than_16_kib_is_answered_431(server: Served) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: inspector.test\r\nX-Padding: " + b"a" * 20_000 + b"\r\n\r\n")
        response = _response(sock, until_closed=True)
    assert _status(response) == 431, response
    assert _error(response)["code"] == "http.head_too_large"


def test_pages_are_still_served_over_keep_alive(server: Served) -> None:
    with _connect(server) as sock:
        for _ in range(2):  # the same connection twice
            sock.sendall(REQUEST)
            response = _response(sock)
            assert _status(response) == 200, response[:200]
            assert b"<form" in response
            assert b"date:" in response.lower()


def _served_again(served: Served, deadline: float) -> bytes:
    """A page on a new connection, once a slot is free again (retried until ``deadline``)."""
    while True:
        with _connect(served) as sock:
            sock.sendall(REQUEST)
            response = _response(sock)
        if _status(response) != 503 or time.monotonic() > deadline:
            return response


@pytest.mark.parametrize(("options", "cap"), [((), 32), (("--public",), 8)], ids=["private", "public"])
def test_one_client_over_its_connection_cap_gets_503_until_it_closes_some(options: tuple[str, ...], cap: int) -> None:
    served = start_server(*options)
    try:
        with ExitStack() as stack:
            held = [stack.enter_context(_connect(served)) for _ in range(cap)]
            for sock in held:  # each is open and counted: it has been answered
                sock.sendall(REQUEST)
                assert _status(_response(sock)) in (200, 302, 303), "a connection within the cap was refused"
            with _connect(served) as extra:
                refused = _response(extra, until_closed=True)
            assert _status(refused) == 503, refused
            assert b"retry-after: 5" in refused.lower()
            assert _error(refused)["code"] == "http.too_many_connections"
            held.pop().close()
            held.pop().close()
            again = _served_again(served, time.monotonic() + 10)
            assert _status(again) in (200, 302, 303), again[:200]
    finally:
        assert served.stop() == 0, served.stderr


def test_behind_a_trusted_proxy_only_the_total_cap_applies() -> None:
    """Every connection then comes from the proxy: a per-client cap would refuse its clients."""
    from mtasts.web.settings import PUBLIC_SERVE_LIMITS

    direct = PUBLIC_SERVE_LIMITS.server_limits()
    proxied = replace(PUBLIC_SERVE_LIMITS, behind_proxy=True).server_limits()
    assert (direct.max_connections, direct.max_connections_per_client) == (512, 8)
    assert (proxied.max_connections, proxied.max_connections_per_client) == (512, 512)
