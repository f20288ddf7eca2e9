"""Socketmap keys: only a plain mail domain is worth a lookup."""

from __future__ import annotations

import pytest

from mtasts.resolver.keys import Key, KeyKind, classify_key


@pytest.mark.parametrize(
    ("raw", "domain"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("mail.sub.example.co.uk", "mail.sub.example.co.uk"),
    ],
)
def test_domains_are_canonical(raw: str, domain: str) -> None:
    assert classify_key(raw) == Key(KeyKind.DOMAIN, domain)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (".example.com", KeyKind.PARENT_PROBE),
        (".com", KeyKind.PARENT_PROBE),
        ("192.0.2.1", KeyKind.ADDRESS),
        ("2001:db8::1", KeyKind.ADDRESS),
        ("[mx.example.com]", KeyKind.BRACKETED),
        ("[mx.example.com]:587", KeyKind.BRACKETED),
        ("[192.0.2.1]", KeyKind.BRACKETED),
        ("mx.example.com:587", KeyKind.HOST_PORT),
        ("localhost", KeyKind.SINGLE_LABEL),
        ("", KeyKind.INVALID),
        ("exa mple.com", KeyKind.INVALID),
        ("-bad.example.com", KeyKind.INVALID),
        ("a..b", KeyKind.INVALID),
        ("xn--zz.example", KeyKind.INVALID),
        ("x" * 64 + ".example", KeyKind.INVALID),
    ],
)
def test_other_keys_have_no_domain(raw: str, kind: KeyKind) -> None:
    key = classify_key(raw)
    assert key.kind is kind
    assert key.domain is None
