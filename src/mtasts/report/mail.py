"""Reports inside e-mail (RFC 8460 §5.3): bytes of an RFC 5322 message in, reports out.

No I/O here: the caller reads files, mailboxes or IMAP and hands over bytes. A report part is
recognised by its media type (``application/tlsrpt+gzip``, ``application/tlsrpt+json``, and
what real senders use instead: ``application/tlsrpt``, ``application/gzip``,
``application/json``, ``application/octet-stream``) or by a ``.json``/``.gz`` file name, and
then read by content (gzip magic bytes or JSON), so a mislabelled part still works. Other
parts (Microsoft's HTML-only text, banners, empty trailing parts) are ignored.

A message is untrusted input, so its shape is bounded before any parser walks it, and every
limit is a :class:`MailParseError` with its own code:

=========================  =====================================================================
code                       refused when
=========================  =====================================================================
``mail.too_large``         the message is larger than :data:`MAX_MESSAGE` (64 MiB)
``mail.header.too_large``  the message's header section is larger than :data:`MAX_HEADER`
                           (64 KiB), or a ``Content-Type``/``Content-Disposition`` field is
                           longer than :data:`MAX_MIME_FIELD` (8 KiB)
``mail.header.params``     such a field has more than :data:`MAX_MIME_PARAMS` (32) parameters
``mail.mime.depth``        MIME parts nest deeper than :data:`MAX_MIME_DEPTH` (32) levels of
                           ``multipart/*`` and ``message/rfc822``, or (for the standard
                           library's reader) the message declares more than that many of them
=========================  =====================================================================

Why each: the standard library's parser recurses once per nesting level (about 1,000 levels
raise ``RecursionError``, and its cost grows with the square of the depth), and its parameter
parser rescans a field once per ``;`` in it (quadratic). Report e-mails have a few KiB of headers,
one or two levels of nesting and fields of a few hundred bytes, so the caps are far from them.
"""

from __future__ import annotations

import binascii
import contextlib
import email
import email.policy
import itertools
import quopri
import re
from collections.abc import Iterator
from email.message import Message
from typing import Final, NamedTuple

from mtasts.core.problems import ParseError, Problem
from mtasts.core.tlsrpt_report import (
    DEFAULT_LIMITS,
    ReportLimits,
    ReportParseError,
    TlsRptReport,
    is_gzip,
    parse_report,
)
from mtasts.core.untrusted import printable

__all__ = [
    "MAX_HEADER",
    "MAX_MESSAGE",
    "MAX_MIME_DEPTH",
    "MAX_MIME_FIELD",
    "MAX_MIME_PARAMS",
    "MailParseError",
    "extract_reports",
    "looks_like_report",
    "parse_any",
]

MAX_MESSAGE: Final = 64 * 1024 * 1024
MAX_HEADER: Final = 64 * 1024
"""Bytes in the header section of a message (and of each part the fast reader reads)."""
MAX_MIME_FIELD: Final = 8 * 1024
"""Bytes in one ``Content-Type`` or ``Content-Disposition`` field, folded lines included."""
MAX_MIME_PARAMS: Final = 32
"""Parameters (``;``) in one ``Content-Type`` or ``Content-Disposition`` field."""
MAX_MIME_DEPTH: Final = 32
"""Levels of ``multipart/*`` and ``message/rfc822`` nesting."""

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
    """A message holds no readable report (code ``mail.no_report``, ``mail.too_large``,
    ``mail.header.too_large``, ``mail.mime.depth``, ...: see the table above)."""


def _mail_error(code: str, message: str, fix: str) -> MailParseError:
    return MailParseError(Problem(code, message, fix))


def _too_deep() -> MailParseError:
    return _mail_error(
        "mail.mime.depth",
        f"the message nests MIME parts deeper than {MAX_MIME_DEPTH} levels",
        "A report e-mail nests one or two levels (RFC 8460 §5.3); send each report in its own message.",
    )


