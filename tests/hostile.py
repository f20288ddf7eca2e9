"""Builders of the hostile input shapes of issue #8, shared by the property tests
(``tests/strategies.py``), the mail tests and the fuzz harnesses (``fuzz/``).

Standard library only, so that the fuzz scripts can import it without Hypothesis or pytest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["REPORT", "REPORT_BODY", "nested_mime"]

REPORT = {
    "organization-name": "Example Sender",
    "date-range": {"start-datetime": "2026-11-28T00:00:00Z", "end-datetime": "2026-11-28T23:59:59Z"},
    "report-id": "r-1",
    "policies": [
        {
            "policy": {"policy-type": "sts", "policy-domain": "example.com"},
            "summary": {"total-successful-session-count": 7, "total-failure-session-count": 1},
            "failure-details": [{"result-type": "starttls-not-supported", "failed-session-count": 1}],
        }
    ],
}
"""A small valid TLSRPT report (RFC 8460 §4), the body every shape wraps."""

REPORT_BODY = json.dumps(REPORT).encode()


def nested_mime(
    kinds: Sequence[bytes], depth: int, inner: bytes, *, encoded: bool = False, closed: bool = True
) -> bytes:
    """An e-mail whose part ``inner`` (its headers, a blank line, its body) sits under ``depth``
    levels of containers, ``kinds`` (``multipart/*``, ``message/rfc822``) repeated down the
    levels; the message itself is the first level. ``encoded`` writes the outer boundary as an
    RFC 2231 parameter (which sends the message to the standard library's reader); ``closed``
    off leaves every multipart without its closing delimiter. Built as two lists joined once,
    so thousands of levels stay cheap."""
    heads: list[bytes] = [b"From: r@sender.example\r\nMIME-Version: 1.0\r\n"]
    tails: list[bytes] = []
    for level in range(depth):
        kind = kinds[level % len(kinds)]
        if kind == b"message/rfc822":
            heads.append(b"Content-Type: message/rfc822\r\n\r\nFrom: f@sender.example\r\n")
            continue
        boundary = b"b%d" % level
        parameter = (b"boundary*=''" if encoded and level == 0 else b"boundary=") + boundary
        heads.append(b"Content-Type: " + kind + b"; " + parameter + b"\r\n\r\n--" + boundary + b"\r\n")
        if closed:
            tails.append(b"\r\n--" + boundary + b"--\r\n")
    return b"".join([*heads, inner, *reversed(tails)])
