"""The vectors marked ``ambiguous``: the RFC allows more than one answer, so each expectation
below is the project's decision, explained in docs/conformance.md. A change here is a change
of documented behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mtasts
from tests.conftest import VECTORS, require_shared

CONFORMANCE = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"

# vector id -> (our answer, the code we report when we reject)
DECISIONS: dict[str, tuple[str, str | None]] = {
    # a repeated 'v=' is an extension named 'v' and ignored (first wins)
    "txt-024": ("valid", None),
    # errata 6285: 'v=STSv1 ;' counts as an STS record (the ABNF allows WSP before ';')
    "txt-102": ("valid", None),
    "txt-103": ("no-policy", "rrset.multiple"),
    # policy: one final line terminator only; a trailing blank line is an error
    "pol-119": ("invalid", "policy.line.blank"),
    # max_age above 31557600 is an error, not clamped (errata 7282)
    "pol-083": ("invalid", "policy.max_age.range"),
    # an mx pattern with a trailing dot is invalid policy syntax...
    "pol-096": ("invalid", "policy.mx.trailing_dot"),
    # ... an IP-looking mx is rejected (a TLD is never all-numeric) ...
    "pol-101": ("invalid", "policy.mx.ip_address"),
    # ... and a byte-order mark is an error, not stripped
    "pol-126": ("invalid", "policy.bom"),
    # the matcher itself tolerates a trailing dot on a pattern (harmless normalisation)
    "mx-012": ("match", None),
    # the wildcard rule only splits at the first dot; host validity is a separate check
    "mx-045": ("match", None),
    # a host containing '*' is not a host name and matches nothing
    "mx-046": ("no-match", None),
    # TLSRPT: trailing white space without ';' is outside the grammar
    "rpt-005": ("invalid", "tlsrpt.trailing_space"),
    # TLSRPT: a repeated rua= is ignored, first wins (as RFC 8461 does for its fields)
    "rpt-008": ("valid", None),
    # TLSRPT: '!' must be percent-encoded; a DMARC-style size suffix is an error
    "rpt-028": ("invalid", "tlsrpt.rua.uri"),
}


def _ambiguous() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in ("sts-txt-vectors.json", "sts-policy-vectors.json", "mx-match-vectors.json", "tlsrpt-txt-vectors.json"):
        path = VECTORS / name
        if path.is_file():
            found.extend(v for v in json.loads(path.read_text("utf-8"))["vectors"] if v.get("ambiguous"))
    return found


def _outcome(vector: dict[str, Any]) -> tuple[str, str | None]:
    vid: str = vector["id"]
    try:
        if vid.startswith("txt-") and vector["kind"] == "rrset":
            mtasts.select_sts_record(vector["input"])
        elif vid.startswith("txt-"):
            mtasts.parse_sts_record(vector["input"])
        elif vid.startswith("pol-"):
            mtasts.parse_policy(vector["input"])
        elif vid.startswith("mx-"):
            matched = any(mtasts.mx_pattern_matches(p, vector["host"]) for p in vector["patterns"])
            return ("match" if matched else "no-match"), None
        else:
            mtasts.parse_tlsrpt_record(vector["input"])
    except mtasts.ParseError as exc:
        return ("no-policy" if vector.get("kind") == "rrset" else "invalid"), exc.code
    return "valid", None


@pytest.mark.parametrize("vid", sorted(DECISIONS))
def test_decision(vid: str) -> None:
    require_shared(VECTORS)
    vector = next(v for v in _ambiguous() if v["id"] == vid)
    assert _outcome(vector) == DECISIONS[vid]


def test_every_ambiguous_vector_has_a_decision() -> None:
    require_shared(VECTORS)
    assert {v["id"] for v in _ambiguous()} == set(DECISIONS)


@pytest.mark.parametrize("vid", sorted(DECISIONS))
def test_decision_is_documented(vid: str) -> None:
    assert vid in CONFORMANCE.read_text("utf-8"), f"docs/conformance.md does not explain {vid}"
