"""The TLSRPT report parser: every real sample, the tolerated deviations, and hostile input."""

from __future__ import annotations

import contextlib
import email
import email.policy
import gzip
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtasts.core.problems import ParseError
from mtasts.core.tlsrpt_report import (
    PolicyType,
    ReportLimits,
    ReportParseError,
    ResultType,
    TlsRptReport,
    parse_report,
    result_type_of,
)
from mtasts.report.mail import parse_any
from tests.conftest import ABSENT_REASON, TLSRPT_SAMPLES

# Samples that are not reports (or break RFC 8460 beyond what the parser tolerates), with the
# error code each must give. Everything else in the corpus must parse.
NEGATIVE = {
    "negative/tlsrpt-rs__empty.eml": "mail.no_report",
    "edge-cases/mail-auth__rpt03.json": "report.policy.type",
}


def sample_params(*, negative: bool) -> list[Any]:
    if not TLSRPT_SAMPLES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=ABSENT_REASON), id="shared-absent")]
    files = sorted(p for p in TLSRPT_SAMPLES.rglob("*") if p.is_file() and p.name != "index.md")
    params = []
    for path in files:
        name = path.relative_to(TLSRPT_SAMPLES).as_posix()
        if (name in NEGATIVE) == negative:
            params.append(pytest.param(path, id=name))
    return params


