"""``mtasts --lang ja check`` on every lab scenario, read as a user reads it: every line of the
text output is Japanese apart from data (names, addresses, records, codes, options, dates,
protocol words) and what a server or a library said, quoted as it said it.

tests/i18n/test_findings.py checks the sentences of the reports one by one; this runs the command
and reads what it prints (the facts under each headline, the evidence lines, the verdict per MX),
so English that only the renderer adds is caught too.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest

from mtasts.lab.scenarios import CATALOGUE
from mtasts.lab.world import check_options
from tests.commands import MTASTS

# protocol and record words a Japanese line keeps as they are
_TERMS = frozenset(
    [
        "TLS",
        "TLSv",
        "MTA",
        "STS",
        "MX",
        "SERVFAIL",
        "NXDOMAIN",
        "DNS",
        "DNSSEC",
        "HTTPS",
        "HTTP",
        "TXT",
        "CNAME",
        "AAAA",
        "UTC",
        "ACME",
        "STARTTLS",
        "EHLO",
        "SMTP",
        "Content",
        "Type",
        "Postfix",
        "CA",
        "DANE",
        "TLSA",
        "IP",
        "IPv",
        "OK",
        "RFC",
        "TLSRPT",
        "OpenSSL",
        "ASCII",
        "URI",
        "PEM",
        "SNI",
        "subjectAltName",
        "null",
        "may",
        "mode",
        "mx",
        "id",
        "rua",
        "mailto",
        "https",
        "enforce",
        "testing",
        "none",
        "policy",
    ]
)
# data: quoted values, URLs, media types, names with a dot, codes and options, numbers, keys, brackets
_DATA = re.compile(
    r"'[^']*'|\"[^\"]*\"|https?://\S+|\b[a-z]+/[a-z]+\b|\S+\.\S+|\[[^\]]*\]|--[a-z-]+|`[^`]*`|\S*\d\S*"
    r"|\b[a-z0-9]+(?:-[a-z0-9]+)+\b|\b\w+_\w+\b|_\S+"
)
# what others said, quoted: an SMTP reply, cryptography's parse error
_QUOTED = re.compile(r"\b\d{3} \d\.\d+\.\d+ [^：。（）]*|error parsing asn1 value: ParseError \{[^}]*\}")


def english_words(line: str) -> list[str]:
    rest = _DATA.sub(" ", _QUOTED.sub(" ", line))
    return [word for word in re.findall(r"[A-Za-z]{2,}", rest) if word not in _TERMS]


@pytest.fixture(scope="module")
def japanese_output(lab: Any) -> str:
    names = [lab.domain(name) for name in CATALOGUE]
    env = {**os.environ, "LANG": "C", "LC_ALL": "", "LC_MESSAGES": "", "NO_COLOR": "1"}
    result = subprocess.run(
        [*MTASTS, "--lang", "ja", "--width", "1000", "check", *names, *check_options(lab.info(), timeout=3)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


@pytest.mark.lab
def test_every_line_of_every_scenario_is_japanese(japanese_output: str) -> None:
    english = [(line.strip(), words) for line in japanese_output.splitlines() if (words := english_words(line))]
    assert not english, "\n".join(f"{words}: {line}" for line, words in english)


@pytest.mark.lab
def test_the_facts_and_the_reasons_a_user_reads(japanese_output: str, lab: Any) -> None:
    """A few lines in full: the facts under a headline, an evidence line, an MX's verdict and a
    reason from the operating system (lower-cased by the SMTP probe) inside a finding."""
    lines = [line.strip() for line in japanese_output.splitlines()]
    unreachable = re.escape(lab.domain("mx-unreachable"))
    enforce_ok = re.escape(lab.domain("enforce-ok"))
    wanted = [
        rf"MX mx1\.{unreachable} +(\S+): \1 の \d+ 番ポートに接続できません：接続を拒否されました",
        rf"ポリシー +モード enforce、max_age 604800、mx：mx1\.{enforce_ok}",
        rf"MX mx1\.{enforce_ok} +\S+: TLSv1\.3、証明書の有効期限 \d{{4}}-\d\d-\d\d",
        r"有効期間 \d{4}-\d\d-\d\d〜\d{4}-\d\d-\d\d",
        rf"調べていません：mx11\.{re.escape(lab.domain('mx-many'))}",
        rf"mx1\.{unreachable}: 配送しません：到達できません",
    ]
    for pattern in wanted:
        assert any(re.fullmatch(pattern, line) for line in lines), pattern
