"""Reports inside e-mail (RFC 8460 §5.3): bytes of an RFC 5322 message in, reports out.

No I/O here: the caller reads files, mailboxes or IMAP and hands over bytes. A report part is
recognised by its media type (``application/tlsrpt+gzip``, ``application/tlsrpt+json``, and
what real senders use instead: ``application/tlsrpt``, ``application/gzip``,
``application/json``, ``application/octet-stream``) or by a ``.json``/``.gz`` file name, and
then read by content (gzip magic bytes or JSON), so a mislabelled part still works. Other
parts (Microsoft's HTML-only text, banners, empty trailing parts) are ignored.
"""

from __future__ import annotations

import email
import email.policy
from email.message import Message
from typing import Final

from mtasts.core.problems import Problem
from mtasts.core.tlsrpt_report import (
    DEFAULT_LIMITS,
    ReportLimits,
    ReportParseError,
    TlsRptReport,
    is_gzip,
    parse_report,
)

__all__ = [
    "MAX_MESSAGE",
    "MailParseError",
    "extract_reports",
    "looks_like_report",
    "parse_any",
]

MAX_MESSAGE: Final = 64 * 1024 * 1024

_REPORT_TYPES: Final = frozenset(
    {
        "application/tlsrpt+gzip",
        "application/tlsrpt+json",
        "application/tlsrpt",
        "application/gzip",
        "application/x-gzip",
        "application/json",
    }
)
_GENERIC_TYPES: Final = frozenset({"application/octet-stream", "application/x-zip-compressed", "text/plain"})
_REPORT_SUFFIXES: Final = (".json", ".json.gz", ".gz", ".json.gzip")


class MailParseError(ReportParseError):
    """A message holds no readable report (code ``mail.no_report``, ``mail.too_large``)."""


def looks_like_report(data: bytes) -> bool:
    """True for a bare report body (gzip or JSON), False for anything else (an e-mail, say)."""
    if is_gzip(data):
        return True
    head = data[:64].lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head[:1] == b"{"


def _filename(part: Message) -> str:
    name = part.get_filename() or part.get_param("name") or ""
    if not name:
        # Microsoft folds ``filename=`` into Content-Type without the ';' before it.
        raw = str(part.get("content-type", ""))
        marker = raw.lower().find("filename=")
        if marker >= 0:
            name = raw[marker + len("filename=") :].strip().strip('"')
    return str(name).strip().lower()


def _is_candidate(part: Message) -> bool:
    ctype = part.get_content_type()
    if ctype in _REPORT_TYPES or ctype.startswith("application/tlsrpt"):
        return True
    name = _filename(part)
    return (ctype in _GENERIC_TYPES or ctype.startswith("application/")) and name.endswith(_REPORT_SUFFIXES)


def extract_reports(
    message: bytes | Message,
    limits: ReportLimits = DEFAULT_LIMITS,
    *,
    max_message: int = MAX_MESSAGE,
) -> tuple[TlsRptReport, ...]:
    """Every report attached to ``message``; raise :class:`ReportParseError` when one of them is
    unreadable and :class:`MailParseError` when there is none."""
    if isinstance(message, bytes | bytearray):
        if len(message) > max_message:
            raise MailParseError(
                Problem(
                    "mail.too_large",
                    f"the message is larger than {max_message} bytes",
                    "Report e-mails are small; raise the limit only for a trusted source.",
                )
            )
        message = email.message_from_bytes(bytes(message), policy=email.policy.compat32)
    reports: list[TlsRptReport] = []
    for part in message.walk():
        if part.is_multipart() or not _is_candidate(part):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not looks_like_report(payload):
            if part.get_content_type().startswith("application/tlsrpt"):
                raise MailParseError(
                    Problem(
                        "mail.report_unreadable",
                        f"the {part.get_content_type()} part holds neither gzip nor JSON",
                        "Attach the report as gzip (application/tlsrpt+gzip) or JSON (application/tlsrpt+json).",
                    )
                )
            continue
        reports.append(parse_report(payload, limits))
    if not reports:
        raise MailParseError(
            Problem(
                "mail.no_report",
                "the message holds no TLSRPT report (no application/tlsrpt+gzip or +json part)",
                "Only TLSRPT report messages (RFC 8460 §5.3, multipart/report; report-type=tlsrpt) can be read.",
            )
        )
    return tuple(reports)


def parse_any(data: bytes, limits: ReportLimits = DEFAULT_LIMITS) -> tuple[TlsRptReport, ...]:
    """A bare report (gzip or JSON) or an e-mail holding reports: the reports in it."""
    if looks_like_report(data):
        return (parse_report(data, limits),)
    return extract_reports(data, limits)
