"""Test material for the policy host: certificates and configuration files for many domains, and
an independent client (stdlib ``ssl`` + ``http.client``, nothing of mtasts on the client side)."""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trustme

from mtasts.core.policy import Mode, Policy

POLICY_PATH = "/.well-known/mta-sts.txt"


def domain_name(index: int) -> str:
    return f"d{index:04d}.publish.test"


@dataclass(frozen=True, slots=True)
class Domains:
    """``count`` domains with a certificate each (files under ``directory``), one CA."""

    ca: trustme.CA
    directory: Path
    names: tuple[str, ...]

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def client_context(self) -> ssl.SSLContext:
        """Verifies chain and host name against this CA only."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return context


def make_domains(directory: Path, count: int) -> Domains:
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    directory.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    names = tuple(domain_name(i) for i in range(count))
    domains = Domains(ca, directory, names)
    for name in names:
        issued = ca.issue_cert(f"mta-sts.{name}", key_type=trustme.KeyType.ECDSA)
        issued.private_key_pem.write_to_path(str(domains.key(name)))
        domains.cert(name).write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    return domains


def max_age_of(name: str, generation: int = 1) -> int:
    """A max_age per domain and generation, so every body differs and a reload changes each."""
    return 86400 + int(name[1:5]) + 100_000 * (generation - 1)


def canonical_body(name: str, generation: int = 1) -> bytes:
    """What the host must serve for ``name`` at ``generation``: built here from the core's
    types, independently of the host's own configuration code."""
    policy = Policy(mode=Mode.TESTING, max_age=max_age_of(name, generation), mx=(f"mx1.{name}", f"*.mx.{name}"))
    return policy.to_text().encode()


def config_text(
    domains: Domains,
    names: Iterable[str] | None = None,
    *,
    generation: int = 1,
    listen: Sequence[str] = ("127.0.0.1:0", "[::1]:0"),
    admin: str = "127.0.0.1:0",
    server_extra: str = "",
    extra: str = "",
) -> str:
    """A configuration serving ``names`` (default: all) with bodies of ``generation``."""
    listen_list = ", ".join(f'"{a}"' for a in listen)
    parts = [f'[server]\nlisten = [{listen_list}]\nadmin = "{admin}"\n{server_extra}\n']
    for name in domains.names if names is None else names:
        parts.append(
            "[[domain]]\n"
            f'name = "{name}"\n'
            'mode = "testing"\n'
            f'mx = ["mx1.{name}", "*.mx.{name}"]\n'
            f"max_age = {max_age_of(name, generation)}\n"
            f'cert = "{domains.cert(name)}"\n'
            f'key = "{domains.key(name)}"\n'
        )
    return "\n".join(parts) + extra


def tls_connect(
    port: int,
    name: str | None,
    context: ssl.SSLContext,
    *,
    address: str = "127.0.0.1",
    timeout: float = 5.0,
) -> ssl.SSLSocket:
    """A TLS connection to the host at ``address``:``port`` asking for ``name`` by SNI."""
    raw = socket.create_connection((address, port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise


class Client:
    """One keep-alive HTTPS connection to one policy host name (``http.client`` over our socket)."""

    def __init__(
        self,
        port: int,
        name: str,
        context: ssl.SSLContext,
        *,
        address: str = "127.0.0.1",
        timeout: float = 5.0,
    ) -> None:
        self.sock = tls_connect(port, name, context, address=address, timeout=timeout)
        self.connection = http.client.HTTPConnection(name, port, timeout=timeout)
        self.connection.sock = self.sock

    def request(
        self, path: str = POLICY_PATH, *, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        self.connection.request(method, path, headers=headers or {})
        response = self.connection.getresponse()
        return response.status, response.msg, response.read()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch(
    port: int,
    name: str,
    context: ssl.SSLContext,
    path: str = POLICY_PATH,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    address: str = "127.0.0.1",
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a new connection."""
    with Client(port, name, context, address=address) as client:
        return client.request(path, method=method, headers=headers)


def raw_exchange(sock: ssl.SSLSocket, data: bytes) -> bytes:
    """Send ``data``, read until the server closes (or the socket times out)."""
    sock.sendall(data)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return received
