"""The HTTP/1.1 connection of the policy host (mtasts.net.http11): the request-head parser
(RFC 9112 grammar, strict, every failure a ``HeadError`` with its status), the rendered
responses byte for byte, and ``serve_http`` on a real loopback socket with a raw client:
pipelining, bare LF, HTTP/1.0, bodies handed to h11 (``Content-Length`` and chunked)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasts.net.http11 import (
    HeadError,
    HttpLimits,
    HttpRequest,
    HttpResponse,
    ParsedHead,
    parse_head,
    serve_http,
)

DATE = b"Date: Wed, 02 Dec 2026 02:00:23 GMT\r\n"


def test_a_policy_get_is_read_with_lower_case_names() -> None:
    head = parse_head(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.com\r\nUser-Agent: x/1 \r")
    assert head == ParsedHead(
        "GET",
        "/.well-known/mta-sts.txt",
        (("host", "mta-sts.example.com"), ("user-agent", "x/1")),
        keep_alive=True,
        has_body=False,
    )


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive", True),
        (b"GET / HTTP/1.0", False),  # no Host needed, and no HTTP/1.0 keep-alive offered
        (b"GET / HTTP/1.0\r\nConnection: keep-alive", False),
        (b"GET / HTTP/1.1\nHost: a", True),  # a bare LF ends a line too (RFC 9112 §2.2)
    ],
)
def test_keep_alive_follows_version_and_connection(head: bytes, keep_alive: bool) -> None:
    assert parse_head(head).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("headers", "has_body"),
    [
        (b"Content-Length: 5", True),
        (b"Content-Length: 0", False),
        (b"Transfer-Encoding: chunked", True),
        (b"X-Other: 5", False),
    ],
)
def test_a_body_is_announced_by_its_framing_headers(headers: bytes, has_body: bool) -> None:
    assert parse_head(b"POST /v1/report HTTP/1.1\r\nHost: a\r\n" + headers).has_body is has_body


@pytest.mark.parametrize(
    ("head", "status", "message"),
    [
        (b"", 400, "no request line received"),
        (b"GET / HTTP/1.1", 400, "Missing mandatory Host: header"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b", 400, "Found multiple Host: headers"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded", 400, "not a header field line"),  # obs-fold
        (b"GET / HTTP/1.1\r\nHost : a", 400, "not a header field line"),  # space before the colon
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c", 400, "a control character"),
        (b"GET / HTTP/1.1\r\nHost: a\rX-A: b", 400, "a control character"),  # a CR that ends no line
        (b"GET / http/1.1\r\nHost: a", 400, "not an HTTP/1.1 request line"),
        (b"GET  / HTTP/1.1\r\nHost: a", 400, "not an HTTP/1.1 request line"),
        (b"GET /\x7f HTTP/1.1\r\nHost: a", 400, "not an HTTP/1.1 request line"),
        (b"GET /a b HTTP/1.1\r\nHost: a", 400, "not an HTTP/1.1 request line"),
        (b"G(T / HTTP/1.1\r\nHost: a", 400, "not an HTTP/1.1 request line"),
        (b"GET / HTTP/2.0\r\nHost: a", 505, "HTTP/2.0 is not supported"),
        (b"\r\nGET / HTTP/1.1\r\nHost: a", 400, "no request line received"),
    ],
)
def test_every_malformed_head_is_a_head_error_with_its_status(head: bytes, status: int, message: str) -> None:
    with pytest.raises(HeadError) as info:
        parse_head(head)
    assert info.value.status == status
    assert message in info.value.message


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300)
    | st.lists(st.sampled_from([b"GET / HTTP/1.1", b"Host: a", b":", b"\r", b" "])).map(b"\r\n".join)
)
def test_any_bytes_give_a_head_or_a_head_error(data: bytes) -> None:
    outcome: ParsedHead | HeadError
    try:
        outcome = parse_head(data)
    except HeadError as exc:
        outcome = exc
    if isinstance(outcome, HeadError):
        assert outcome.status in (400, 505)
    else:
        assert outcome.method
        assert outcome.target


def test_a_response_renders_once_and_adds_date_and_connection() -> None:
    response = HttpResponse(200, b"body\r\n", (("Content-Type", "text/plain"), ("Cache-Control", "max-age=300")))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=300\r\nContent-Length: 6\r\n" + DATE
    server = b"Server: mtasts/"
    kept = response.encode(close=False, date=DATE)
    assert kept.startswith(head + server)
    assert kept.endswith(b"\r\n\r\nbody\r\n")
    assert b"Connection" not in kept
    closing = response.encode(close=True, head_only=True, date=DATE)
    assert closing.startswith(head + server)
    assert closing.endswith(b"\r\nConnection: close\r\n\r\n")  # HEAD: the headers of GET, no body


@pytest.mark.parametrize(
    "header", [("Bad Name", "x"), ("X-Injected", "a\r\nSet-Cookie: b"), ("X-Nul", "a\x00"), ("X-Space", " a")]
)
def test_a_response_header_that_would_break_the_framing_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="not a valid header field"):
        HttpResponse(200, b"", (header,))


# --- serve_http on loopback -----------------------------------------------------------------


async def _app(request: HttpRequest) -> HttpResponse:
    if request.receive is not None:
        parts = []
        while chunk := await request.receive(5.0):
            parts.append(chunk)
        return HttpResponse(200, b"got " + b"".join(parts), close=True)
    return HttpResponse(200 if request.path == "/" else 404, f"{request.method} {request.target}\n".encode())


@pytest.fixture
async def port() -> AsyncIterator[int]:
    limits = HttpLimits(max_header_bytes=1024, header_timeout=5.0, idle_timeout=5.0, max_requests=3)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve_http(reader, writer, _app, limits=limits, client="127.0.0.1")
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes (within a bound, never a sleep)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    async with asyncio.timeout(10):
        answer = await reader.read(-1)
    writer.close()
    return answer


def statuses(answer: bytes) -> list[bytes]:
    """The status codes of the responses in ``answer`` (bodies here hold no status line)."""
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)


async def test_pipelined_requests_are_answered_in_order_up_to_max_requests(port: int) -> None:
    one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    answer = await exchange(port, one + b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n" + one + one)
    assert statuses(answer) == [b"200", b"404", b"200"]  # the third is the last (max_requests = 3)
    assert answer.count(b"Connection: close") == 1


async def test_bare_lf_and_http10_are_answered_and_http10_is_closed(port: int) -> None:
    answer = await exchange(port, b"GET / HTTP/1.0\n\n")
    assert statuses(answer) == [b"200"]
    assert b"Connection: close\r\n" in answer
    assert answer.endswith(b"GET /\n")


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 2000 + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 2000, b"431"),  # too large before it ends
        (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),  # h11's framing rules
    ],
)
async def test_bad_heads_get_their_status_and_the_connection_closes(port: int, data: bytes, status: bytes) -> None:
    answer = await exchange(port, data)
    assert statuses(answer) == [status]
    assert b"Connection: close\r\n" in answer


@pytest.mark.parametrize(
    "body",
    [b"Content-Length: 5\r\n\r\nhello", b"Transfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"],
)
async def test_a_body_is_read_through_h11_and_the_connection_closes(port: int, body: bytes) -> None:
    answer = await exchange(port, b"POST /r HTTP/1.1\r\nHost: a\r\n" + body + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert statuses(answer) == [b"200"]  # the request after a body is not read
    assert answer.endswith(b"\r\n\r\ngot hello")
