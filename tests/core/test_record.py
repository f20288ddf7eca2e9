"""``_mta-sts`` records and RRsets beyond the shared vectors."""

from __future__ import annotations

import pytest

import mtasts
from mtasts import MultipleRecordsError, NoRecordError, RecordParseError, StsRecord


def test_rrset_outcomes_have_distinct_codes() -> None:
    with pytest.raises(NoRecordError) as none:
        mtasts.select_sts_record([["v=spf1 -all"]])
    with pytest.raises(MultipleRecordsError) as several:
        mtasts.select_sts_record(["v=STSv1; id=1", "v=STSv1; id=2"])
    with pytest.raises(RecordParseError) as invalid:
        mtasts.select_sts_record([[b"v=STSv1; id=a-b"]])
    codes = {none.value.code, several.value.code, invalid.value.code}
    assert codes == {"rrset.none", "rrset.multiple", "record.id.syntax"}
    assert not isinstance(invalid.value, NoRecordError | MultipleRecordsError)


def test_bytes_with_non_ascii_are_rejected_not_decoded() -> None:
    with pytest.raises(RecordParseError) as caught:
        mtasts.select_sts_record([[b"v=STSv1; id=1; x=\xe9"]])
    assert caught.value.code == "record.charset"
    assert caught.value.column == 18


def test_messages_say_what_to_fix() -> None:
    cases = {
        '"v=STSv1; id=1;"': ("record.version", "quote"),
        "v=STSv1 id=1": ("record.delimiter", "expected ';'"),
        "v=STSv1; id=2026-11-29": ("record.id.syntax", "contains '-'"),
        "v=STSv1;": ("record.id.missing", "no id"),
        "v=STSv1; id=1;;": ("record.field.empty", "empty field"),
        "v=STSv1; id=1 ": ("record.trailing_space", "white space"),
        "v=STSv1; id=1; note=a b": ("record.extension.value", "contains ' '"),
    }
    for text, (code, phrase) in cases.items():
        _, problems = mtasts.lint_sts_record(text)
        assert problems, text
        assert problems[0].code == code, text
        assert phrase in problems[0].message, text


def test_duplicate_id_warns_and_first_wins() -> None:
    record, problems = mtasts.lint_sts_record("v=STSv1; id=first; id=second")
    assert record == StsRecord("first")
    assert [p.code for p in problems] == ["record.field.duplicate"]
    assert problems[0].column == 20


def test_to_text_and_constructor() -> None:
    assert StsRecord("20261129T081500", {"ext": "1"}).to_text() == "v=STSv1; id=20261129T081500; ext=1"
    with pytest.raises(RecordParseError):
        StsRecord("bad id")
    with pytest.raises(RecordParseError):
        StsRecord("ok", {"v": "STSv2"})
