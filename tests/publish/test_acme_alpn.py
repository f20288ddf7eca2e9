"""TLS-ALPN-01 (RFC 8737): the ClientHello reader and the challenge certificate on their own,
then issuance against Debian's ``pebble``, which validates by a TLS handshake offering only
``acme-tls/1`` to the policy listener's port, while ordinary clients keep getting the policy."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from mtasts.core.policy import Mode, Policy
from mtasts.lab.dns import DnsServer, Zone
from mtasts.lab.plan import Record
from mtasts.lab.world import random_network
from mtasts.publish.acme import AcmeManager
from mtasts.publish.alpn import (
    ACME_IDENTIFIER_OID,
    NEED_MORE,
    AlpnChallenges,
    ClientHello,
    challenge_certificate,
    parse_client_hello,
)
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import load_snapshot
from tests.commands import MTASTS
from tests.publish.hosting import fetch, make_domains, tls_connect
from tests.publish.pebble import free_port, require_pebble, start_pebble

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def client_hello(server_name: str | None, alpn: list[str] | None) -> bytes:
    """The first bytes Python's own TLS client sends (a real ClientHello, through memory BIOs)."""
    context = ssl.create_default_context()
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize(
    ("name", "alpn"),
    [("mta-sts.example.com", ["acme-tls/1"]), ("MTA-STS.Example.COM", ["h2", "http/1.1"]), ("x.example", None)],
)
def test_the_client_hello_says_its_name_and_alpn_whole_or_never(name: str, alpn: list[str] | None) -> None:
    data = client_hello(name, alpn)
    assert parse_client_hello(data) == ClientHello(name.lower(), tuple(alpn or ()))
    for cut in range(len(data)):  # every beginning is "need more", never a wrong answer
        assert parse_client_hello(data[:cut]) is NEED_MORE
    assert parse_client_hello(data + b"\x17\x03\x03") == ClientHello(name.lower(), tuple(alpn or ()))


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"\x16\x02\x00\x00\x05hello",
        b"\x16\x03\x01\xff\xff",
        b"\x16\x03\x01\x00\x04\x02\x00\x00\x00",
    ],
)
def test_what_is_not_a_client_hello_is_none(data: bytes) -> None:
    assert parse_client_hello(data) is None


def test_a_truncated_client_hello_inside_a_whole_record_is_none_not_an_error() -> None:
    data = client_hello("mta-sts.example.com", ["acme-tls/1"])
    body = data[5:60]
    assert parse_client_hello(b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body) in (None, ClientHello(None, ()))