# The end of a header section: the first empty line, whatever the line ends (the standard
# library's parser splits lines at CRLF, CR and LF, so "\n\r" and "\r\r" end headers too).
_BLANK_LINES: Final = (b"\n\r", b"\n\n", b"\r\r")  # "\r\n\r\n" holds "\n\r"; found with memchr-speed find
# Searched in the lower-cased message (a literal prefix, so the search runs at memchr speed),
# bodies included: they find every field the standard library's parser can see, and more.
_MIME_FIELD: Final = re.compile(rb"content-(?:type|disposition):")
# The rest of a field: its first line and its folded continuation lines (the standard library's
# parser splits lines at CRLF, CR and LF).
_FIELD_REST: Final = re.compile(rb"[^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*")
# A Content-Type that makes the standard library's parser recurse (it strips str.isspace()
# characters around the media type, \x1c-\x1f among them).
_CONTAINER: Final = re.compile(rb"content-type:[\s\x1c-\x1f]*(?:multipart|message)/")


def _header_too_large(what: str, limit: int) -> MailParseError:
    return _mail_error(
        "mail.header.too_large",
        f"{what} is larger than {limit} bytes",
        "Report e-mails have a few KiB of headers; this message is not one (a header folded over many lines?).",
    )


def _check_head(data: bytes) -> None:
    """Refuse a message whose header section is larger than :data:`MAX_HEADER` (found without
    reading it: the first empty line must come within the cap)."""
    if len(data) > MAX_HEADER and all(data.find(blank, 0, MAX_HEADER + 2) < 0 for blank in _BLANK_LINES):
        raise _header_too_large("the message's header section", MAX_HEADER)


