"""``--ca-file``, checked once before anything runs, the same way by every command that takes it."""

from __future__ import annotations

import ssl
from pathlib import Path

from mtasts.cli.exitcodes import fail

__all__ = ["check_ca_file"]


def check_ca_file(path: Path) -> None:
    """A CA file that cannot be used is the user's setting, said once before anything is
    checked: otherwise every policy host and MX would get a certificate finding for it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"--ca-file {path}: cannot read it: {exc.strerror or exc}")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        fail(f"--ca-file {path}: not a PEM file of CA certificates (no '-----BEGIN CERTIFICATE-----' line)")
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        fail(f"--ca-file {path}: the certificates in it cannot be loaded: {getattr(exc, 'reason', None) or exc}")