def test_the_challenge_certificate_carries_the_digest_of_the_key_authorization() -> None:
    cert_pem, _ = challenge_certificate("mta-sts.example.com", "token.thumbprint", NOW)
    certificate = x509.load_pem_x509_certificate(cert_pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mta-sts.example.com"]
    extension = certificate.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert extension.critical
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    assert extension.value.value == b"\x04\x20" + hashlib.sha256(b"token.thumbprint").digest()


def test_only_the_cas_handshake_for_a_pending_name_gets_the_challenge() -> None:
    challenges = AlpnChallenges()
    assert not challenges
    challenges.put("mta-sts.example.com", "token.thumbprint", NOW)
    assert challenges
    assert challenges.context_for(ClientHello("mta-sts.example.com", ("acme-tls/1",))) is not None
    assert challenges.context_for(ClientHello("mta-sts.example.com", ("http/1.1",))) is None  # a sender
    assert challenges.context_for(ClientHello("mta-sts.example.com", ())) is None
    assert challenges.context_for(ClientHello("mta-sts.other.example", ("acme-tls/1",))) is None
    challenges.remove("mta-sts.example.com")
    assert not challenges


APEX = "alpn.publish.test"
SERVED, NEW = f"served.{APEX}", f"new.{APEX}"


@pytest.mark.lab
async def test_tls_alpn_01_issues_on_the_policy_port_while_the_policy_stays_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_pebble()
    caplog.set_level(logging.INFO, logger="mtasts.publish")
    material = make_domains(tmp_path / "certs", 0)
    issued = material.ca.issue_cert(f"mta-sts.{SERVED}")
    issued.private_key_pem.write_to_path(str(tmp_path / "served.key"))
    (tmp_path / "served.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    hosts = iter(random_network().hosts())
    ns_address, address = str(next(hosts)), str(next(hosts))
    records = [
        Record(f"{APEX}.", "SOA", f"ns.{APEX}. hostmaster.{APEX}. 1 3600 600 86400 60"),
        Record(f"{APEX}.", "NS", f"ns.{APEX}."),
        Record(f"ns.{APEX}.", "A", ns_address),
        Record(f"mta-sts.{NEW}.", "A", address),
        Record(f"mta-sts.{SERVED}.", "A", address),
    ]
    dns = DnsServer(Zone(APEX, records), ns_address)
    await dns.start()
    port = free_port(address)
    pebble = start_pebble(
        tmp_path / "pebble",
        http_port=free_port(),
        tls_port=port,
        dns_server=f"{dns.address}:{dns.port}",
        validity=90 * 86400,
    )
    config = tmp_path / "publish.toml"
    config.write_text(
        f'[server]\nlisten = ["{address}:{port}"]\nadmin = "off"\nrequests_per_second = 100000\nburst = 100000\n\n'
        f'[acme]\ndirectory = "{pebble.directory}"\nca_file = "{pebble.ca_file}"\nchallenge = "tls-alpn-01"\n'
        f'storage = "{tmp_path / "acme"}"\n\n'
        f'[[domain]]\nname = "{NEW}"\nmode = "testing"\nmx = ["mx1.{NEW}", "*.mx.{NEW}"]\nmax_age = 86400\n\n'
        f'[[domain]]\nname = "{SERVED}"\nmode = "testing"\nmx = ["mx1.{SERVED}", "*.mx.{SERVED}"]\nmax_age = 86400\n'
        'cert = "served.pem"\nkey = "served.key"\n'
    )
    host = PolicyHost(load_snapshot(config), loader=lambda generation: load_snapshot(config, generation=generation))
    manager = AcmeManager(host)
    assert manager.listen == ()  # no port-80 listener for tls-alpn-01
    stop = asyncio.Event()
    answers: list[int] = []
    served_body = Policy(Mode.TESTING, 86400, (f"mx1.{SERVED}", f"*.mx.{SERVED}")).to_text().encode()

    def hammer() -> None:  # a sender fetching the other domain's policy all along
        while not stop.is_set():
            status, _, body = fetch(port, f"mta-sts.{SERVED}", material.client_context(), address=address)
            answers.append(status if body == served_body else -1)

    try:
        await host.start()
        await manager.start(run=False)
        sender = asyncio.create_task(asyncio.to_thread(hammer))
        report = await manager.tick()
        stop.set()
        await sender
        assert report.issued == (f"mta-sts.{NEW}",), (report, pebble.log.read_text(errors="replace")[-2000:])

        def served_certificate() -> dict[str, object] | None:
            with tls_connect(port, f"mta-sts.{NEW}", pebble.client_context(), address=address) as sock:
                return sock.getpeercert()  # type: ignore[return-value]

        peer = await asyncio.to_thread(served_certificate)  # the host serves on this event loop
        assert peer is not None
        assert ("DNS", f"mta-sts.{NEW}") in peer["subjectAltName"]
        status, headers, body = await asyncio.to_thread(
            fetch, port, f"mta-sts.{NEW}", pebble.client_context(), address=address
        )
        assert (status, headers.get_all("Content-Type")) == (200, ["text/plain"])
        assert body == Policy(Mode.TESTING, 86400, (f"mx1.{NEW}", f"*.mx.{NEW}")).to_text().encode()
        assert answers
        assert set(answers) == {200}  # the sender never saw the challenge certificate
        assert not host.alpn_challenges  # nothing pending any more: nothing is peeked
        validations = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tls-alpn-01:")]
        assert validations  # Pebble's handshakes (one per validation attempt) got the challenge
        assert all(f"mta-sts.{NEW} gets its challenge" in line for line in validations)
    finally:
        stop.set()
        await manager.stop()
        await host.stop()
        pebble.stop()
        await dns.stop()


@pytest.mark.lab
async def test_publish_serve_with_tls_alpn_01_gets_and_serves_its_certificate(tmp_path: Path) -> None:
    """The real command: ``challenge = "tls-alpn-01"`` needs no port-80 listener; the first
    start orders the certificate on the policy listener's port and serves it."""
    require_pebble()
    hosts = iter(random_network().hosts())
    ns_address, address = str(next(hosts)), str(next(hosts))
    records = [
        Record(f"{APEX}.", "SOA", f"ns.{APEX}. hostmaster.{APEX}. 1 3600 600 86400 60"),
        Record(f"{APEX}.", "NS", f"ns.{APEX}."),
        Record(f"ns.{APEX}.", "A", ns_address),
        Record(f"mta-sts.{NEW}.", "A", address),
    ]
    dns = DnsServer(Zone(APEX, records), ns_address)
    await dns.start()
    port = free_port(address)
    pebble = start_pebble(
        tmp_path / "pebble",
        http_port=free_port(),
        tls_port=port,
        dns_server=f"{dns.address}:{dns.port}",
        validity=86400,
    )
    config = tmp_path / "publish.toml"
    config.write_text(
        f'[server]\nlisten = ["{address}:{port}"]\nadmin = "off"\n\n'
        f'[acme]\ndirectory = "{pebble.directory}"\nca_file = "{pebble.ca_file}"\nchallenge = "tls-alpn-01"\n'
        f'storage = "{tmp_path / "acme"}"\n\n'
        f'[[domain]]\nname = "{NEW}"\nmode = "testing"\nmx = ["mx1.{NEW}"]\nmax_age = 86400\n'
    )
    process = await asyncio.create_subprocess_exec(
        *MTASTS,
        "publish",
        "serve",
        "--config",
        str(config),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        while not any("certificate for mta-sts." in line and " issued " in line for line in lines):
            line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
            assert line, "\n".join(lines)
            lines.append(line.rstrip())
        status, _, body = await asyncio.to_thread(
            fetch, port, f"mta-sts.{NEW}", pebble.client_context(), address=address
        )
        assert (status, body) == (200, Policy(Mode.TESTING, 86400, (f"mx1.{NEW}",)).to_text().encode())
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        pebble.stop()
        await dns.stop()
    text = "\n".join(lines)
    assert f"ACME: 1 domain from {pebble.directory}, tls-alpn-01 on https://{address}:{port}; certificates in" in text
    assert f"tls-alpn-01: the validation handshake for mta-sts.{NEW} gets its challenge certificate" in text