def independent_reading(path: Path) -> list[dict[str, Any]]:
    """The report JSON(s) in a sample, read with the standard library only."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        return [json.loads(gzip.decompress(data))]
    if data.lstrip()[:1] == b"{":
        return [json.loads(data)]
    message = email.message_from_bytes(data, policy=email.policy.default)
    found = []
    for part in message.walk():
        name = (part.get_filename() or str(part.get("content-type", ""))).lower()
        if part.is_multipart() or not (".json" in name or "tlsrpt" in part.get_content_type()):
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found.append(json.loads(gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload))
    return found


def utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def result_types(policy: dict[str, Any]) -> list[str]:
    return [detail["result-type"] for detail in policy.get("failure-details") or []]


@pytest.mark.parametrize("path", sample_params(negative=False))
def test_every_real_sample_parses_with_the_totals_in_the_file(path: Path) -> None:
    expected = independent_reading(path)
    reports = parse_any(path.read_bytes())
    assert len(reports) == len(expected) >= 1
    for report, raw in zip(reports, expected, strict=True):
        assert report.organization_name == raw["organization-name"]
        assert report.report_id == (raw.get("report-id") or "")
        assert report.start == utc(raw["date-range"]["start-datetime"])
        assert report.end == utc(raw["date-range"]["end-datetime"])
        assert len(report.policies) == len(raw["policies"])
        for policy, raw_policy in zip(report.policies, raw["policies"], strict=True):
            assert policy.policy_type.value == raw_policy["policy"]["policy-type"]
            assert policy.policy_domain == raw_policy["policy"].get("policy-domain")
            summary = raw_policy["summary"]
            assert policy.total_successful == summary["total-successful-session-count"]
            assert policy.total_failure == summary.get("total-failure-session-count", 0)
            assert [str(d.result_type) for d in policy.failure_details] == result_types(raw_policy)
            assert [d.failed_session_count for d in policy.failure_details] == [
                d["failed-session-count"] for d in raw_policy.get("failure-details") or []
            ]
        assert json.loads(report.raw) == raw


@pytest.mark.parametrize("path", sample_params(negative=True))
def test_every_negative_sample_gives_a_clear_error(path: Path) -> None:
    with pytest.raises(ReportParseError) as caught:
        parse_any(path.read_bytes())
    assert caught.value.code == NEGATIVE[path.relative_to(TLSRPT_SAMPLES).as_posix()]
    assert caught.value.message
    assert caught.value.fix


# --- a minimal report and the deviations real senders make -----------------------------------


def report_json(**changes: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "policy": {
            "policy-type": "sts",
            "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"],
            "policy-domain": "example.com",
            "mx-host": ["mx.example.com"],
        },
        "summary": {"total-successful-session-count": 10, "total-failure-session-count": 2},
        "failure-details": [
            {
                "result-type": "certificate-expired",
                "sending-mta-ip": "192.0.2.1",
                "receiving-mx-hostname": "mx.example.com",
                "receiving-ip": "198.51.100.7",
                "failed-session-count": 2,
            }
        ],
    }
    report: dict[str, Any] = {
        "organization-name": "Example Sender",
        "date-range": {"start-datetime": "2026-11-28T00:00:00Z", "end-datetime": "2026-11-28T23:59:59Z"},
        "contact-info": "tlsrpt@sender.example",
        "report-id": "2026-11-28_example.com",
        "policies": [policy],
    }
    for key, value in changes.items():
        target, name = (policy["policy"], key[7:]) if key.startswith("policy_") else (report, key)
        name = name.replace("_", "-")
        if value is ...:
            target.pop(name, None)
        else:
            target[name] = value
    return report


def parse_obj(obj: Any) -> TlsRptReport:
    return parse_report(json.dumps(obj).encode())


def test_a_plain_report_reads_into_typed_values() -> None:
    report = parse_obj(report_json())
    assert report.organization_name == "Example Sender"
    assert report.start == datetime(2026, 11, 28, tzinfo=UTC)
    (policy,) = report.policies
    assert policy.policy_type is PolicyType.STS
    assert policy.mx_host == ("mx.example.com",)
    (detail,) = policy.failure_details
    assert detail.result_type is ResultType.CERTIFICATE_EXPIRED
    assert detail.registered
    assert detail.sending_mta_ip == "192.0.2.1"
    assert report.warnings == ()
    assert report.to_dict()["date_range"] == {"start": "2026-11-28T00:00:00Z", "end": "2026-11-28T23:59:59Z"}


def test_gzip_is_detected_by_content_and_gives_the_same_report() -> None:
    body = json.dumps(report_json()).encode()
    assert parse_report(gzip.compress(body)) == parse_report(body)
    assert parse_report(gzip.compress(body)).raw == body


@pytest.mark.parametrize(
    ("mx_host", "expected"),
    [("MX.example.com", ("mx.example.com",)), (["a.example", "*.b.example"], ("a.example", "*.b.example")), (..., ())],
)
def test_mx_host_as_string_list_or_missing(mx_host: Any, expected: tuple[str, ...]) -> None:
    assert parse_obj(report_json(policy_mx_host=mx_host)).policies[0].mx_host == expected


def test_tlsa_policy_string_holding_a_json_array_is_unpacked() -> None:
    records = ["3 1 1 AA", "2 1 1 BB"]
    obj = report_json(policy_policy_type="tlsa", policy_policy_string=[json.dumps(records)])
    assert parse_obj(obj).policies[0].policy_string == tuple(records)


def test_timestamp_without_time_zone_reads_as_utc_with_a_warning() -> None:
    obj = report_json(date_range={"start-datetime": "2026-11-28T00:00:00", "end-datetime": "2026-11-29T00:00:00"})
    report = parse_obj(obj)
    assert report.start == datetime(2026, 11, 28, tzinfo=UTC)
    assert report.end == datetime(2026, 11, 29, tzinfo=UTC)  # next midnight is kept as sent
    assert report.day.isoformat() == "2026-11-28"
    assert {w.code for w in report.warnings} == {"report.date.no_timezone"}


def test_offsets_are_converted_to_utc() -> None:
    obj = report_json(
        date_range={"start-datetime": "2026-11-28T01:00:00+01:00", "end-datetime": "2026-11-29T00:59:59+01:00"}
    )
    assert parse_obj(obj).to_dict()["date_range"]["start"] == "2026-11-28T00:00:00Z"


def test_failure_counts_above_the_total_are_kept_with_a_warning() -> None:
    obj = report_json()
    obj["policies"][0]["failure-details"][0]["failed-session-count"] = 5
    report = parse_obj(obj)
    assert report.policies[0].total_failure == 2
    assert report.policies[0].failure_details[0].failed_session_count == 5
    assert [w.code for w in report.warnings] == ["report.summary.inconsistent"]


def test_null_contact_empty_strings_and_unknown_keys_are_tolerated() -> None:
    obj = report_json(contact_info=None, x_vendor={"deep": [1, 2]})
    obj["policies"][0]["failure-details"][0].update({"sending-mta-ip": "", "receiving-ip": " ", "extra": 1})
    report = parse_obj(obj)
    assert report.contact_info is None
    detail = report.policies[0].failure_details[0]
    assert detail.sending_mta_ip is None
    assert detail.receiving_ip is None


def test_unregistered_result_type_is_kept_verbatim() -> None:
    obj = report_json()
    obj["policies"][0]["failure-details"][0]["result-type"] = "Testing"
    detail = parse_obj(obj).policies[0].failure_details[0]
    assert detail.result_type == "Testing"
    assert not isinstance(detail.result_type, ResultType)
    assert not detail.registered
    assert result_type_of("STARTTLS-Not-Supported") is ResultType.STARTTLS_NOT_SUPPORTED


def test_no_policy_found_may_omit_the_policy_domain() -> None:
    report = parse_obj(report_json(policy_policy_type="no-policy-found", policy_policy_domain=...))
    assert report.policies[0].policy_type is PolicyType.NO_POLICY_FOUND
    assert report.policies[0].policy_domain is None


def test_missing_failure_count_reads_as_zero_with_a_warning() -> None:
    obj = report_json()
    del obj["policies"][0]["summary"]["total-failure-session-count"]
    report = parse_obj(obj)
    assert report.policies[0].total_failure == 2  # the failure details' sum
    assert [w.code for w in report.warnings] == ["report.summary.missing"]
    del obj["policies"][0]["failure-details"]
    assert parse_obj(obj).policies[0].total_failure == 0


# --- strict: structure errors name the field -------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code", "where"),
    [
        ({"organization_name": ...}, "report.field.missing", "organization-name"),
        ({"date_range": ...}, "report.field.missing", "date-range"),
        ({"policies": ...}, "report.field.missing", "policies"),
        ({"policies": {}}, "report.field.type", "policies"),
        ({"policy_policy_type": "dane"}, "report.policy.type", "policy-type"),
        ({"policy_policy_domain": ...}, "report.field.missing", "policy-domain"),
        ({"policy_mx_host": 5}, "report.field.type", "mx-host"),
        (
            {"date_range": {"start-datetime": "yesterday", "end-datetime": "2026-11-28T00:00:00Z"}},
            "report.date.invalid",
            "start",
        ),
        (
            {"date_range": {"start-datetime": "2026-11-28T00:00:00Z", "end-datetime": "2026-11-27T00:00:00Z"}},
            "report.date_range.order",
            "ends",
        ),
    ],
)
def test_structure_errors_say_which_field(changes: dict[str, Any], code: str, where: str) -> None:
    with pytest.raises(ReportParseError) as caught:
        parse_obj(report_json(**changes))
    assert caught.value.code == code
    assert where in caught.value.message


@pytest.mark.parametrize("count", [-1, "3", True, 2**64, 1.5])
def test_session_counts_must_be_non_negative_integers(count: Any) -> None:
    obj = report_json()
    obj["policies"][0]["summary"]["total-successful-session-count"] = count
    with pytest.raises(ReportParseError) as caught:
        parse_obj(obj)
    assert caught.value.code in {"report.field.type", "report.count.range"}
    assert "total-successful-session-count" in caught.value.message


@pytest.mark.parametrize("count", [-1, "3", True, 2**64, 1.5, None])
def test_failure_detail_counts_must_be_non_negative_integers(count: Any) -> None:
    obj = report_json()
    obj["policies"][0]["failure-details"][0]["failed-session-count"] = count
    with pytest.raises(ReportParseError) as caught:
        parse_obj(obj)
    assert caught.value.code in {"report.field.type", "report.count.range", "report.field.missing"}
    assert "failure-details[0].failed-session-count" in caught.value.message


def test_not_an_object() -> None:
    with pytest.raises(ReportParseError, match="must be a JSON object") as caught:
        parse_report(b"[1, 2]")
    assert caught.value.code == "report.field.type"


# --- hostile input ------------------------------------------------------------------------------


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed, built in chunks (about 1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    parts = [packer.compress(chunk) for _ in range(size >> 20)]
    parts.append(packer.flush())
    return b"".join(parts)


def test_gzip_bomb_is_stopped_at_the_decompression_cap() -> None:
    bomb = gzip_bomb(1 << 30)  # 1 GiB of zeros in about 1 MiB
    assert len(bomb) < 2 << 20
    with pytest.raises(ReportParseError) as caught:
        parse_report(bomb)
    assert caught.value.code == "report.gzip.too_large"
    assert "gzip bomb" in caught.value.fix


def test_decompression_cap_is_a_constructor_argument() -> None:
    body = json.dumps(report_json()).encode()
    limits = ReportLimits(max_decompressed=len(body) - 1)
    with pytest.raises(ReportParseError, match="decompresses to more than") as caught:
        parse_report(gzip.compress(body), limits)
    assert caught.value.code == "report.gzip.too_large"
    assert parse_report(gzip.compress(body), ReportLimits(max_decompressed=len(body))).organization_name


def test_a_100_mb_json_body_is_refused_by_size() -> None:
    body = b'{"organization-name": "' + b"x" * (100 * 1024 * 1024) + b'"}'
    with pytest.raises(ReportParseError) as caught:
        parse_report(body)
    assert caught.value.code == "report.too_large"


def test_json_size_cap_applies_after_decompression() -> None:
    body = json.dumps(report_json()).encode()
    with pytest.raises(ReportParseError) as caught:
        parse_report(gzip.compress(body), ReportLimits(max_json=100))
    assert caught.value.code == "report.json.too_large"


@pytest.mark.parametrize("depth", [17, 200, 5000, 200_000])
def test_deeply_nested_json_is_refused(depth: int) -> None:
    body = b'{"x":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(ReportParseError) as caught:
        parse_report(body)
    assert caught.value.code == "report.json.depth"


def test_depth_inside_known_fields_is_also_capped() -> None:
    obj = report_json()
    nested: Any = "x"
    for _ in range(20):
        nested = [nested]
    obj["policies"][0]["policy"]["policy-string"] = nested
    with pytest.raises(ReportParseError) as caught:
        parse_obj(obj)
    assert caught.value.code == "report.json.depth"


def test_invalid_utf8_is_named() -> None:
    body = json.dumps(report_json()).encode().replace(b"Example Sender", b"Example \xff Sender")
    with pytest.raises(ReportParseError, match="not valid UTF-8") as caught:
        parse_report(body)
    assert caught.value.code == "report.json.utf8"


def test_truncated_gzip_is_named() -> None:
    packed = gzip.compress(json.dumps(report_json()).encode())
    with pytest.raises(ReportParseError) as caught:
        parse_report(packed[: len(packed) // 2])
    assert caught.value.code == "report.gzip.truncated"


def test_corrupt_gzip_is_named() -> None:
    packed = bytearray(gzip.compress(json.dumps(report_json()).encode()))
    packed[12:20] = b"\xff" * 8
    with pytest.raises(ReportParseError) as caught:
        parse_report(bytes(packed))
    assert caught.value.code == "report.gzip.invalid"


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(ReportParseError) as caught:
        parse_report(b'{\n  "organization-name": "x",\n  oops\n}')
    assert caught.value.code == "report.json.syntax"
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("body", "code"), [(b"", "report.empty"), (b"   \n", "report.empty"), (b"hello", "report.format.unknown")]
)
def test_empty_and_unknown_formats(body: bytes, code: str) -> None:
    with pytest.raises(ReportParseError) as caught:
        parse_report(body)
    assert caught.value.code == code


def test_report_parse_error_is_the_project_parse_error() -> None:
    assert issubclass(ReportParseError, ParseError)
    assert issubclass(ReportParseError, ValueError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_report_or_a_report_parse_error(data: bytes) -> None:
    for body in (data, gzip.compress(data), b"{" + data):
        with contextlib.suppress(ReportParseError):
            parse_report(body)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255))
def test_a_damaged_report_gives_a_report_or_a_report_parse_error(position: int, value: int) -> None:
    body = bytearray(json.dumps(report_json()).encode())
    body[position % len(body)] = value
    for data in (bytes(body), bytes(body[: position % len(body)])):
        try:
            report = parse_report(data)
        except ReportParseError:
            continue
        assert isinstance(report, TlsRptReport)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@settings(max_examples=400, deadline=None)
@given(st.data(), JSON_VALUES)
def test_any_value_anywhere_in_a_report_gives_a_report_or_a_report_parse_error(data: Any, value: Any) -> None:
    obj = report_json()
    path = data.draw(st.sampled_from(_paths(obj)[1:]))
    target = obj
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    try:
        report = parse_obj(obj)
    except ReportParseError as exc:
        code = exc.code
    else:
        code = "report.ok"
        assert report.organization_name
    assert code.startswith("report.")


# --- hostile input of issue #8: every shape is a ParseError with a code, found fast ----------


def test_two_hundred_thousand_empty_gzip_members_are_refused_by_count() -> None:
    """~200,000 empty members in 4 MiB once took 8.5 s (each member re-copied the rest of the
    input) and ended as report.empty; now the member cap stops it at the 65th member."""
    body = gzip.compress(b"", mtime=0) * 200_000
    assert len(body) <= 4 * 1024 * 1024
    with pytest.raises(ReportParseError) as caught:
        parse_report(body)
    assert caught.value.code == "report.gzip.members"
    assert "64" in caught.value.message


def test_a_report_split_over_gzip_members_up_to_the_cap_is_read() -> None:
    body = json.dumps(report_json()).encode()
    step = -(-len(body) // 64)
    members = [gzip.compress(body[i : i + step]) for i in range(0, len(body), step)]
    assert len(members) == 64
    assert parse_report(b"".join(members)).raw == body
    with pytest.raises(ReportParseError) as caught:
        parse_report(b"".join(members) + gzip.compress(b""))
    assert caught.value.code == "report.gzip.members"
    limits = ReportLimits(max_gzip_members=100_000)
    assert parse_report(b"".join(members) + gzip.compress(b"") * 50_000, limits).raw == body


def test_gzip_member_cap_is_a_constructor_argument() -> None:
    with pytest.raises(ValueError, match="max_gzip_members"):
        ReportLimits(max_gzip_members=0)
    body = gzip.compress(json.dumps(report_json()).encode())
    with pytest.raises(ReportParseError) as caught:
        parse_report(body * 2, ReportLimits(max_gzip_members=1))
    assert caught.value.code == "report.gzip.members"


def test_members_of_every_size_keep_their_bytes() -> None:
    """Members shorter and longer than the first slice each member is fed, padded or not."""
    body = json.dumps(report_json(x_pad="y" * 5000)).encode()
    for size in (1, 100, 511, 512, 513, 4000, len(body)):
        members = b"".join(gzip.compress(body[i : i + size], compresslevel=0) for i in range(0, len(body), size))
        if members.count(b"\x1f\x8b") <= 64:
            assert parse_report(members).raw == body
            assert parse_report(members + b"\x00" * 1000).raw == body


@pytest.mark.parametrize(
    ("moment", "code"),
    [
        ("9999-12-31T23:59:59-23:59", "report.date.range"),  # OverflowError in the UTC conversion
        ("0001-01-01T00:00:00+23:59", "report.date.range"),  # OverflowError, the other way
        ("9999-12-31T23:59:59Z", "report.date.range"),
        ("9999-01-01T00:00:00Z", "report.date.range"),
        ("1969-12-31T23:59:59Z", "report.date.range"),
        ("1970-01-01T00:30:00+01:00", "report.date.range"),
        ("0001-01-01T00:00:00Z", "report.date.range"),
        ("0000-01-01T00:00:00Z", "report.date.invalid"),
        ("2026-11-28T00:00:00+24:00", "report.date.invalid"),
        ("2026-11-28T00:00:00-99:00", "report.date.invalid"),
        ("2026-02-30T00:00:00Z", "report.date.invalid"),
    ],
)
def test_out_of_range_dates_are_parse_errors(moment: str, code: str) -> None:
    for key in ("start-datetime", "end-datetime"):
        dates = {"start-datetime": "1970-01-01T00:00:00Z", "end-datetime": "9998-12-31T23:59:59Z", key: moment}
        with pytest.raises(ReportParseError) as caught:
            parse_obj(report_json(date_range=dates))
        assert caught.value.code == code
        assert key in caught.value.message
        assert moment in caught.value.message


def test_dates_at_the_edges_of_the_range_are_read() -> None:
    dates = {"start-datetime": "1970-01-01T00:00:00Z", "end-datetime": "9998-12-31T23:59:59+00:00"}
    report = parse_obj(report_json(date_range=dates))
    assert report.to_dict()["date_range"] == {"start": "1970-01-01T00:00:00Z", "end": "9998-12-31T23:59:59Z"}
    late = {"start-datetime": "1970-01-01T01:00:00+01:00", "end-datetime": "9998-12-31T00:00:00-23:59"}
    report = parse_obj(report_json(date_range=late))
    assert (report.start, report.end) == (datetime(1970, 1, 1, tzinfo=UTC), datetime(9998, 12, 31, 23, 59, tzinfo=UTC))


def test_a_huge_date_value_is_cut_short_in_the_message() -> None:
    dates = {"start-datetime": "x" * 1_000_000, "end-datetime": "2026-11-28T00:00:00Z"}
    with pytest.raises(ReportParseError) as caught:
        parse_obj(report_json(date_range=dates))
    assert caught.value.code == "report.date.invalid"
    assert len(caught.value.message) < 200


COUNT_FIELDS = [
    ("summary", "total-successful-session-count"),
    ("summary", "total-failure-session-count"),
    ("detail", "failed-session-count"),
]


def _with_count(where: str, key: str, value: Any) -> dict[str, Any]:
    obj = report_json()
    policy = obj["policies"][0]
    target = policy["summary"] if where == "summary" else policy["failure-details"][0]
    target[key] = value
    return obj


@pytest.mark.parametrize(("where", "key"), COUNT_FIELDS)
@pytest.mark.parametrize("count", [10**12 + 1, 2**63 - 1, 1e13, -1, -(2**63)])
def test_counts_beyond_a_trillion_are_refused(where: str, key: str, count: Any) -> None:
    """A count that fits a 64-bit column can still overflow its sums: anything above 10^12
    sessions (far beyond any real sender) is refused at ingest."""
    with pytest.raises(ReportParseError) as caught:
        parse_obj(_with_count(where, key, count))
    assert caught.value.code == "report.count.range"
    assert key in caught.value.message
    assert "10^12" in caught.value.message


@pytest.mark.parametrize(("where", "key"), COUNT_FIELDS)
def test_a_count_of_a_trillion_is_read(where: str, key: str) -> None:
    report = parse_obj(_with_count(where, key, 10**12))
    policy = report.policies[0]
    assert 10**12 in (policy.total_successful, policy.total_failure, policy.failure_details[0].failed_session_count)
    assert parse_obj(_with_count(where, key, 3.0)).policies[0].failure_details


def test_counts_given_to_report_from_json_are_checked_too() -> None:
    from mtasts.core.tlsrpt_report import MAX_SESSION_COUNT, report_from_json

    assert MAX_SESSION_COUNT == 10**12
    with pytest.raises(ReportParseError) as caught:
        report_from_json(_with_count("summary", "total-successful-session-count", 10**4000))
    assert caught.value.code == "report.count.range"
    assert len(caught.value.message) < 200
