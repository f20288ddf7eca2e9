"""The sans-I/O core: RFC 8461/8460 formats as pure functions and immutable values.

Nothing here opens a socket, reads a clock or touches global state; every capability
(check, publish, resolve, report) builds on these functions.
"""

from mtasts.core.mx import matching_pattern, mx_pattern_matches
from mtasts.core.policy import MAX_AGE_LIMIT, Mode, Policy, lint_policy, parse_policy
from mtasts.core.problems import (
    MultipleRecordsError,
    NoRecordError,
    ParseError,
    PolicyParseError,
    Problem,
    RecordParseError,
    Severity,
    TlsRptRecordParseError,
)
from mtasts.core.record import StsRecord, lint_sts_record, parse_sts_record, select_sts_record
from mtasts.core.tlsrpt_record import (
    TlsRptRecord,
    lint_tlsrpt_record,
    parse_tlsrpt_record,
    select_tlsrpt_record,
)

__all__ = [
    "MAX_AGE_LIMIT",
    "Mode",
    "MultipleRecordsError",
    "NoRecordError",
    "ParseError",
    "Policy",
    "PolicyParseError",
    "Problem",
    "RecordParseError",
    "Severity",
    "StsRecord",
    "TlsRptRecord",
    "TlsRptRecordParseError",
    "lint_policy",
    "lint_sts_record",
    "lint_tlsrpt_record",
    "matching_pattern",
    "mx_pattern_matches",
    "parse_policy",
    "parse_sts_record",
    "parse_tlsrpt_record",
    "select_sts_record",
    "select_tlsrpt_record",
]
