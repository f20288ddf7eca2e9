"""Reports inside e-mail: the RFC form and the variants real senders use."""

from __future__ import annotations

import gzip
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mtasts.core.tlsrpt_report import ReportParseError, parse_report
from mtasts.report.mail import MailParseError, extract_reports, looks_like_report, parse_any
from tests.conftest import TLSRPT_SAMPLES, require_shared

REPORT: dict[str, Any] = {
    "organization-name": "Example Sender",
    "date-range": {"start-datetime": "2026-11-28T00:00:00Z", "end-datetime": "2026-11-28T23:59:59Z"},
    "contact-info": "tlsrpt@sender.example",
    "report-id": "r-1",
    "policies": [
        {
            "policy": {"policy-type": "sts", "policy-domain": "example.com"},
            "summary": {"total-successful-session-count": 7, "total-failure-session-count": 1},
            "failure-details": [{"result-type": "starttls-not-supported", "failed-session-count": 1}],
        }
    ],
}
BODY = json.dumps(REPORT).encode()


def message(*parts: tuple[str, bytes, str | None], html_only: bool = False) -> bytes:
    """A report message with the given attachments (media type, bytes, file name)."""
    msg = EmailMessage()
    msg["From"] = "noreply-smtp-tls-reporting@sender.example"
    msg["To"] = "tlsrpt@example.com"
    msg["Subject"] = "Report Domain: example.com Submitter: sender.example Report-ID: <r-1>"
    if html_only:
        msg.set_content("<p>This is a TLS report.</p>", subtype="html")
    else:
        msg.set_content("This is an aggregate TLS report from sender.example")
    for ctype, data, name in parts:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


@pytest.mark.parametrize(
    ("ctype", "data", "name"),
    [
        ("application/tlsrpt+gzip", gzip.compress(BODY), "sender.example!example.com!1!2.json.gz"),
        ("application/tlsrpt+json", BODY, "sender.example!example.com!1!2.json"),
        ("application/tlsrpt", BODY, "report.json"),
        ("application/gzip", gzip.compress(BODY), "report.json.gz"),
        ("application/json", BODY, None),
        ("application/octet-stream", gzip.compress(BODY), "report.json.gz"),
    ],
)
def test_report_part_variants(ctype: str, data: bytes, name: str | None) -> None:
    (report,) = extract_reports(message((ctype, data, name)))
    assert report == parse_report(BODY)
    assert report.raw == BODY


def test_html_only_text_and_parts_after_the_attachment_are_ignored() -> None:
    raw = message(
        ("application/tlsrpt+gzip", gzip.compress(BODY), "r.json.gz"),
        ("text/plain", b"", None),
        ("image/png", b"\x89PNG", "logo.png"),
        html_only=True,
    )
    (report,) = extract_reports(raw)
    assert report.policies[0].total_successful == 7


def test_a_message_may_carry_several_reports() -> None:
    other = json.dumps({**REPORT, "report-id": "r-2"}).encode()
    raw = message(
        ("application/tlsrpt+json", BODY, "a.json"), ("application/tlsrpt+gzip", gzip.compress(other), "b.json.gz")
    )
    assert [r.report_id for r in extract_reports(raw)] == ["r-1", "r-2"]


def test_a_message_without_a_report_is_refused() -> None:
    with pytest.raises(MailParseError) as caught:
        extract_reports(message(("application/pdf", b"%PDF-1.4", "invoice.pdf")))
    assert caught.value.code == "mail.no_report"


def test_a_tlsrpt_part_with_garbage_is_refused() -> None:
    with pytest.raises(MailParseError) as caught:
        extract_reports(message(("application/tlsrpt+gzip", b"not gzip at all", "r.json.gz")))
    assert caught.value.code == "mail.report_unreadable"


def test_a_broken_report_in_a_message_gives_the_report_error() -> None:
    packed = gzip.compress(BODY)
    with pytest.raises(ReportParseError) as caught:
        extract_reports(message(("application/tlsrpt+gzip", packed[:-12], "r.json.gz")))
    assert caught.value.code == "report.gzip.truncated"


def test_message_size_is_capped() -> None:
    with pytest.raises(MailParseError) as caught:
        extract_reports(message(("application/tlsrpt+json", BODY, "r.json")), max_message=100)
    assert caught.value.code == "mail.too_large"


