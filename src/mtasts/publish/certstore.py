"""The ``[acme]`` storage directory: issued certificates and their keys, the ACME account key.

Layout (directories ``0700``, private keys ``0600``, written before anything points at them)::

    <storage>/certificates/mta-sts.example.com/current -> 20261202T020000Z-3f2a9c1e
    <storage>/certificates/mta-sts.example.com/20261202T020000Z-3f2a9c1e/fullchain.pem
    <storage>/certificates/mta-sts.example.com/20261202T020000Z-3f2a9c1e/privkey.pem
    <storage>/accounts/<sha256 of the directory URL, 16 hex>/key.pem

Each issued certificate gets its own directory, never changed afterwards, and ``current`` is a
symbolic link replaced in one ``rename``: whoever reads a pair reads a matching pair (the policy
host resolves ``current`` when it builds a snapshot, so its files stay put while it serves
them, and a renewal cannot hand a handshake the new key with the old chain). The two newest
certificates are kept, the older ones removed. Only the standard library and ``cryptography``
(to read dates): the snapshot builder uses this module without loading the ACME client.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

__all__ = ["CertificateStore", "StoredCertificate", "write_private"]

_CURRENT = "current"
_CHAIN = "fullchain.pem"
_KEY = "privkey.pem"
_KEEP = 2


@dataclass(frozen=True, slots=True)
class StoredCertificate:
    """One issued certificate's files (``cert``: leaf then chain; ``key``: its private key)."""

    host: str
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CertificateDates:
    """What the renewal decision needs from a certificate."""

    not_before: datetime
    not_after: datetime
    serial: int


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` created with ``mode`` (never readable by others, not even for an
    instant), flushed to disk, replacing ``path`` in one rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)  # the umask may have taken bits away from O_CREAT's mode
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


class CertificateStore:
    """The certificates under ``<root>/certificates``; constructing it touches nothing."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _directory(self, host: str) -> Path:
        return self.root / "certificates" / host

    def account_directory(self, directory_url: str) -> Path:
        """Where the account key for the CA at ``directory_url`` is kept (one account per CA)."""
        return self.root / "accounts" / hashlib.sha256(directory_url.encode()).hexdigest()[:16]

    def current(self, host: str) -> StoredCertificate | None:
        """The files of the current certificate of ``host`` (``current`` resolved), or ``None``."""
        link = self._directory(host) / _CURRENT
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        cert, key = target / _CHAIN, target / _KEY
        if not (cert.is_file() and key.is_file()):
            return None
        return StoredCertificate(host, cert, key)

    def dates(self, host: str) -> CertificateDates | None:
        """The validity and serial of the current certificate of ``host``; ``None`` when there is
        none or it cannot be read (then a new one is ordered)."""
        stored = self.current(host)
        if stored is None:
            return None
        try:
            leaf = x509.load_pem_x509_certificate(stored.cert.read_bytes())
        except (OSError, ValueError):
            return None
        return CertificateDates(leaf.not_valid_before_utc, leaf.not_valid_after_utc, leaf.serial_number)

    def save(self, host: str, chain_pem: bytes, key_pem: bytes) -> StoredCertificate:
        """Store a newly issued certificate of ``host`` and make it current; returns its files."""
        leaf = x509.load_pem_x509_certificate(chain_pem)
        stamp = leaf.not_valid_before_utc.strftime("%Y%m%dT%H%M%SZ")
        name = f"{stamp}-{leaf.serial_number:x}"[:64]
        directory = self._directory(host)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for parent in (self.root, self.root / "certificates", directory):
            os.chmod(parent, 0o700)
        target = directory / name
        target.mkdir(mode=0o700, exist_ok=True)
        write_private(target / _KEY, key_pem, 0o600)
        write_private(target / _CHAIN, chain_pem, 0o644)
        link = directory / f".{_CURRENT}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(name)
        os.replace(link, directory / _CURRENT)
        self._prune(directory, name)
        return StoredCertificate(host, target / _CHAIN, target / _KEY)

    def _prune(self, directory: Path, newest: str) -> None:
        """Keep the newest certificates (the one just saved and the one it replaces, which a
        host may still be serving until its reload); remove older ones."""
        generations = sorted(
            (p for p in directory.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")),
            key=lambda p: (p.stat().st_mtime_ns, p.name),  # the order they were saved in
        )
        keep = {newest, *(p.name for p in generations[-_KEEP:])}
        for path in generations:
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
