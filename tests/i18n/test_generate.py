"""``mtasts generate`` in Japanese: the explanations around what is to be copied, every problem
of an invalid option and every warning (from the ``findings`` catalogue, mtasts.i18n), and its
own errors, under ``--lang ja`` and ``LANG=ja_JP.UTF-8``; the policy, the zone-file lines and the
JSON stay as they are."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.problems import ParseError, Problem
from mtasts.i18n import translator
from mtasts.publish.plan import plan_deployment

JA = translator("ja")
C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": ""}
JA_LOCALE = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
_STAMP = re.compile(r"id=\d{8}T\d{6}")
_ENGLISH = re.compile(r"\b[a-z]{2,} [a-z]{2,} [a-z]{2,}\b")  # three English words in a row

BAD_OPTIONS = [
    ("exa mple", ["mail.example.com"], "testing", 86400, []),
    ("", ["mail.example.com"], "testing", 86400, []),
    ("-bad-.com", ["mail.example.com"], "testing", 86400, []),
    ("example.com", ["mail example"], "testing", 86400, []),
    ("example.com", ["mail.example.com."], "testing", 86400, []),
    ("example.com", ["*.*.example.com"], "testing", 86400, []),
    ("example.com", ["192.0.2.1"], "testing", 86400, []),
    ("example.com", ["xn--zz.example"], "testing", 86400, []),
    ("example.com", [], "enforce", 86400, []),
    ("example.com", ["mail.example.com"], "bogus", 86400, []),
    ("example.com", ["mail.example.com"], "enforce", 60, ["http://x"]),
    ("example.com", ["mail.example.com"], "enforce", 60, ["mailto:a b"]),
    ("example.com", ["mail.example.com"], "enforce", 60, ["nope"]),
    ("example.com", ["mail.example.com"], "enforce", 600, []),
    ("example.com", ["mail.example.com"], "testing", 600, ["mailto:tlsrpt@example.com"]),
]


def _problems(domain: str, mx: list[str], mode: str, max_age: int, rua: list[str]) -> tuple[Problem, ...]:
    """What ``mtasts generate`` prints for these options: the errors, or the plan's warnings."""
    try:
        return plan_deployment(domain, mx, mode, max_age, rua, now=datetime.now(UTC)).warnings
    except ParseError as exc:
        return exc.problems


def _command(domain: str, mx: list[str], mode: str, max_age: int, rua: list[str]) -> list[str]:
    return [
        "generate",
        "--domain",
        domain,
        *[arg for host in mx for arg in ("--mx", host)],
        "--mode",
        mode,
        "--max-age",
        str(max_age),
        *[arg for uri in rua for arg in ("--rua", uri)],
    ]


def test_every_problem_generate_can_print_is_in_the_catalogue() -> None:
    untranslated = sorted(
        {
            (problem.code, text)
            for options in BAD_OPTIONS
            for problem in _problems(*options)
            for text in (problem.message, problem.fix)
            if not JA.translate(text).complete
        }
    )
    assert not untranslated, f"sentences without a shape in src/mtasts/i18n/messages.py: {untranslated}"


CLI_OPTIONS = [o for o in BAD_OPTIONS if o[1] and o[2] != "bogus"]
"""The options click lets through to the plan (a missing --mx or an unknown --mode is click's own
usage error, said by click in English)."""


@pytest.mark.parametrize("options", CLI_OPTIONS, ids=lambda o: f"{o[0]}-{'+'.join(o[1])}-{o[2]}-{o[3]}")
def test_each_problem_is_printed_in_japanese(options: tuple[str, list[str], str, int, list[str]]) -> None:
    """As a user with ``LANG=ja_JP.UTF-8`` runs it: every message and fix in Japanese, none in
    English, the code as it is."""
    problems = _problems(*options)
    assert problems
    result = CliRunner().invoke(app, _command(*options), env=JA_LOCALE)
    shown = result.stderr if result.exit_code == 2 else result.stdout
    for problem in problems:
        for text in (problem.message, problem.fix):
            assert JA.text(text) in shown, (text, shown)
            assert text not in shown, (text, shown)
        assert f"[{problem.code}]" in shown
    assert ("✗ エラー: " if result.exit_code == 2 else "! 警告: ") in shown


def test_the_plan_in_japanese_and_what_is_copied_unchanged(tmp_path: Path) -> None:
    command = ["generate", "-d", "example.com", "--mx", "mail.example.com", "--mode", "testing"]
    command += ["--max-age", "86400", "--rua", "mailto:tlsrpt@example.com", "-o", str(tmp_path)]
    english = CliRunner().invoke(app, command, env=C_LOCALE)
    japanese = CliRunner().invoke(app, ["--lang", "ja", *command], env=C_LOCALE)
    assert english.exit_code == japanese.exit_code == 0, japanese.output
    # the record's id is the time of each run: the two runs may fall in different seconds
    english_out, japanese_out = (_STAMP.sub("id=<now>", run.stdout) for run in (english, japanese))
    lines = japanese_out.splitlines()
    assert lines[0] == "example.com の MTA-STS"
    assert lines[2] == (
        "1. mta-sts.example.com が HTTPS サーバーを指すようにしてください（そのアドレスの A または AAAA レコード、"
    )
    assert "2. 次のファイルを https://mta-sts.example.com/.well-known/mta-sts.txt で配信してください" in lines
    assert f"{tmp_path / 'mta-sts.txt'} を書き込みました：このまま配信してください。" in lines
    assert (
        f"{tmp_path / 'zone.txt'} を書き込みました：mta-sts.example.com の行を記入して、"
        "example.com のゾーンに追加してください。"
    ) in lines
    copied = [
        line for line in english_out.splitlines() if line.startswith(("version:", "mode:", "mx:", "max_age:", "_"))
    ]
    assert len(copied) == 6  # four policy lines and two records: the same bytes in both languages
    assert [line for line in lines if line in copied] == copied
    left = [line for line in lines if line not in copied and _ENGLISH.search(line)]
    assert not left, f"English left in the Japanese plan: {left}"
    assert not re.search(r"[\u3040-\u30ff]", english.stdout)


def test_its_own_errors_and_json(tmp_path: Path) -> None:
    command = ["generate", "-d", "example.com", "--mx", "mx.example.com", "--mode", "testing", "--max-age", "86400"]
    missing = CliRunner().invoke(app, ["--lang", "ja", *command, "-o", str(tmp_path / "none")], env=C_LOCALE)
    assert missing.exit_code == 3
    assert (
        missing.stderr == f"mtasts: error: {tmp_path / 'none'} に書き込めません：存在しません（先に作成してください）\n"
    )
    (tmp_path / "file").write_text("x")
    not_folder = CliRunner().invoke(app, [*command, "-o", str(tmp_path / "file")], env=JA_LOCALE)
    assert not_folder.stderr == f"mtasts: error: {tmp_path / 'file'} に書き込めません：フォルダではありません\n"
    english = json.loads(CliRunner().invoke(app, [*command, "--json"], env=C_LOCALE).stdout)
    japanese = json.loads(CliRunner().invoke(app, [*command, "--json"], env=JA_LOCALE).stdout)
    assert [w["message"] for w in japanese["warnings"]] == [w["message"] for w in english["warnings"]]
    invalid = CliRunner().invoke(app, [*command[:-4], "--mode", "enforce", "--max-age", "60", "--json", "--rua", "x"])
    assert json.loads(invalid.stdout)["problems"][0]["message"] == "'x' has no scheme; use mailto: or https:"
