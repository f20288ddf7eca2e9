"""Reports inside e-mail: the RFC form and the variants real senders use."""

from __future__ import annotations

import base64
import email
import email.policy
import gzip
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from mtasts.core.tlsrpt_report import ReportParseError, parse_report
from mtasts.report.mail import (
    MAX_HEADER,
    MAX_MIME_DEPTH,
    MAX_MIME_FIELD,
    MAX_MIME_PARAMS,
    MailParseError,
    extract_reports,
    looks_like_report,
    parse_any,
)
from tests.conftest import TLSRPT_SAMPLES, require_shared
from tests.hostile import nested_mime

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


# --- hostile messages of issue #8: each is a MailParseError with a code, found fast ------------

ATTACHMENT = (
    b"Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="r.json.gz"\r\n\r\n' + base64.encodebytes(gzip.compress(BODY))
)


def nested(depth: int, *, encoded: bool = False, kind: bytes = b"multipart/mixed") -> bytes:
    """A report under ``depth`` levels of ``kind`` (the message itself is the first level).
    ``encoded`` writes the outer boundary as an RFC 2231 parameter, which sends the message to
    the standard library's reader."""
    return nested_mime([kind], depth, ATTACHMENT, encoded=encoded)


@pytest.mark.parametrize("encoded", [False, True], ids=["fast reader", "standard library"])
@pytest.mark.parametrize("kind", [b"multipart/mixed", b"multipart/digest", b"message/rfc822"])
def test_nesting_up_to_the_cap_is_read_and_beyond_it_refused(encoded: bool, kind: bytes) -> None:
    (report,) = extract_reports(nested(MAX_MIME_DEPTH, encoded=encoded, kind=kind))
    assert report == parse_report(BODY)
    with pytest.raises(MailParseError) as caught:
        extract_reports(nested(MAX_MIME_DEPTH + 1, encoded=encoded, kind=kind))
    assert caught.value.code == "mail.mime.depth"


@pytest.mark.parametrize("depth", [1_000, 3_000])
@pytest.mark.parametrize("encoded", [False, True], ids=["fast reader", "standard library"])
def test_a_thousand_nested_multiparts_are_refused_not_a_recursion_error(depth: int, encoded: bool) -> None:
    """~1,000 levels raised RecursionError out of the standard library's parser."""
    with pytest.raises(MailParseError) as caught:
        parse_any(nested(depth, encoded=encoded))
    assert caught.value.code == "mail.mime.depth"
    assert str(MAX_MIME_DEPTH) in caught.value.message


def test_unclosed_nesting_is_refused_too() -> None:
    """The shape of the report in the issue: delimiters opened, never closed."""
    data = b"From: a@b\r\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(1000)
    )
    with pytest.raises(MailParseError) as caught:
        parse_any(data + b"Content-Type: text/plain\r\n\r\nhi\r\n")
    assert caught.value.code == "mail.mime.depth"


def test_standard_library_reader_walks_a_parsed_message_with_the_cap() -> None:
    parsed = email.message_from_bytes(nested(MAX_MIME_DEPTH + 1), policy=email.policy.compat32)
    with pytest.raises(MailParseError) as caught:
        extract_reports(parsed)
    assert caught.value.code == "mail.mime.depth"
    assert len(extract_reports(email.message_from_bytes(nested(3), policy=email.policy.compat32))) == 1


def folded(lines: int, *, where: str = "message", fold: bytes = b"\r\n y") -> bytes:
    field = b"X-Folded: x" + fold * lines + b"\r\n"
    top = b"From: r@sender.example\r\n" + (field if where == "message" else b"")
    part = ATTACHMENT.replace(b"Content-Transfer-Encoding", field + b"Content-Transfer-Encoding", 1)
    return (
        top
        + b"Content-Type: multipart/report; report-type=tlsrpt; boundary=B\r\n\r\n--B\r\n"
        + (part if where == "part" else ATTACHMENT)
        + b"\r\n--B--\r\n"
    )


@pytest.mark.parametrize("where", ["message", "part"])
@pytest.mark.parametrize("fold", [b"\r\n y", b"\n\ty", b"\r y"])
def test_a_header_folded_over_a_million_lines_is_refused(where: str, fold: bytes) -> None:
    """One header folded over 1.6 M lines took 51 s (each folded line re-copied the header)."""
    with pytest.raises(MailParseError) as caught:
        parse_any(folded(1_500_000, where=where, fold=fold))
    assert caught.value.code == "mail.header.too_large"


