"""``mtasts report`` in Japanese: the tables' headers and titles, the problems of a file that is
not a report, the ingest and summary lines, the digest line by line and every error line, under
``--lang ja`` and ``LANG=ja_JP.UTF-8`` (the ``findings`` catalogue, mtasts.i18n); names, counts,
result types, JSON and CSV stay as they are.

Each error and each digest line is checked the same way: the English run's text is a sentence
the catalogue knows whole (``Translated.complete``), and the Japanese run prints its translation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.core.problems import ParseError
from mtasts.i18n import translator
from mtasts.report.mail import parse_any
from tests.conftest import ABSENT_REASON, TLSRPT_SAMPLES

JA = translator("ja")
C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": "", "MTASTS_DB": ""}
JA_LOCALE = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "MTASTS_DB": ""}
_ERROR = "mtasts: error: "


@pytest.fixture(scope="module")
def samples() -> list[Path]:
    if not TLSRPT_SAMPLES.is_dir():
        pytest.skip(ABSENT_REASON)
    return sorted(p for p in TLSRPT_SAMPLES.rglob("*") if p.is_file() and p.suffix != ".md")


@pytest.fixture(scope="module")
def store(samples: list[Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh SQLite store holding the shared samples."""
    db = str(tmp_path_factory.mktemp("store") / "reports.sqlite3")
    result = CliRunner().invoke(app, ["report", "ingest", "--db", db, *map(str, samples)], env=C_LOCALE)
    assert result.exit_code in (0, 1), result.output  # a negative sample is set aside
    return db


def _both(*args: str) -> tuple[str, str]:
    """The stdout of ``mtasts ARGS`` in English and with ``LANG=ja_JP.UTF-8``."""
    english = CliRunner().invoke(app, list(args), env=C_LOCALE)
    japanese = CliRunner().invoke(app, list(args), env=JA_LOCALE)
    assert english.exit_code == japanese.exit_code, (english.output, japanese.output)
    return english.stdout, japanese.stdout


def test_every_problem_of_the_samples_is_in_the_catalogue(samples: list[Path]) -> None:
    sentences = set()
    for path in samples:
        try:
            problems = [w for report in parse_any(path.read_bytes()) for w in report.warnings]
        except ParseError as exc:
            problems = list(exc.problems)
        sentences |= {(p.code, text) for p in problems for text in (p.message, p.fix)}
    assert sentences  # the samples hold invalid and inconsistent reports
    untranslated = sorted(s for s in sentences if not JA.translate(s[1]).complete)
    assert not untranslated, f"sentences without a shape in src/mtasts/i18n/messages.py: {untranslated}"


def test_parse_prints_tables_and_problems_in_japanese(samples: list[Path]) -> None:
    negative = [p for p in samples if p.parent.name == "negative"]
    result = CliRunner().invoke(app, ["--lang", "ja", "report", "parse", *map(str, samples)], env=C_LOCALE)
    assert result.exit_code == 1  # the negative sample is not a report
    header = "ドメイン  ポリシー  成功  失敗  失敗：結果の種類 ×セッション数、送信 MTA → 受信 MX"
    assert re.sub(r" +", "  ", header) in {re.sub(r" +", "  ", line) for line in result.stdout.splitlines()}
    assert "receiving MX" not in result.stdout
    assert "✗ エラー: メッセージに TLSRPT のレポートがありません" in result.stderr
    assert f"  読み込み元：{negative[0]}" in result.stderr.splitlines()
    assert "[mail.no_report]" in result.stderr


