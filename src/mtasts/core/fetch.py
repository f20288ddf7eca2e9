"""Rules for the HTTPS policy fetch (RFC 8461 §3.2, §3.3), without the network.

The fetcher asks these functions what a response head means; decisions where the RFC leaves
room are in docs/conformance.md ("Fetching the policy").
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from mtasts.core.untrusted import printable

__all__ = [
    "MAX_POLICY_BYTES",
    "POLICY_PATH",
    "FetchFailureKind",
    "check_response_head",
    "is_text_plain",
    "policy_host",
    "policy_url",
]

MAX_POLICY_BYTES = 64 * 1024  # §3.3: "a maximum of 64 KiB"; larger bodies are refused, not truncated
POLICY_PATH = "/.well-known/mta-sts.txt"


class FetchFailureKind(StrEnum):
    """Why no policy came back; each maps to one inspector finding."""

    UNRESOLVABLE = "unresolvable"
    LOOKUP_FAILED = "lookup-failed"
    CONNECT = "connect"
    TLS_CERTIFICATE = "tls-certificate"
    TLS = "tls"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http-status"
    REDIRECT = "redirect"
    CONTENT_TYPE = "content-type"
    TOO_LARGE = "too-large"
    PROTOCOL = "protocol"
    SYNTAX = "syntax"


def policy_host(domain: str) -> str:
    return f"mta-sts.{domain}"


def policy_url(domain: str, port: int = 443) -> str:
    netloc = policy_host(domain) if port == 443 else f"{policy_host(domain)}:{port}"
    return f"https://{netloc}{POLICY_PATH}"


def is_text_plain(content_type: str | None) -> bool:
    """Whether a Content-Type names the media type ``text/plain``: case-insensitive,
    parameters ignored (RFC 2045 §5.1), nothing appended to the subtype."""
    if content_type is None:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "text/plain"


def check_response_head(status: int, headers: Mapping[str, str]) -> tuple[FetchFailureKind, str] | None:
    """What the status line and headers alone say: ``None`` when the body may be read.

    ``headers`` has lower case names. Only 200 is a policy (§3.3: other 2xx, 3xx, 304 are
    failures); redirects are never followed; the media type must be text/plain; a declared
    length above the cap is refused before reading.
    """
    if 300 <= status < 400:
        location = headers.get("location", "")
        where = f" to {printable(location)}" if location else ""  # the server's text: h11 lets an ESC through
        return FetchFailureKind.REDIRECT, f"HTTP {status} redirect{where}; redirects must not be followed"
    if status != 200:
        return FetchFailureKind.HTTP_STATUS, f"HTTP status {status}; only 200 is a policy"
    content_type = headers.get("content-type")
    if not is_text_plain(content_type):
        shown = "no Content-Type" if content_type is None else f"Content-Type {content_type!r}"
        return FetchFailureKind.CONTENT_TYPE, f"{shown}; the policy must be served as text/plain"
    length = headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_POLICY_BYTES:
        return FetchFailureKind.TOO_LARGE, f"Content-Length {int(length)} is above the {MAX_POLICY_BYTES}-byte limit"
    return None
