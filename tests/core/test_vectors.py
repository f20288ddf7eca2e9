"""Every non-ambiguous vector of ../shared/vectors through the public API.

The ambiguous ones are the project's own decisions: tests/core/test_decisions.py pins them.
"""

from __future__ import annotations

from typing import Any

import pytest

import mtasts
from tests.conftest import vector_params


def _not_ambiguous(vector: dict[str, Any]) -> bool:
    return not vector.get("ambiguous")


def _policy_input(vector: dict[str, Any]) -> str | bytes:
    if "input_bytes_hex" in vector:
        return bytes.fromhex(vector["input_bytes_hex"])
    text: str = vector["input"]
    return text


@pytest.mark.parametrize(
    "vector", vector_params("sts-txt-vectors.json", where=lambda v: _not_ambiguous(v) and v["kind"] == "record")
)
def test_sts_record(vector: dict[str, Any]) -> None:
    if vector["expect"] == "valid":
        record = mtasts.parse_sts_record(vector["input"])
        assert record.id == vector["parsed"]["id"]
        assert dict(record.extensions) == vector["parsed"]["extensions"]
    else:
        with pytest.raises(mtasts.ParseError) as caught:
            mtasts.parse_sts_record(vector["input"])
        assert caught.value.code.startswith("record.")


@pytest.mark.parametrize(
    "vector", vector_params("sts-txt-vectors.json", where=lambda v: _not_ambiguous(v) and v["kind"] == "rrset")
)
def test_sts_rrset(vector: dict[str, Any]) -> None:
    if vector["expect"] == "valid":
        assert mtasts.select_sts_record(vector["input"]).id == vector["parsed"]["id"]
    else:
        with pytest.raises(mtasts.ParseError):
            mtasts.select_sts_record(vector["input"])


@pytest.mark.parametrize("vector", vector_params("sts-policy-vectors.json", where=_not_ambiguous))
def test_policy(vector: dict[str, Any]) -> None:
    data = _policy_input(vector)
    if vector["expect"] == "valid":
        policy = mtasts.parse_policy(data)
        parsed = vector["parsed"]
        assert policy.version == parsed["version"]
        assert policy.mode == parsed["mode"]
        assert policy.max_age == parsed["max_age"]
        assert list(policy.mx) == parsed["mx"]
        assert dict(policy.extensions) == parsed.get("extensions", {})
    else:
        with pytest.raises(mtasts.ParseError) as caught:
            mtasts.parse_policy(data)
        assert caught.value.code.startswith("policy.")


@pytest.mark.parametrize("vector", vector_params("sts-policy-vectors.json", where=lambda v: "input_bytes_hex" not in v))
def test_policy_bytes_and_text_agree(vector: dict[str, Any]) -> None:
    """The HTTPS body (bytes) and the decoded text give the same answer."""
    data = vector["input"]
    as_text = mtasts.lint_policy(data)
    as_bytes = mtasts.lint_policy(data.encode("utf-8"))
    assert as_text == as_bytes


@pytest.mark.parametrize("vector", vector_params("mx-match-vectors.json", where=_not_ambiguous))
def test_mx_match(vector: dict[str, Any]) -> None:
    expected = vector["expect"] == "match"
    assert any(mtasts.mx_pattern_matches(p, vector["host"]) for p in vector["patterns"]) is expected
    if not any(_invalid_pattern(p) for p in vector["patterns"]):
        policy = mtasts.Policy(mode=mtasts.Mode.ENFORCE, max_age=86400, mx=tuple(vector["patterns"]))
        assert policy.matches(vector["host"]) is expected


@pytest.mark.parametrize("vector", vector_params("tlsrpt-txt-vectors.json", where=_not_ambiguous))
def test_tlsrpt_record(vector: dict[str, Any]) -> None:
    if vector["expect"] == "valid":
        assert list(mtasts.parse_tlsrpt_record(vector["input"]).rua) == vector["parsed"]["rua"]
    else:
        with pytest.raises(mtasts.ParseError) as caught:
            mtasts.parse_tlsrpt_record(vector["input"])
        assert caught.value.code.startswith("tlsrpt.")


def _invalid_pattern(pattern: str) -> bool:
    try:
        mtasts.Policy(mode=mtasts.Mode.ENFORCE, max_age=1, mx=(pattern,))
    except mtasts.ParseError:
        return True
    return False
