"""Hypothesis strategies for the core's values, in one place."""

from __future__ import annotations

from hypothesis import strategies as st

from mtasts.core.policy import MAX_AGE_LIMIT, Mode, Policy
from mtasts.core.record import StsRecord
from mtasts.core.tlsrpt_record import TlsRptRecord

_LETTERS_DIGITS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@st.composite
def labels(draw: st.DrawFn) -> str:
    """One RFC 5321 label: letters and digits, inner hyphens, 1-63 characters."""
    first = draw(st.sampled_from(_LETTERS_DIGITS))
    middle = draw(st.text(alphabet=_LETTERS_DIGITS + "-", max_size=20))
    last = draw(st.sampled_from(_LETTERS_DIGITS))
    return first + (middle + last if middle or draw(st.booleans()) else "")


@st.composite
def host_names(draw: st.DrawFn) -> str:
    """A host name whose last label is not all-numeric (that would be an address)."""
    parts = draw(st.lists(labels(), min_size=1, max_size=4))
    tld = draw(labels().filter(lambda label: not label.isdigit()))
    return ".".join([*parts, tld])


mx_patterns = st.one_of(host_names(), host_names().map(lambda name: "*." + name))

ext_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}", fullmatch=True).filter(
    lambda name: name not in ("version", "mode", "max_age", "mx")
)
policy_ext_values = st.from_regex(r"[\x21-\x7e\u00e9\u4e2d]+( +[\x21-\x7e\u00e9\u4e2d]+)*", fullmatch=True)
record_ext_values = st.from_regex(r"[\x21-\x3a\x3c\x3e-\x7e]+", fullmatch=True)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    mode = draw(st.sampled_from(list(Mode)))
    minimum = 0 if mode is Mode.NONE else 1
    return Policy(
        mode=mode,
        max_age=draw(st.integers(0, MAX_AGE_LIMIT)),
        mx=tuple(draw(st.lists(mx_patterns, min_size=minimum, max_size=5))),
        extensions=draw(st.dictionaries(ext_names, policy_ext_values, max_size=3)),
    )


@st.composite
def sts_records(draw: st.DrawFn) -> StsRecord:
    return StsRecord(
        id=draw(st.text(alphabet=_LETTERS_DIGITS, min_size=1, max_size=32)),
        extensions=draw(
            st.dictionaries(ext_names.filter(lambda n: n not in ("v", "id")), record_ext_values, max_size=3)
        ),
    )


@st.composite
def tlsrpt_records(draw: st.DrawFn) -> TlsRptRecord:
    mailto = host_names().map(lambda host: f"mailto:tlsrpt@{host}")
    https = host_names().map(lambda host: f"https://{host}/tlsrpt")
    return TlsRptRecord(
        rua=tuple(draw(st.lists(st.one_of(mailto, https), min_size=1, max_size=3))),
        extensions=draw(
            st.dictionaries(ext_names.filter(lambda n: n not in ("v", "rua")), record_ext_values, max_size=2)
        ),
    )
