"""A checked domain's operator writes what its policy host answers: a certificate name or a
redirect's Location carrying an ESC sequence or a line break reaches ``resolver query``'s
"last error" (and the daemon's log line, the same text) as its escape, never raw."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from mtasts.cli.main import app
from tests.servers import serving_in_thread

pytestmark = pytest.mark.lab

FORGED_NAME = "evil\x1b[31m.example\nNEW forged.example"


def context_for(ca: trustme.CA, tmp_path: Path, *names: str) -> ssl.SSLContext:
    """A server context whose certificate, issued by ``ca``, names exactly ``names`` (built by
    hand: trustme refuses names that are not host names, which is the point here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    signer = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostile")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@contextmanager
def https_server(address: str, context: ssl.SSLContext, response: bytes) -> Iterator[int]:
    """A TLS server on ``address`` (a free port) answering every request with ``response``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client refused the certificate: nothing to answer
        writer.close()

    with serving_in_thread(address, answer, tls=context) as port:
        yield port


def query(runner: CliRunner, lab: Any, domain: str, ca: trustme.CA, tmp_path: Path, port: int) -> str:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    address, dns_port = lab.nameserver
    options = ["--nameserver", f"{address}:{dns_port}", "--ca-file", str(ca_file), "--https-port", str(port)]
    result = runner.invoke(app, ["resolver", "query", "--direct", domain, *options, "--timeout", "2"])
    assert "\x1b" not in result.stdout, repr(result.stdout)
    assert not any(line.startswith("NEW") for line in result.stdout.splitlines()), result.stdout
    return result.stdout


def test_a_hostile_certificate_name_is_escaped_in_the_last_error(runner: CliRunner, lab: Any, tmp_path: Path) -> None:
    domain, ca = lab.domain("enforce-ok"), trustme.CA()
    context = context_for(ca, tmp_path, FORGED_NAME)
    with https_server(lab.address(f"mta-sts.{domain}"), context, b"") as port:
        out = query(runner, lab, domain, ca, tmp_path, port)
    assert "(it names evil\\x1b[31m.example\\x0aNEW forged.example)" in out


def test_a_hostile_redirect_location_is_escaped_in_the_last_error(runner: CliRunner, lab: Any, tmp_path: Path) -> None:
    domain, ca = lab.domain("enforce-ok"), trustme.CA()
    context = context_for(ca, tmp_path, f"mta-sts.{domain}")
    redirect = b"HTTP/1.1 302 Found\r\nLocation: https://x.example/\x1b[2K\x1b[1Aok\r\nContent-Length: 0\r\n\r\n"
    with https_server(lab.address(f"mta-sts.{domain}"), context, redirect) as port:
        out = query(runner, lab, domain, ca, tmp_path, port)
    assert "HTTP 302 redirect to https://x.example/\\x1b[2K\\x1b[1Aok; redirects must not be followed" in out
