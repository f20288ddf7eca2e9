"""TLS-ALPN-01 (RFC 8737) on the policy listeners: the challenge certificate for the CA's
validation handshake, the normal certificate for everybody else.

The CA validates a name by a TLS handshake to port 443 of its address that offers only the ALPN
protocol ``acme-tls/1`` (RFC 8737 §3); the server must answer it with a self-signed certificate
for that name carrying the ``id-pe-acmeIdentifier`` extension (the SHA-256 of the key
authorization), and must keep answering senders, who fetch the policy on the same port, with the
real certificate. Python's ``ssl`` shows an SNI callback the name but not the offered ALPN
protocols, so the choice is made before the handshake starts: while a challenge is pending,
the accepted socket's ClientHello is read with ``MSG_PEEK`` (nothing is consumed: the TLS layer
reads it again) and parsed here (:func:`parse_client_hello`, bounded and linear); a ClientHello
for a pending name that offers ``acme-tls/1`` gets the challenge context, anything else the
normal one. With no challenge pending (all but a few seconds per issuance) nothing is peeked.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

__all__ = [
    "ACME_IDENTIFIER_OID",
    "ACME_TLS_ALPN",
    "NEED_MORE",
    "AlpnChallenges",
    "ClientHello",
    "challenge_certificate",
    "parse_client_hello",
    "peek_client_hello",
]

ACME_TLS_ALPN: Final = "acme-tls/1"  # RFC 8737 §6.2
ACME_IDENTIFIER_OID: Final = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier, RFC 8737 §6.1
_MAX_RECORD: Final = 16384 + 5  # a TLS record (RFC 8446 §5.1): a ClientHello bigger than one is not read


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What the choice needs from a ClientHello: the SNI host name (lower case, ``None``: none)
    and the offered ALPN protocols, in order."""

    server_name: str | None
    alpn: tuple[str, ...]


class _NeedMore:
    """The bytes so far are a valid beginning; the rest has not arrived."""

    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Final = _NeedMore()


def parse_client_hello(data: bytes) -> ClientHello | _NeedMore | None:
    """The ClientHello at the start of ``data`` (RFC 8446 §4.1.2, the same layout in TLS 1.2):
    :data:`NEED_MORE` while the first record is incomplete, ``None`` when it is not a
    ClientHello in one record (the TLS layer then says what is wrong). Reads each length once
    and never past the record: linear and bounded."""
    if len(data) < 5:
        return NEED_MORE if data[:1] in (b"", b"\x16") else None
    if data[0] != 0x16 or data[1] != 0x03:  # handshake record, TLS 1.x legacy version
        return None
    length = int.from_bytes(data[3:5], "big")
    if length > _MAX_RECORD - 5:
        return None
    if len(data) < 5 + length:
        return NEED_MORE
    body = memoryview(data)[5 : 5 + length]
    try:
        return _hello(body)
    except IndexError:
        return None


def _hello(body: memoryview) -> ClientHello | None:
    if body[0] != 0x01:  # handshake type client_hello
        return None
    end = min(len(body), 4 + int.from_bytes(body[1:4], "big"))
    at = 4 + 2 + 32  # legacy_version, random
    at += 1 + body[at]  # legacy_session_id
    at += 2 + int.from_bytes(body[at : at + 2], "big")  # cipher_suites
    at += 1 + body[at]  # legacy_compression_methods
    if at + 2 > end:
        return ClientHello(None, ())  # no extensions
    extensions_end = min(end, at + 2 + int.from_bytes(body[at : at + 2], "big"))
    at += 2
    server_name: str | None = None
    alpn: list[str] = []
    while at + 4 <= extensions_end:
        kind = int.from_bytes(body[at : at + 2], "big")
        size = int.from_bytes(body[at + 2 : at + 4], "big")
        data = body[at + 4 : min(at + 4 + size, extensions_end)]
        at += 4 + size
        if kind == 0 and len(data) >= 5 and data[2] == 0:  # server_name, host_name (RFC 6066 §3)
            name_length = int.from_bytes(data[3:5], "big")
            server_name = bytes(data[5 : 5 + name_length]).decode("ascii", "replace").rstrip(".").lower()
        elif kind == 16 and len(data) >= 2:  # application_layer_protocol_negotiation (RFC 7301 §3.1)
            inner = data[2 : 2 + int.from_bytes(data[0:2], "big")]
            position = 0
            while position < len(inner):
                size_of = inner[position]
                alpn.append(bytes(inner[position + 1 : position + 1 + size_of]).decode("ascii", "replace"))
                position += 1 + size_of
    return ClientHello(server_name, tuple(alpn))


def challenge_certificate(host: str, key_authorization: str, now: datetime) -> tuple[bytes, bytes]:
    """The RFC 8737 §3 certificate for ``host`` (PEM certificate, PEM key): self-signed, the
    name as its only dNSName, the critical ``id-pe-acmeIdentifier`` extension holding the DER
    OCTET STRING of SHA-256(key authorization)."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _challenge_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_ALPN])  # RFC 8737 §3: the server negotiates acme-tls/1
    with tempfile.TemporaryDirectory(prefix="mtasts-alpn-") as directory:  # load_cert_chain reads files only
        path = Path(directory) / "challenge.pem"
        path.write_bytes(cert_pem + key_pem)
        context.load_cert_chain(path)
    return context


class AlpnChallenges:
    """The names being validated by TLS-ALPN-01 and their challenge contexts. Written by the
    ACME worker thread, read by the event loop, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}

    def put(self, host: str, key_authorization: str, now: datetime) -> None:
        context = _challenge_context(*challenge_certificate(host, key_authorization, now))
        with self._lock:
            self._contexts[host.lower()] = context

    def remove(self, host: str) -> None:
        with self._lock:
            self._contexts.pop(host.lower(), None)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._contexts)

    def context_for(self, hello: ClientHello) -> ssl.SSLContext | None:
        """The challenge context when ``hello`` is the CA's (a pending name, ``acme-tls/1``
        offered), else ``None``."""
        if ACME_TLS_ALPN not in hello.alpn or hello.server_name is None:
            return None
        with self._lock:
            return self._contexts.get(hello.server_name)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def peek_client_hello(conn: socket.socket, timeout: float) -> ClientHello | None:
    """The ClientHello waiting on ``conn`` (non-blocking, not yet read by anyone), read with
    ``MSG_PEEK`` so that the TLS layer still gets every byte; ``None`` when none arrives within
    ``timeout`` or it is not one (the TLS layer will say so)."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        try:
            data = conn.recv(_MAX_RECORD, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        except OSError:
            return None
        if data is not None:
            parsed = parse_client_hello(data)
            if not isinstance(parsed, _NeedMore):
                return parsed
            if not data:
                return None  # the client closed before sending anything
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if data is None:  # nothing yet: wait until the socket is readable
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(conn.fileno(), _settle, ready)
            try:
                await asyncio.wait_for(ready, remaining)
            except TimeoutError:
                return None
            finally:
                loop.remove_reader(conn.fileno())
        else:  # a part is buffered (readable already): wait for the rest a little at a time
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)
