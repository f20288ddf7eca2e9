"""``_smtp._tls`` records beyond the shared vectors."""

from __future__ import annotations

import pytest

import mtasts
from mtasts import TlsRptRecord, TlsRptRecordParseError


def test_several_uris_and_extensions() -> None:
    record = mtasts.parse_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.com/x?y=1; ext=1")
    assert record.rua == ("mailto:a@example.com", "https://r.example.com/x?y=1")
    assert dict(record.extensions) == {"ext": "1"}
    assert mtasts.parse_tlsrpt_record(record.to_text()) == record


def test_bad_uris_are_located() -> None:
    _, problems = mtasts.lint_tlsrpt_record("v=TLSRPTv1; rua=mailto:a@example.com,ftp://x.example,mailto:nobody")
    assert [(p.code, p.column) for p in problems] == [("tlsrpt.rua.scheme", 38), ("tlsrpt.rua.uri", 54)]


@pytest.mark.parametrize(
    "uri",
    ["mailto:@example.com", "mailto:a@", "mailto:a@exa_mple.com", "https://", "https:///path", "https://a b"],
)
def test_invalid_uris(uri: str) -> None:
    with pytest.raises(TlsRptRecordParseError):
        mtasts.parse_tlsrpt_record(f"v=TLSRPTv1; rua={uri}")


def test_rrset_selection() -> None:
    record = mtasts.select_tlsrpt_record([["v=TLSRPTv1; rua=mailto:a@", "example.com"], ["v=spf1 -all"]])
    assert record.rua == ("mailto:a@example.com",)
    with pytest.raises(TlsRptRecordParseError) as caught:
        mtasts.select_tlsrpt_record(["v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"])
    assert caught.value.code == "tlsrpt.rrset.multiple"
    with pytest.raises(TlsRptRecordParseError) as missing:
        mtasts.select_tlsrpt_record([])
    assert missing.value.code == "tlsrpt.rrset.none"


def test_constructor_validates() -> None:
    with pytest.raises(TlsRptRecordParseError):
        TlsRptRecord(rua=())
    with pytest.raises(TlsRptRecordParseError):
        TlsRptRecord(rua=("http://insecure.example",))
