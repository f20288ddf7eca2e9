"""Reports inside e-mail (RFC 8460 §5.3): bytes of an RFC 5322 message in, reports out.

No I/O here: the caller reads files, mailboxes or IMAP and hands over bytes. A report part is
recognised by its media type (``application/tlsrpt+gzip``, ``application/tlsrpt+json``, and
what real senders use instead: ``application/tlsrpt``, ``application/gzip``,
``application/json``, ``application/octet-stream``) or by a ``.json``/``.gz`` file name, and
then read by content (gzip magic bytes or JSON), so a mislabelled part still works. Other
parts (Microsoft's HTML-only text, banners, empty trailing parts) are ignored.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import itertools
import quopri
import re
from collections.abc import Iterator
from email.message import Message
from typing import Final, NamedTuple

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


class _Part(NamedTuple):
    """One leaf part, as both readers see it: media type (lower case), file name (lower case),
    and the payload with its transfer encoding undone."""

    content_type: str
    filename: str
    payload: bytes | None


def _filename(part: Message) -> str:
    name = part.get_filename() or part.get_param("name") or ""
    if not name:
        # Microsoft folds ``filename=`` into Content-Type without the ';' before it.
        raw = str(part.get("content-type", ""))
        marker = raw.lower().find("filename=")
        if marker >= 0:
            name = raw[marker + len("filename=") :].strip().strip('"')
    return str(name).strip().lower()


def _is_candidate(ctype: str, name: str) -> bool:
    if ctype in _REPORT_TYPES or ctype.startswith("application/tlsrpt"):
        return True
    return (ctype in _GENERIC_TYPES or ctype.startswith("application/")) and name.endswith(_REPORT_SUFFIXES)


def _stdlib_parts(message: Message) -> Iterator[_Part]:
    """The leaf parts, read by the standard library's e-mail parser (any MIME structure)."""
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        name = _filename(part)
        payload = part.get_payload(decode=True) if _is_candidate(ctype, name) else None
        yield _Part(ctype, name, payload if isinstance(payload, bytes) else None)


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
        fast = _read_reports(_fast_parts(bytes(message)), limits, strict=False)
        if fast:
            return fast
        message = email.message_from_bytes(bytes(message), policy=email.policy.compat32)
    reports = list(_read_reports(_stdlib_parts(message), limits, strict=True) or ())
    if not reports:
        raise MailParseError(
            Problem(
                "mail.no_report",
                "the message holds no TLSRPT report (no application/tlsrpt+gzip or +json part)",
                "Only TLSRPT report messages (RFC 8460 §5.3, multipart/report; report-type=tlsrpt) can be read.",
            )
        )
    return tuple(reports)


def _read_reports(
    parts: Iterator[_Part] | None, limits: ReportLimits, *, strict: bool
) -> tuple[TlsRptReport, ...] | None:
    """The reports in ``parts``. ``strict`` raises on an unreadable report part; otherwise
    (the fast reader) such a message gets ``None`` and goes to the standard library reader,
    which decides and words the error."""
    if parts is None:
        return None
    reports: list[TlsRptReport] = []
    for part in parts:
        if not _is_candidate(part.content_type, part.filename):
            continue
        payload = part.payload
        if payload is None or not looks_like_report(payload):
            if part.content_type.startswith("application/tlsrpt"):
                if not strict:
                    return None
                raise MailParseError(
                    Problem(
                        "mail.report_unreadable",
                        f"the {part.content_type} part holds neither gzip nor JSON",
                        "Attach the report as gzip (application/tlsrpt+gzip) or JSON (application/tlsrpt+json).",
                    )
                )
            continue
        if strict:
            reports.append(parse_report(payload, limits))
        else:
            try:
                reports.append(parse_report(payload, limits))
            except ReportParseError:
                return None
    return tuple(reports)


# --- the fast reader ------------------------------------------------------------------------
# Report e-mails are simple: headers, one multipart level (sometimes two), base64 or plain
# parts. The standard library's parser builds a full object tree and costs about 80% of the
# time to read one. This reader handles that common shape with a few byte searches; anything
# it does not fully understand (encoded parameters, unknown transfer encodings, odd framing,
# deep nesting) makes it give up, and the standard library reads the message instead. So it can
# only be faster, never different: tests/report/test_mail.py compares both on every sample.