@pytest.mark.parametrize("where", ["message", "part"])
def test_long_headers_below_the_cap_are_read_by_both_readers(where: str) -> None:
    data = folded((MAX_HEADER - 1000) // 4, where=where)
    fast, slow = _both_readers(data)
    assert fast
    assert _dicts(fast) == _dicts(slow)
    (report,) = extract_reports(data)
    assert report == parse_report(BODY)


def _forced_to_the_standard_library(field: bytes) -> bytes:
    """A message the fast reader gives up on (RFC 2231 boundary), with ``field`` in its part."""
    return (
        b"From: r@sender.example\r\nContent-Type: multipart/report; boundary*=''B\r\n\r\n--B\r\n"
        + field
        + b"\r\n"
        + ATTACHMENT
        + b"\r\n--B--\r\n"
    )


def test_fields_the_standard_library_would_parse_slowly_are_refused() -> None:
    """Its parameter parser rescans a field once per ';' (20,000 took over a second)."""
    params = b"Content-Disposition: attachment" + b"; a=b" * (MAX_MIME_PARAMS + 1)
    with pytest.raises(MailParseError) as caught:
        extract_reports(_forced_to_the_standard_library(params))
    assert caught.value.code == "mail.header.params"
    quoted = b'Content-Disposition: attachment; filename="' + b";" * 20_000 + b'"'
    with pytest.raises(MailParseError) as caught:
        extract_reports(_forced_to_the_standard_library(quoted))
    assert caught.value.code == "mail.header.too_large"
    long_type = b"Content-Type: application/tlsrpt+gzip; x=" + b"y" * MAX_MIME_FIELD
    with pytest.raises(MailParseError) as caught:
        extract_reports(_forced_to_the_standard_library(long_type))
    assert caught.value.code == "mail.header.too_large"
    (report,) = extract_reports(_forced_to_the_standard_library(b"X-Ok: fine; a=b; c=d"))
    assert report == parse_report(BODY)
    # other long fields cost that parser linear time: they are read
    (report,) = extract_reports(_forced_to_the_standard_library(b"X-Long: x" + b"\r\n y" * 100_000))
    assert report == parse_report(BODY)


def test_a_forwarded_report_is_read_by_the_fast_reader_as_by_the_standard_library() -> None:
    inner = message(("application/tlsrpt+gzip", gzip.compress(BODY), "r.json.gz"))
    outer = (
        b"From: admin@example.com\r\nContent-Type: multipart/mixed; boundary=F\r\n\r\n--F\r\n"
        b"Content-Type: text/plain\r\n\r\nFYI\r\n--F\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--F--\r\n"
    )
    fast, slow = _both_readers(outer)
    assert fast
    assert _dicts(fast) == _dicts(slow)


# --- the same shapes through `mtasts report ingest` ------------------------------------------


HOSTILE_FILES = {
    "members.json.gz": (lambda: gzip.compress(b"", mtime=0) * 200_000, "report.gzip.members"),
    "date.json": (
        lambda: json.dumps(
            {
                **REPORT,
                "date-range": {"start-datetime": "2026-11-28T00:00:00Z", "end-datetime": "9999-12-31T23:59:59-23:59"},
            }
        ).encode(),
        "report.date.range",
    ),
    "count.json": (
        lambda: BODY.replace(
            b'"total-successful-session-count": 7', b'"total-successful-session-count": 1000000000001'
        ),
        "report.count.range",
    ),
    "nested.eml": (lambda: nested(3_000), "mail.mime.depth"),
    "nested-stdlib.eml": (lambda: nested(3_000, encoded=True), "mail.mime.depth"),
    "folded.eml": (lambda: folded(1_500_000), "mail.header.too_large"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_report_ingest_refuses_each_hostile_file_with_its_code(name: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mtasts.cli.main import app

    make, code = HOSTILE_FILES[name]
    (tmp_path / name).write_bytes(make())
    (tmp_path / "good.json").write_bytes(BODY)
    result = CliRunner().invoke(app, ["report", "ingest", "--json", "--db", str(tmp_path / "r.sqlite3"), str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert code in result.stdout
    assert json.loads(result.stdout)["stored"] == 1  # the good report next to it is stored


def test_a_charset_with_a_nul_is_a_parse_error_not_a_value_error() -> None:
    # found by fuzz/fuzz_parsers.py mail: the standard library's get_boundary raises ValueError
    # ("embedded null character") on an RFC 2231 boundary whose charset holds NUL bytes
    message = (
        b"From: r@sender.example\r\nContent-Type: multipart/mixed; boundary*=" + b"\x00" * 8 + b"''b0\r\n\r\n"
        b"--b0\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--b0--\r\n"
    )
    with pytest.raises(MailParseError) as caught:
        parse_any(message)
    assert caught.value.code == "mail.malformed"