def test_parse_any_tells_bodies_from_messages() -> None:
    assert looks_like_report(BODY)
    assert looks_like_report(gzip.compress(BODY))
    assert not looks_like_report(message(("application/tlsrpt+json", BODY, "r.json")))
    assert parse_any(gzip.compress(BODY)) == parse_any(message(("application/tlsrpt+json", BODY, "r.json")))


def test_microsoft_filename_folded_into_content_type() -> None:
    require_shared(TLSRPT_SAMPLES)
    raw = (TLSRPT_SAMPLES / "microsoft" / "tlsrpt-rs__microsoft1.eml").read_bytes()
    (report,) = extract_reports(raw)
    assert report.organization_name == "Microsoft Corporation"
    tlsa = [p for p in report.policies if p.policy_type.value == "tlsa"]
    assert tlsa
    assert len(tlsa[0].policy_string) == 13
    assert all(record.startswith("2 1 1 ") for record in tlsa[0].policy_string)


def test_every_sample_message_yields_its_report() -> None:
    require_shared(TLSRPT_SAMPLES)
    messages = [p for p in TLSRPT_SAMPLES.rglob("*") if p.suffix in {".eml", ".elm"} and "negative" not in p.parts]
    assert len(messages) >= 13
    for path in messages:
        assert len(extract_reports(Path(path).read_bytes())) == 1, path


# --- the fast reader agrees with the standard library's parser --------------------------------


def _both_readers(data: bytes) -> tuple[object, object]:
    """What the fast reader and the standard library reader each make of ``data``."""
    import email
    import email.policy

    from mtasts.core.tlsrpt_report import DEFAULT_LIMITS
    from mtasts.report import mail

    fast = mail._read_reports(mail._fast_parts(data), DEFAULT_LIMITS, strict=False)
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    slow = mail._read_reports(mail._stdlib_parts(parsed), DEFAULT_LIMITS, strict=True)
    return fast, slow


def _dicts(reports: object) -> list[dict[str, Any]]:
    assert isinstance(reports, tuple)
    return [report.to_dict() for report in reports]


def test_fast_reader_reads_every_sample_e_mail_as_the_standard_library_does() -> None:
    require_shared(TLSRPT_SAMPLES)
    samples = sorted(
        p for p in TLSRPT_SAMPLES.rglob("*") if p.suffix in (".eml", ".elm") and p.parent.name != "negative"
    )
    assert samples
    for path in samples:
        fast, slow = _both_readers(path.read_bytes())
        assert fast, f"the fast reader gave up on {path.name}"
        assert _dicts(fast) == _dicts(slow), path.name


def test_fast_reader_nested_multipart_and_quoted_printable() -> None:
    data = (
        b"From: r@sender.example\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\npreamble\r\n"
        b'--outer\r\nContent-Type: multipart/alternative; boundary="in ner"\r\n\r\n'
        b"--in ner\r\nContent-Type: text/plain\r\n\r\nhello\r\n--in ner\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
        b"--in ner--\r\n"
        b"--outer\r\nContent-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + BODY.replace(b"=", b"=3D")
        + b"\r\n--outer--\r\nepilogue\r\n"
    )
    fast, slow = _both_readers(data)
    assert fast
    assert _dicts(fast) == _dicts(slow)
    assert fast[0].organization_name == "Example Sender"  # type: ignore[index]


def test_fast_reader_leaves_encoded_parameters_to_the_standard_library() -> None:
    data = message(("application/octet-stream", gzip.compress(BODY), "report.json.gz")).replace(
        b'filename="report.json.gz"', b"filename*=utf-8''report.json.gz"
    )
    fast, slow = _both_readers(data)
    assert fast is None  # gave up: RFC 2231 parameter
    assert len(extract_reports(data)) == 1 == len(slow)  # type: ignore[arg-type]


def test_unreadable_report_part_is_decided_by_the_standard_library() -> None:
    from mtasts.core.tlsrpt_report import DEFAULT_LIMITS
    from mtasts.report import mail

    data = message(("application/tlsrpt+gzip", b"not gzip and not json", "r.json.gz"))
    assert mail._read_reports(mail._fast_parts(data), DEFAULT_LIMITS, strict=False) is None
    with pytest.raises(MailParseError) as caught:
        extract_reports(data)
    assert caught.value.code == "mail.report_unreadable"
