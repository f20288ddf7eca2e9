"""Debian's ``knotd`` on loopback as the authoritative server for RFC 2136 tests.

Each run writes its own configuration into a temporary directory: one listener on 127.0.0.1
and a free port, storage, journal and run directory under that directory, one zone loaded from
a zone file, one TSIG key and an ACL that allows dynamic updates signed with that key (and
nothing else). :func:`start_knot` waits until knotd answers the zone's SOA, so a test starts
against a server that is ready. CI installs the ``knot`` package; without ``knotd`` on PATH the
tests that need it are skipped with that reason.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

KNOTD = shutil.which("knotd") or next((p for p in ("/usr/sbin/knotd",) if os.access(p, os.X_OK)), None)
KEY_NAME = "mtasts-apply."
KEY_ALGORITHM = "hmac-sha256"


def need_knotd() -> str:
    if KNOTD is None:
        pytest.skip("knotd is not installed (Debian package knot; CI installs it)")
    return KNOTD


@dataclass(frozen=True, slots=True)
class Knot:
    """A running knotd: where it listens and the TSIG key that may update ``zone``."""

    zone: str
    host: str
    port: int
    secret: bytes  # the raw key; ``secret_file`` holds it base64-encoded, as tsig-keygen writes it
    secret_file: Path

    def txt(self, name: str) -> tuple[str, ...]:
        """The TXT strings at ``name`` as knotd answers them now (each record's strings joined)."""
        query = dns.message.make_query(name, dns.rdatatype.TXT)
        answer = dns.query.tcp(query, self.host, port=self.port, timeout=5)
        return tuple(
            b"".join(rdata.strings).decode()
            for rrset in answer.answer
            for rdata in rrset  # type: ignore[attr-defined]
        )


def _free_port(host: str) -> int:
    """A port free for both TCP and UDP on ``host`` (knotd listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


@contextlib.contextmanager
def start_knot(directory: Path, zone: str, records: Sequence[str]) -> Iterator[Knot]:
    """Run knotd authoritative for ``zone`` (``records``: zone-file lines after the SOA and NS)."""
    binary = need_knotd()
    host = "127.0.0.1"
    port = _free_port(host)
    for sub in ("run", "db", "zones"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    secret = os.urandom(32)
    secret_file = directory / "tsig.secret"
    secret_file.write_text(base64.b64encode(secret).decode() + "\n")
    secret_file.chmod(0o600)
    (directory / "zones" / f"{zone}.zone").write_text(
        f"$ORIGIN {zone}.\n$TTL 300\n"
        f"@ IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n"
        f"@ IN NS ns.{zone}.\n" + "".join(f"{line}\n" for line in records)
    )
    (directory / "knot.conf").write_text(
        f'server:\n    rundir: "{directory / "run"}"\n    listen: {host}@{port}\n\n'
        f'database:\n    storage: "{directory / "db"}"\n\n'
        "log:\n  - target: stderr\n    any: info\n\n"
        f"key:\n  - id: {KEY_NAME}\n    algorithm: {KEY_ALGORITHM}\n    secret: {base64.b64encode(secret).decode()}\n\n"
        f"acl:\n  - id: updates\n    key: {KEY_NAME}\n    action: update\n\n"
        f'template:\n  - id: default\n    storage: "{directory / "zones"}"\n    file: "%s.zone"\n'
        "    zonefile-sync: -1\n    journal-content: changes\n\n"
        f"zone:\n  - domain: {zone}.\n    acl: updates\n"
    )
    log = (directory / "knotd.log").open("wb")
    process = subprocess.Popen([binary, "-c", str(directory / "knot.conf")], stdout=log, stderr=subprocess.STDOUT)
    knot = Knot(zone, host, port, secret, secret_file)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"knotd exited: {(directory / 'knotd.log').read_text()}")
            try:
                query = dns.message.make_query(f"{zone}.", dns.rdatatype.SOA)
                if dns.query.tcp(query, host, port=port, timeout=1).answer:
                    break
            except (OSError, dns.exception.DNSException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"knotd did not answer: {(directory / 'knotd.log').read_text()}")
            time.sleep(0.05)
        yield knot
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