def _check_for_stdlib(data: bytes) -> None:
    """Before the standard library's parser reads ``data``: refuse a ``Content-Type`` or
    ``Content-Disposition`` field over :data:`MAX_MIME_FIELD` or :data:`MAX_MIME_PARAMS` (its
    parameter parser rescans a field once per ``;``), and a message that declares more than
    :data:`MAX_MIME_DEPTH` multipart/message parts (it recurses once per level, so the count
    bounds the depth it can reach, found without parsing).

    Linear: fields are measured one after the other, never over more than the cap each.
    (Other long headers are not refused here: that parser reads them in linear time.)
    """
    lowered = data.lower()
    position = 0
    while (found := _MIME_FIELD.search(lowered, position)) is not None:
        start = found.start()
        rest = _FIELD_REST.match(data, found.end(), start + MAX_MIME_FIELD + 1)
        end = found.end() if rest is None else rest.end()
        name = data[start : found.end() - 1].decode("ascii")
        if end - start > MAX_MIME_FIELD:
            raise _header_too_large(f"a {name} field", MAX_MIME_FIELD)
        if data.count(b";", start, end) > MAX_MIME_PARAMS:
            raise _mail_error(
                "mail.header.params",
                f"a {name} field has more than {MAX_MIME_PARAMS} parameters",
                "A MIME field is a media type and a few parameters; this message is not a report e-mail.",
            )
        position = end
    if any(count > MAX_MIME_DEPTH for count, _ in enumerate(_CONTAINER.finditer(lowered), 1)):
        raise _too_deep()


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
    """The leaf parts, read by the standard library's e-mail parser (any MIME structure), in
    order; walked with a stack (``Message.walk`` recurses), at most :data:`MAX_MIME_DEPTH` deep."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if part.is_multipart():
            if depth >= MAX_MIME_DEPTH:
                raise _too_deep()
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((child, depth + 1) for child in reversed(children) if isinstance(child, Message))
            continue
        ctype = part.get_content_type()
        name = _filename(part)
        payload = part.get_payload(decode=True) if _is_candidate(ctype, name) else None
        yield _Part(ctype, name, payload if isinstance(payload, bytes) else None)


@contextlib.contextmanager
def _stdlib_failures() -> Iterator[None]:
    """The standard library's e-mail parser raises on some malformed input instead of recording
    a defect (found by fuzzing: an RFC 2231 parameter whose charset holds a NUL raises
    ``ValueError`` from ``get_boundary``; unknown charsets raise ``LookupError``). Such a
    message is unreadable, which is a :class:`MailParseError`, never an exception of its own."""
    try:
        yield
    except ParseError:
        raise
    except (ValueError, LookupError, TypeError, IndexError, AttributeError) as exc:
        raise MailParseError(
            Problem(
                "mail.malformed",
                f"the message cannot be read: its MIME structure is malformed ({type(exc).__name__})",
                "Ask the sender to fix its report e-mails; the message is set aside, not lost.",
            )
        ) from exc


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
        data = bytes(message)
        _check_head(data)
        fast = _read_reports(_fast_parts(data), limits, strict=False)
        if fast:
            return fast
        _check_for_stdlib(data)
        with _stdlib_failures():
            message = email.message_from_bytes(data, policy=email.policy.compat32)
    with _stdlib_failures():
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
                        f"the {printable(part.content_type)} part holds neither gzip nor JSON",  # the sender's text
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

_PARAM_RE: Final = re.compile(rb';\s*([A-Za-z0-9_.\-*]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_NOT_A_FIELD: Final = re.compile(rb"(?m)^(?![ \t])[^:\n]*$")  # a line that is neither a field nor folded
_MAX_BOUNDARY: Final = 200  # RFC 2046 §5.1.1 allows 70 characters; a longer one is left to the stdlib


class _GiveUp(Exception):
    """The fast reader met something it leaves to the standard library."""


def _fast_parts(data: bytes) -> Iterator[_Part] | None:
    try:
        return iter(_walk(data))
    except _GiveUp:
        return None


def _split_head(data: bytes) -> tuple[dict[bytes, bytes], bytes]:
    """Headers (first occurrence of each name, folded lines joined by a space) and body.

    Linear: the lines of each header are collected in a list and joined once (appending to a
    ``bytes`` value copies it, which made one header folded over 1.6 M lines take 51 s).
    """
    if data[:2] == b"\r\n" or data[:1] == b"\n":  # a part without headers
        return {}, data[2:] if data[:2] == b"\r\n" else data[1:]
    crlf, lf = data.find(b"\r\n\r\n"), data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, body = data[:crlf], data[crlf + 4 :]
    elif lf >= 0:
        head, body = data[:lf], data[lf + 2 :]
    else:
        head, body = data, b""
    if len(head) > MAX_HEADER:
        # Header fields only, for more than MAX_HEADER bytes? Then the section is too large for
        # any reader. A line that is no field within them ends the headers for the standard
        # library (a sender that left out the empty line): give up, as the loop below would.
        cut = head.rfind(b"\n", 0, MAX_HEADER)
        window = head[:cut] if cut >= 0 else head[:MAX_HEADER]  # whole lines, or the start of the first
        if _NOT_A_FIELD.search(window):
            raise _GiveUp
        raise _header_too_large("the header section of a MIME part", MAX_HEADER)
    lines: dict[bytes, list[bytes]] = {}
    current: list[bytes] | None = None  # the lines of the header the next folded line belongs to, if kept
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line.strip())
            continue
        key, colon, value = line.partition(b":")
        if not colon:
            if line.startswith(b"From ") and not lines:
                continue  # an mbox separator line
            raise _GiveUp
        name = key.strip().lower()
        if name in lines:
            current = None  # the first occurrence wins, as Message.get does
        else:
            current = lines[name] = [value.strip()]
    return {name: parts[0] if len(parts) == 1 else b" ".join(parts) for name, parts in lines.items()}, body


def _params(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    media, _, rest = value.partition(b";")
    params: dict[bytes, bytes] = {}
    for match in _PARAM_RE.finditer(b";" + rest):
        key, raw = match.group(1).lower(), match.group(2)
        if key.endswith(b"*") or b"=?" in raw:
            raise _GiveUp  # RFC 2231 or RFC 2047 encoded parameters
        params.setdefault(key, raw[1:-1].replace(b'\\"', b'"') if raw[:1] == b'"' else raw)
    return media.strip().lower(), params


def _walk(data: bytes) -> list[_Part]:
    """The leaf parts of a message, in order; walked with a stack, not recursion, and refused
    (``mail.mime.depth``) beyond :data:`MAX_MIME_DEPTH` levels of nesting."""
    parts: list[_Part] = []
    stack: list[tuple[bytes, int]] = [(data, 0)]
    while stack:
        entity, depth = stack.pop()
        headers, body = _split_head(entity)
        media, params = _params(headers.get(b"content-type", b"text/plain"))
        if media.startswith(b"multipart/") or media == b"message/rfc822":
            if depth >= MAX_MIME_DEPTH:
                raise _too_deep()
            if media == b"message/rfc822":  # a forwarded message: its body is a whole message
                if headers.get(b"content-transfer-encoding", b"7bit").strip().lower() not in _IDENTITY:
                    raise _GiveUp
                children = [body]
            else:
                boundary = params.get(b"boundary")
                if not boundary or len(boundary) > _MAX_BOUNDARY:
                    raise _GiveUp
                children = _split_multipart(body, boundary)
            stack.extend((child, depth + 1) for child in reversed(children))
            continue
        parts.append(_leaf(media, params, headers, body))
    return parts


_IDENTITY: Final = frozenset({b"7bit", b"8bit", b"binary", b""})


def _leaf(media: bytes, params: dict[bytes, bytes], headers: dict[bytes, bytes], body: bytes) -> _Part:
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
    return _Part(ctype, filename, payload)


_DELIMITER_TAIL: Final = re.compile(rb"(--)?[ \t]*(?:\r?\n|\Z)")


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The parts between the delimiter lines (RFC 2046 §5.1.1) of ``body``.

    A delimiter is ``--boundary`` at the start of the body or after a line end that the
    previous delimiter did not take, then an optional ``--``, blanks and a line end. Found with
    ``bytes.find`` on the literal (a regular expression starting with a line-end alternative
    ran ten times slower, which a message nesting many levels paid at every level).
    """
    marker = b"--" + boundary
    delimiters: list[tuple[int, int, bool]] = []  # (start, with the line end before it; end; closing)
    floor = 0  # the first byte the previous delimiter did not take
    position = body.find(marker)
    while position >= 0:
        if position == 0:
            start = 0
        elif position - 1 >= floor and body[position - 1] == 0x0A:
            start = position - 2 if position - 2 >= floor and body[position - 2] == 0x0D else position - 1
        else:
            position = body.find(marker, position + 1)
            continue
        tail = _DELIMITER_TAIL.match(body, position + len(marker))
        if tail is None:
            position = body.find(marker, position + 1)
            continue
        delimiters.append((start, tail.end(), tail.group(1) is not None))
        floor = tail.end()
        position = body.find(marker, floor)
    if not delimiters:
        raise _GiveUp
    chunks = [body[a[1] : b[0]] for a, b in itertools.pairwise(delimiters)]
    if not delimiters[-1][2]:  # no closing delimiter (Mail.ru): the last part runs to the end
        chunks.append(body[delimiters[-1][1] :])
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
    if kind in _IDENTITY:
        return body
    raise _GiveUp


def parse_any(data: bytes, limits: ReportLimits = DEFAULT_LIMITS) -> tuple[TlsRptReport, ...]:
    """A bare report (gzip or JSON) or an e-mail holding reports: the reports in it."""
    if looks_like_report(data):
        return (parse_report(data, limits),)
    return extract_reports(data, limits)