def test_ingest_summary_and_json(samples: list[Path], tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite3")
    result = CliRunner().invoke(app, ["report", "ingest", "--db", db, *map(str, samples)], env=JA_LOCALE)
    assert result.exit_code == 1
    line = result.stdout.splitlines()[-1]
    pattern = r"レポート \d+ 件を保存、\d+ 件は保存済み、[1-9]\d* 件を退避、\d+ 件をスキップ。データベース sqlite:///"
    assert re.fullmatch(pattern + re.escape(db), line), line
    english, japanese = _both("report", "summary", "--db", db)
    for title in ("ポリシードメインごとの TLS セッション", "対応が必要な送信側", "結果の種類ごとの失敗"):
        assert title in japanese
    assert "送信側がセッションを検証できませんでした：証明書チェーンを確認してください" in japanese
    assert "Senders to work with" in english
    assert "Senders to work with" not in japanese
    as_json = [
        json.loads(CliRunner().invoke(app, ["report", "summary", "--db", db, "--json"], env=env).stdout)
        for env in (C_LOCALE, JA_LOCALE)
    ]
    assert as_json[0] == as_json[1]


def test_the_digest_line_by_line(store: str) -> None:
    english, japanese = _both("report", "digest", "--db", store, "--until", "2025-06-20", "--days", "30")
    lines = english.splitlines()
    assert any(line.startswith("Failing senders") for line in lines)
    assert [line for line in lines if line and not JA.translate(line).complete] == []
    assert japanese.splitlines() == [JA.text(line) for line in lines]
    assert japanese.startswith("TLSRPT のまとめ：2025-05-22〜2025-06-20")


ERRORS = [
    ("report", "summary", "--db", "{tmp}/none.sqlite3"),
    ("report", "summary", "--db", "{tmp}/no/such/folder/r.sqlite3"),
    ("report", "summary", "--db", "mysql://x/y"),
    ("report", "summary", "--db", "not a url://"),
    ("report", "export", "--format", "csv", "--db", "{tmp}/none.sqlite3", "-o", "{tmp}/missing/x.csv"),
    ("report", "export", "--format", "csv", "--db", "{tmp}/none.sqlite3", "-o", "{tmp}"),
    ("report", "ingest", "--db", "{tmp}/r.sqlite3"),
    ("report", "digest", "--until", "yesterday"),
    ("report", "digest", "--mail-to", "a@example.com", "--starttls", "--smtp-security", "tls"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp-user", "u", "--smtp-security", "none"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp-ca-file", "{tmp}", "--smtp-security", "none"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp-password-file", "{tmp}/p"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp-user", "u"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp-ca-file", "{tmp}"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp-ca-file", "{tmp}/none.pem"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp-user", "u", "--smtp-password-file", "{tmp}/none"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp", "[2001:db8::1"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp", "mail host:25"),
    ("report", "digest", "--mail-to", "a@example.com", "--smtp", "mail:abc"),
    ("report", "serve", "--db", "{tmp}/r.sqlite3"),
    ("report", "serve", "--db", "{tmp}/r.sqlite3", "--no-tls", "--rate", "0"),
    ("report", "serve", "--db", "{tmp}/r.sqlite3", "--no-tls", "--path", "tlsrpt"),
]


@pytest.mark.parametrize("args", ERRORS, ids=lambda a: " ".join(a[1:4]))
def test_each_error_line_is_in_japanese(args: tuple[str, ...], tmp_path: Path) -> None:
    command = [arg.format(tmp=tmp_path) for arg in args]
    english = CliRunner().invoke(app, command, env=C_LOCALE)
    japanese = CliRunner().invoke(app, ["--lang", "ja", *command], env=C_LOCALE)
    assert english.exit_code == japanese.exit_code, japanese.output
    assert english.exit_code in (2, 3)
    assert english.stderr.startswith(_ERROR), english.stderr
    said = english.stderr.removeprefix(_ERROR).rstrip("\n")
    assert JA.translate(said).complete, said
    assert japanese.stderr == f"{_ERROR}{JA.text(said)}\n"
    assert re.search(r"[\u3040-\u30ff]", japanese.stderr)


def test_an_unreadable_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", "parse", str(tmp_path / "none.json")], env=JA_LOCALE)
    assert result.exit_code == 3
    missing = tmp_path / "none.json"
    assert result.stderr == f"エラー: {missing} を読めません：そのようなファイルやディレクトリはありません\n"
