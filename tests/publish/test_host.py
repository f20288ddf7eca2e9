"""The policy host (mtasts.publish.host) on loopback: 200 domains on shared IPv4 and IPv6
listeners, every serving rule checked with an independent client (stdlib ``ssl`` and
``http.client``, run in threads so the host keeps its event loop, uvloop, to itself)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import ssl
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509

from mtasts.core.policy import parse_policy
from mtasts.publish.config import parse_config
from mtasts.publish.host import FALLBACK_SUBJECT, PolicyHost
from mtasts.publish.snapshot import build_snapshot, load_snapshot
from tests.publish.hosting import (
    POLICY_PATH,
    Client,
    Domains,
    canonical_body,
    config_text,
    fetch,
    make_domains,
    raw_exchange,
    tls_connect,
)

MANY = 200
# every test client connects from 127.0.0.1: the per-client rate is for its own test
UNLIMITED = "requests_per_second = 1000000\nburst = 1000000"


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> Domains:
    return make_domains(tmp_path_factory.mktemp("certs"), MANY)


@contextlib.asynccontextmanager
async def running(path: Path, text: str) -> AsyncIterator[PolicyHost]:
    path.write_text(text)
    host = PolicyHost(load_snapshot(path), loader=lambda generation: load_snapshot(path, generation=generation))
    async with host:
        yield host


@pytest.fixture(scope="module")
async def host(domains: Domains, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PolicyHost]:
    path = tmp_path_factory.mktemp("config") / "publish.toml"
    async with running(path, config_text(domains, server_extra=UNLIMITED)) as serving:
        yield serving


def port(host: PolicyHost) -> int:
    return host.bound[0].port


def assert_policy_response(status: int, headers: http.client.HTTPMessage, body: bytes, name: str) -> None:
    assert status == 200
    assert headers.get_all("Content-Type") == ["text/plain"]  # exactly one, no charset
    assert body == canonical_body(name)
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Cache-Control"] == "max-age=300"
    assert headers.get("Location") is None
    policy = parse_policy(body)  # the sender's strict reading
    assert policy.matches(f"mx1.{name}")


async def test_many_domains_on_one_listener_by_sni(host: PolicyHost, domains: Domains) -> None:
    context = domains.client_context()  # verifies the chain and that the certificate names mta-sts.<domain>
    results = await asyncio.gather(
        *(asyncio.to_thread(fetch, port(host), f"mta-sts.{name}", context) for name in domains.names)
    )
    for name, (status, headers, body) in zip(domains.names, results, strict=True):
        assert_policy_response(status, headers, body, name)
    assert {a.host for a in host.bound} == {"127.0.0.1", "::1"}
    assert len({a.port for a in host.bound}) == 1


async def test_ipv6_listener_serves_the_same(host: PolicyHost, domains: Domains) -> None:
    name = domains.names[7]
    status, headers, body = await asyncio.to_thread(
        fetch, port(host), f"mta-sts.{name}", domains.client_context(), address="::1"
    )
    assert_policy_response(status, headers, body, name)


async def test_head_has_the_headers_and_no_body(host: PolicyHost, domains: Domains) -> None:
    name = domains.names[1]
    status, headers, body = await asyncio.to_thread(
        fetch, port(host), f"mta-sts.{name}", domains.client_context(), method="HEAD"
    )
    assert status == 200
    assert body == b""
    assert headers.get_all("Content-Type") == ["text/plain"]
    assert int(headers["Content-Length"]) == len(canonical_body(name))


@pytest.mark.parametrize(
    "path", ["/", "/.well-known/", "/.well-known/mta-sts.txt/", "/.WELL-KNOWN/MTA-STS.TXT", "/mta-sts.txt", "/x"]
)
async def test_other_paths_are_404_never_a_redirect(host: PolicyHost, domains: Domains, path: str) -> None:
    status, headers, _ = await asyncio.to_thread(
        fetch, port(host), f"mta-sts.{domains.names[2]}", domains.client_context(), path
    )
    assert status == 404
    assert headers.get("Location") is None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_other_methods_are_405(host: PolicyHost, domains: Domains, method: str) -> None:
    status, headers, _ = await asyncio.to_thread(
        fetch, port(host), f"mta-sts.{domains.names[3]}", domains.client_context(), method=method
    )
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "user_agent", ["Mozilla/5.0 (compatible; Googlebot/2.1)", "python-requests/2.31", "", "curl/8.5.0"]
)
async def test_no_user_agent_filtering(host: PolicyHost, domains: Domains, user_agent: str) -> None:
    name = domains.names[4]
    status, headers, body = await asyncio.to_thread(
        fetch, port(host), f"mta-sts.{name}", domains.client_context(), headers={"User-Agent": user_agent}
    )
    assert_policy_response(status, headers, body, name)


UNKNOWN_NAMES = [
    "mta-sts.unknown.test",  # not configured
    "d0000.publish.test",  # a configured domain, but not its policy host name
    "mta-sts.publish.test",
    None,  # no SNI at all
]


@pytest.mark.parametrize("sni", UNKNOWN_NAMES)
async def test_unknown_or_missing_sni_gets_no_trusted_certificate(
    host: PolicyHost, domains: Domains, sni: str | None
) -> None:
    context = domains.client_context()
    if sni is None:
        context.check_hostname = False  # still verifies the chain
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate"):
        await asyncio.to_thread(tls_connect, port(host), sni, context)


@pytest.mark.parametrize("sni", UNKNOWN_NAMES)
async def test_unknown_or_missing_sni_gets_421_even_without_verification(host: PolicyHost, sni: str | None) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def ask() -> tuple[int, bytes, str]:
        with tls_connect(port(host), sni, context) as sock:
            der = sock.getpeercert(binary_form=True)
            assert der is not None
            subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
            head = f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {sni or 'mta-sts.d0000.publish.test'}\r\n\r\n"
            answer = raw_exchange(sock, head.encode())
        return int(answer.split(b" ")[1]), answer, subject

    status, answer, subject = await asyncio.to_thread(ask)
    assert status == 421
    assert b"version: STSv1" not in answer
    assert subject == f"CN={FALLBACK_SUBJECT}"
    assert host.metrics.handshake_failures["no_sni" if sni is None else "unknown_name"] >= 1


@pytest.mark.parametrize(
    ("host_header", "expected"),
    [
        ("mta-sts.d0001.publish.test", 421),  # another served name on this connection
        ("mta-sts.unknown.test", 421),
        ("127.0.0.1", 421),
        ("MTA-STS.D0000.PUBLISH.TEST.", 200),  # the same name, spelt differently
        ("mta-sts.d0000.publish.test:443", 200),
    ],
)
async def test_host_header_must_name_the_sni_host(
    host: PolicyHost, domains: Domains, host_header: str, expected: int
) -> None:
    status, _, _ = await asyncio.to_thread(
        fetch, port(host), "mta-sts.d0000.publish.test", domains.client_context(), headers={"Host": host_header}
    )
    assert status == expected


async def test_keep_alive_serves_several_requests_on_one_connection(host: PolicyHost, domains: Domains) -> None:
    name = domains.names[5]

    def several() -> list[tuple[int, bytes, str | None]]:
        with Client(port(host), f"mta-sts.{name}", domains.client_context()) as client:
            answers = []
            for path in (POLICY_PATH, "/nope", POLICY_PATH, POLICY_PATH, POLICY_PATH):
                status, headers, body = client.request(path)
                answers.append((status, body, headers.get("Connection")))
                assert client.connection.sock is client.sock  # still the first connection
            return answers

    answers = await asyncio.to_thread(several)
    assert [status for status, _, _ in answers] == [200, 404, 200, 200, 200]
    assert all(connection is None for _, _, connection in answers)  # never "close"
    assert answers[-1][1] == canonical_body(name)


async def test_a_request_head_too_large_gets_431(host: PolicyHost, domains: Domains) -> None:
    name = f"mta-sts.{domains.names[6]}"

    def send() -> bytes:
        with tls_connect(port(host), name, domains.client_context()) as sock:
            head = f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\nX-Padding: {'a' * 16384}\r\n\r\n"
            return raw_exchange(sock, head.encode())

    answer = await asyncio.to_thread(send)
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_pipelined_requests_are_answered_in_order(host: PolicyHost, domains: Domains) -> None:
    name = f"mta-sts.{domains.names[8]}"

    def send() -> bytes:
        with tls_connect(port(host), name, domains.client_context()) as sock:
            one = f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\n\r\n"
            last = f"GET /other HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
            return raw_exchange(sock, (one + one + last).encode())

    answer = await asyncio.to_thread(send)
    assert [line.split(b" ")[1] for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")] == [
        b"200",
        b"200",
        b"404",
    ]


async def test_a_request_with_a_body_after_a_get_is_answered_and_ends_the_connection(
    host: PolicyHost, domains: Domains
) -> None:
    # the GET is answered from the protocol's callbacks, the POST (a body) on a stream
    name = f"mta-sts.{domains.names[8]}"

    def send(post: str) -> bytes:
        with tls_connect(port(host), name, domains.client_context()) as sock:
            get = f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\n\r\n"
            after = f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\n\r\n"  # never answered: the POST closes
            return raw_exchange(sock, (get + post + after).encode())

    for post, status in [
        (f"POST {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\nContent-Length: 5\r\n\r\nhello", b"405"),
        (f"POST {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\nContent-Length: x\r\n\r\n", b"400"),  # bad framing
    ]:
        answer = await asyncio.to_thread(send, post)
        statuses = [line.split(b" ")[1] for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
        assert statuses == [b"200", status], answer
        assert b"Connection: close\r\n" in answer.rpartition(b"HTTP/1.1 ")[2]
    await wait_for_no_connections(host)


async def wait_for_no_connections(host: PolicyHost) -> None:
    async with asyncio.timeout(20):
        while host.connections:
            await asyncio.sleep(0.01)


async def test_metrics_and_health_on_the_admin_listener(host: PolicyHost, domains: Domains) -> None:
    await asyncio.to_thread(fetch, port(host), f"mta-sts.{domains.names[9]}", domains.client_context())
    admin = host.admin_bound
    assert admin is not None

    def get(path: str) -> tuple[int, str, str]:
        connection = http.client.HTTPConnection(admin.host, admin.port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.headers["Content-Type"], response.read().decode()
        finally:
            connection.close()

    status, content_type, text = await asyncio.to_thread(get, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert f'mtasts_publish_requests_total{{domain="{domains.names[9]}",status="200"}}' in text
    assert 'mtasts_publish_tls_handshake_failures_total{reason="unknown_name"}' in text
    assert f'mtasts_publish_certificate_days_left{{name="mta-sts.{domains.names[0]}"}}' in text
    assert 'mtasts_publish_domains{state="served"} 200' in text
    assert (await asyncio.to_thread(get, "/healthz"))[0] == 200
    assert (await asyncio.to_thread(get, "/other"))[0] == 404


# --- limits -------------------------------------------------------------------------------------


async def test_connections_per_client_are_capped(domains: Domains, tmp_path: Path) -> None:
    text = config_text(domains, domains.names[:2], server_extra="max_connections_per_client = 3")
    async with running(tmp_path / "p.toml", text) as host:
        name = f"mta-sts.{domains.names[0]}"
        context = domains.client_context()
        held = [await asyncio.to_thread(tls_connect, port(host), name, context) for _ in range(3)]
        try:
            with pytest.raises((ssl.SSLError, ConnectionError)):  # closed at accept, before the handshake
                await asyncio.to_thread(tls_connect, port(host), name, context)
            assert host.refused >= 1
        finally:
            held.pop().close()
        # a slot is free again once a connection ends
        async with asyncio.timeout(10):
            while host.connections > 2:
                await asyncio.sleep(0.01)
        status, _, _ = await asyncio.to_thread(fetch, port(host), name, context)
        assert status == 200
        for sock in held:
            sock.close()


async def test_requests_per_client_are_rate_limited(domains: Domains, tmp_path: Path) -> None:
    text = config_text(domains, domains.names[:1], server_extra="requests_per_second = 0.01\nburst = 2")
    async with running(tmp_path / "p.toml", text) as host:
        name = f"mta-sts.{domains.names[0]}"

        def three() -> list[tuple[int, str | None]]:
            with Client(port(host), name, domains.client_context()) as client:
                answers = []
                for _ in range(3):
                    status, headers, _ = client.request()
                    answers.append((status, headers.get("Retry-After")))
                return answers

        answers = await asyncio.to_thread(three)
    assert [status for status, _ in answers] == [200, 200, 429]
    assert int(answers[2][1] or 0) >= 1


async def test_a_slow_request_head_gets_408_and_an_idle_connection_is_closed(domains: Domains, tmp_path: Path) -> None:
    text = config_text(domains, domains.names[:1], server_extra="header_timeout = 0.3\nidle_timeout = 0.3")
    async with running(tmp_path / "p.toml", text) as host:
        name = f"mta-sts.{domains.names[0]}"

        def slow_head() -> bytes:
            with tls_connect(port(host), name, domains.client_context()) as sock:
                return raw_exchange(sock, f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {name}\r\n".encode())

        def idle() -> bytes:
            with tls_connect(port(host), name, domains.client_context()) as sock:
                return raw_exchange(sock, b"")

        assert (await asyncio.to_thread(slow_head)).startswith(b"HTTP/1.1 408 ")
        assert await asyncio.to_thread(idle) == b""  # closed without a word


# --- reload -------------------------------------------------------------------------------------


async def test_reload_under_load_drops_no_request(domains: Domains, tmp_path: Path) -> None:
    names = domains.names[:20]
    path = tmp_path / "p.toml"
    async with running(path, config_text(domains, names, server_extra=UNLIMITED)) as host:
        stop = threading.Event()
        context = domains.client_context()
        failures: list[str] = []
        seen: dict[str, set[bytes]] = {name: set() for name in names}

        def hammer(worker: int) -> int:
            """Keep-alive connections that are replaced every few requests, so that both
            requests on old connections and handshakes after a swap happen during the reloads."""
            count = 0
            while not stop.is_set():
                name = names[(worker + count) % len(names)]
                try:
                    with Client(port(host), f"mta-sts.{name}", context) as client:
                        for _ in range(5):
                            status, _, body = client.request()
                            count += 1
                            if status != 200:
                                failures.append(f"{name}: HTTP {status}")
                            seen[name].add(body)
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(f"{name}: {exc!r}")
            return count

        # their own threads: the default executor must stay free for the reload's loader
        pool = ThreadPoolExecutor(6)
        loop = asyncio.get_running_loop()
        workers = [loop.run_in_executor(pool, hammer, i) for i in range(6)]
        try:
            for generation in (2, 3, 4):
                await asyncio.sleep(0.2)
                path.write_text(config_text(domains, names, generation=generation, server_extra=UNLIMITED))
                outcome = await host.reload()
                assert outcome.ok, outcome.problems
                assert outcome.generation == generation
            await asyncio.sleep(0.2)
        finally:
            stop.set()
            counts = await asyncio.gather(*workers)
            pool.shutdown()
        assert failures == []
        assert sum(counts) > 100
        for name in names:
            allowed = {canonical_body(name, g) for g in (1, 2, 3, 4)}
            assert seen[name] <= allowed, name
        # after the last swap every name serves the newest body
        status, _, body = await asyncio.to_thread(fetch, port(host), f"mta-sts.{names[0]}", context)
        assert (status, body) == (200, canonical_body(names[0], 4))


async def test_reload_with_an_invalid_body_keeps_the_previous_state(domains: Domains, tmp_path: Path) -> None:
    names = domains.names[:3]
    path = tmp_path / "p.toml"
    async with running(path, config_text(domains, names)) as host:
        bad = config_text(domains, names, generation=2).replace(f'mx = ["mx1.{names[1]}"', 'mx = ["mx 1 bad"', 1)
        path.write_text(bad)
        outcome = await host.reload()
        assert not outcome.ok
        assert outcome.generation == 1
        assert any("domain[2].mx" in line and "is not a valid MX host name" in line for line in outcome.problems), (
            outcome.problems
        )
        for name in names:
            status, _, body = await asyncio.to_thread(fetch, port(host), f"mta-sts.{name}", domains.client_context())
            assert (status, body) == (200, canonical_body(name, 1))
        assert host.metrics.reloads["failed"] == 1


async def test_reload_with_a_missing_certificate_keeps_the_previous_state(domains: Domains, tmp_path: Path) -> None:
    names = domains.names[:2]
    path = tmp_path / "p.toml"
    async with running(path, config_text(domains, names)) as host:
        path.write_text(
            config_text(domains, names, generation=2).replace(str(domains.key(names[0])), "/nonexistent.key")
        )
        outcome = await host.reload()
        assert not outcome.ok
        assert outcome.unreadable
        assert any("domain[1].key" in line and "/nonexistent.key" in line for line in outcome.problems)
        status, _, body = await asyncio.to_thread(fetch, port(host), f"mta-sts.{names[0]}", domains.client_context())
        assert (status, body) == (200, canonical_body(names[0], 1))


async def test_reload_adds_and_removes_names(domains: Domains, tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    first, second, third = domains.names[:3]
    async with running(path, config_text(domains, [first, second])) as host:
        context = domains.client_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(tls_connect, port(host), f"mta-sts.{third}", context)
        held = await asyncio.to_thread(Client, port(host), f"mta-sts.{second}", context)
        try:
            path.write_text(config_text(domains, [first, third]))
            assert (await host.reload()).ok
            status, _, body = await asyncio.to_thread(fetch, port(host), f"mta-sts.{third}", context)
            assert (status, body) == (200, canonical_body(third))
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.to_thread(tls_connect, port(host), f"mta-sts.{second}", context)
            # a connection opened before the reload for a name no longer served is told so
            status, headers, _ = await asyncio.to_thread(held.request)
            assert status == 421
            assert headers["Connection"] == "close"
        finally:
            held.close()


async def test_a_certificate_that_cannot_be_loaded_gets_no_policy(domains: Domains, tmp_path: Path) -> None:
    names = domains.names[:2]
    # the key of another name: the files exist (so the host starts), but do not match
    text = config_text(domains, names).replace(str(domains.key(names[0])), str(domains.key(names[1])))
    async with running(tmp_path / "p.toml", text) as host:
        context = domains.client_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(tls_connect, port(host), f"mta-sts.{names[0]}", context)
        status, _, _ = await asyncio.to_thread(fetch, port(host), f"mta-sts.{names[1]}", context)
        assert status == 200
        assert f'mtasts_publish_certificate_unusable{{name="mta-sts.{names[0]}"}} 1' in host.render_metrics()


def test_thousands_of_domains_start_without_loading_certificates(domains: Domains, tmp_path: Path) -> None:
    """10,000 entries (sharing one certificate's files) build a snapshot without loading a
    single certificate: loading happens at the first handshake of each name."""
    name = domains.names[0]
    entries = "".join(
        f'[[domain]]\nname = "n{i}.example"\nmode = "testing"\nmx = ["mx.n{i}.example"]\nmax_age = 86400\n'
        f'cert = "{domains.cert(name)}"\nkey = "{domains.key(name)}"\n'
        for i in range(10_000)
    )
    snapshot = build_snapshot(parse_config(entries, tmp_path / "p.toml"))
    assert len(snapshot.sites) == 10_000
    assert snapshot.certificates.loads == 0
