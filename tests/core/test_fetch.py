"""The fetch rules on a response head (the fetcher itself is tested over the network in
tests/net/test_fetch_vectors.py)."""

from __future__ import annotations

import pytest

from mtasts.core.fetch import FetchFailureKind, check_response_head, is_text_plain, policy_url


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text/plain", True),
        ("TEXT/PLAIN; charset=US-ASCII", True),
        ("text/plain ; charset=utf-8", True),
        ("text/plain+", False),
        ("text/plainx", False),
        ("text/html", False),
        ("", False),
        (None, False),
    ],
)
def test_is_text_plain(value: str | None, expected: bool) -> None:
    assert is_text_plain(value) is expected


@pytest.mark.parametrize(
    ("status", "headers", "kind"),
    [
        (200, {"content-type": "text/plain"}, None),
        (301, {"location": "/x", "content-type": "text/plain"}, FetchFailureKind.REDIRECT),
        (304, {}, FetchFailureKind.REDIRECT),
        (203, {"content-type": "text/plain"}, FetchFailureKind.HTTP_STATUS),
        (200, {}, FetchFailureKind.CONTENT_TYPE),
        (200, {"content-type": "text/plain", "content-length": "65537"}, FetchFailureKind.TOO_LARGE),
        (200, {"content-type": "text/plain", "content-length": "65536"}, None),
    ],
)
def test_check_response_head(status: int, headers: dict[str, str], kind: FetchFailureKind | None) -> None:
    verdict = check_response_head(status, headers)
    assert (None if verdict is None else verdict[0]) is kind


def test_policy_url() -> None:
    assert policy_url("example.com") == "https://mta-sts.example.com/.well-known/mta-sts.txt"
    assert policy_url("example.com", 8443) == "https://mta-sts.example.com:8443/.well-known/mta-sts.txt"
