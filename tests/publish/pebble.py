"""Debian's ``pebble`` ACME test server on loopback, and the lab DNS it resolves names with.

Debian's package does not ship the listener certificate its example configuration names, so
each run makes one with trustme (for 127.0.0.1) and writes its own configuration: ACME and
management listeners on 127.0.0.1, ``httpPort`` the port of the host's HTTP-01 listener,
certificates valid for ``validity`` seconds. ``-dnsserver`` points Pebble at the lab's
authoritative server (:mod:`mtasts.lab.dns`), so it finds ``mta-sts.<domain>`` the honest way:
an A record, then a connection to that address. ``PEBBLE_VA_NOSLEEP=1`` (no random wait before
validating), ``PEBBLE_WFE_NONCEREJECT=0`` (no rejected nonces) and ``PEBBLE_AUTHZREUSE=0``
(every order validates again: renewals go through the challenge listener too) keep it fast and
deterministic.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

PEBBLE = shutil.which("pebble")
SKIP_REASON = "Debian's pebble ACME test server is not installed (apt-get install pebble; CI installs it)"


def require_pebble() -> str:
    if PEBBLE is None:
        pytest.skip(SKIP_REASON)
    return PEBBLE


def free_port(address: str = "127.0.0.1") -> int:
    """A port that is free on ``address`` now (for servers that take their port from a file)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@dataclass
class Pebble:
    """A running Pebble: ``directory`` is the ACME directory URL, ``ca_file`` the trustme CA of
    its HTTPS listeners (what ``[acme] ca_file`` names)."""

    process: subprocess.Popen[bytes]
    directory: str
    management: str
    ca_file: Path
    log: Path
    _root: bytes | None = None

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def root_pem(self) -> bytes:
        """The root that issues this run's certificates (Pebble makes new ones at every start;
        kept once fetched, so it is known after Pebble is stopped)."""
        if self._root is None:
            url = f"{self.management}/roots/0"
            with urllib.request.urlopen(url, context=self.context(), timeout=5) as response:
                self._root = bytes(response.read())
        return self._root

    def client_context(self) -> ssl.SSLContext:
        """An ``ssl`` client trusting only Pebble's issuing root."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=self.root_pem().decode("ascii"))
        return context

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_pebble(
    directory: Path, *, http_port: int, dns_server: str, validity: int, tls_port: int | None = None
) -> Pebble:
    """Start Pebble with its files under ``directory``; wait until its directory answers."""
    binary = require_pebble()
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    listener = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / "listener.pem", directory / "listener.key"
    listener.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in listener.cert_chain_pems))
    ca_file = directory / "listener-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    acme_port, management_port = free_port(), free_port()
    config = directory / "pebble-config.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{acme_port}",
                    "managementListenAddress": f"127.0.0.1:{management_port}",
                    "certificate": str(cert),
                    "privateKey": str(key),
                    "httpPort": http_port,
                    "tlsPort": free_port() if tls_port is None else tls_port,  # where tls-alpn-01 is validated
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                    "certificateValidityPeriod": validity,
                }
            }
        )
    )
    log = directory / "pebble.log"
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary, "-config", str(config), "-dnsserver", dns_server],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
        )
    pebble = Pebble(process, f"https://127.0.0.1:{acme_port}/dir", f"https://127.0.0.1:{management_port}", ca_file, log)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"pebble exited ({process.returncode}): {log.read_text(errors='replace')}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(pebble.directory, context=pebble.context(), timeout=2),
        ):
            return pebble
        if time.monotonic() > deadline:
            pebble.stop()
            raise RuntimeError(f"pebble did not answer: {log.read_text(errors='replace')}")
        time.sleep(0.05)