_MAX_DEPTH: Final = 4
_PARAM_RE: Final = re.compile(rb';\s*([A-Za-z0-9_.\-*]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


class _GiveUp(Exception):
    """The fast reader met something it leaves to the standard library."""


def _fast_parts(data: bytes) -> Iterator[_Part] | None:
    try:
        return iter(list(_walk(data, 0)))
    except _GiveUp:
        return None


def _split_head(data: bytes) -> tuple[dict[bytes, bytes], bytes]:
    if data[:2] == b"\r\n" or data[:1] == b"\n":  # a part without headers
        return {}, data[2:] if data[:2] == b"\r\n" else data[1:]
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, body = data[:crlf], data[crlf + 4 :]
    elif lf >= 0:
        head, body = data[:lf], data[lf + 2 :]
    else:
        head, body = data, b""
    headers: dict[bytes, bytes] = {}
    current: bytes | None = None  # the header the next folded line belongs to, if it is kept
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                headers[current] += b" " + line.strip()
            continue
        key, colon, value = line.partition(b":")
        if not colon:
            if line.startswith(b"From ") and not headers:
                continue  # an mbox separator line
            raise _GiveUp
        name = key.strip().lower()
        current = None if name in headers else name  # the first occurrence wins, as Message.get does
        if current is not None:
            headers[current] = value.strip()
    return headers, body


def _params(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    media, _, rest = value.partition(b";")
    params: dict[bytes, bytes] = {}
    for match in _PARAM_RE.finditer(b";" + rest):
        key, raw = match.group(1).lower(), match.group(2)
        if key.endswith(b"*") or b"=?" in raw:
            raise _GiveUp  # RFC 2231 or RFC 2047 encoded parameters
        params.setdefault(key, raw[1:-1].replace(b'\\"', b'"') if raw[:1] == b'"' else raw)
    return media.strip().lower(), params


def _walk(data: bytes, depth: int) -> Iterator[_Part]:
    if depth > _MAX_DEPTH:
        raise _GiveUp
    headers, body = _split_head(data)
    media, params = _params(headers.get(b"content-type", b"text/plain"))
    if media.startswith(b"multipart/"):
        boundary = params.get(b"boundary")
        if not boundary:
            raise _GiveUp
        for chunk in _split_multipart(body, boundary):
            yield from _walk(chunk, depth + 1)
        return
    ctype = media.decode("ascii", "replace") if b"/" in media else "text/plain"
    name = params.get(b"filename") or params.get(b"name")
    if name is None:
        _, disposition = _params(headers.get(b"content-disposition", b"x"))
        name = disposition.get(b"filename")
    if name is None:
        raw = headers.get(b"content-type", b"")
        marker = raw.lower().find(b"filename=")
        name = raw[marker + len(b"filename=") :].strip().strip(b'"') if marker >= 0 else b""
    filename = name.decode("utf-8", "replace").strip().lower()
    payload = (
        _decode(body, headers.get(b"content-transfer-encoding", b"7bit")) if _is_candidate(ctype, filename) else None
    )
    yield _Part(ctype, filename, payload)


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    matches = list(delimiter.finditer(body))
    if not matches:
        raise _GiveUp
    chunks = [body[a.end() : b.start()] for a, b in itertools.pairwise(matches)]
    if matches[-1].group(1) is None:  # no closing delimiter (Mail.ru): the last part runs to the end
        chunks.append(body[matches[-1].end() :])
    return chunks


def _decode(body: bytes, encoding: bytes) -> bytes:
    kind = encoding.strip().lower()
    if kind == b"base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error as exc:
            raise _GiveUp from exc
    if kind == b"quoted-printable":
        return quopri.decodestring(body)
    if kind in (b"7bit", b"8bit", b"binary", b""):
        return body
    raise _GiveUp


def parse_any(data: bytes, limits: ReportLimits = DEFAULT_LIMITS) -> tuple[TlsRptReport, ...]:
    """A bare report (gzip or JSON) or an e-mail holding reports: the reports in it."""
    if looks_like_report(data):
        return (parse_report(data, limits),)
    return extract_reports(data, limits)
