"""``mtasts lint`` in Japanese: every problem lint finds in every policy, ``_mta-sts`` and
``_smtp._tls`` vector of ../shared/vectors is translated whole, as the command prints it under
``--lang ja``; what is data (quoted values, codes, places) stays as it was; JSON stays English.

The catalogue itself (no missing, stale or fuzzy entry, the .mo compiled from the .po) is
checked by tests/i18n/test_findings.py: lint's sentences are shapes of the same ``findings``
catalogue (src/mtasts/i18n/messages.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.lint import app as lint_app
from mtasts.cli.main import app
from mtasts.core.advice import policy_advice
from mtasts.core.policy import lint_policy
from mtasts.core.problems import Problem
from mtasts.core.record import lint_sts_record
from mtasts.core.tlsrpt_record import lint_tlsrpt_record
from mtasts.i18n import translator
from tests.conftest import ABSENT_REASON, VECTORS

JA = translator("ja")
_QUOTED = re.compile(r"'[^']*'")


def _vectors(name: str) -> list[dict[str, Any]]:
    path = VECTORS / name
    if not path.is_file():
        pytest.skip(ABSENT_REASON)
    vectors: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))["vectors"]
    return vectors


def _records(vector: dict[str, Any]) -> list[str]:
    """The TXT records of a vector, each as ``mtasts lint record`` takes it (strings joined)."""
    value = vector["input"]
    if isinstance(value, str):
        return [value]
    return ["".join(item) if isinstance(item, list) else item for item in value]


def lint_inputs() -> Iterator[tuple[str, str, str | bytes]]:
    """(vector id, lint sub-command, input) for every policy, record and tlsrpt vector."""
    for vector in _vectors("sts-policy-vectors.json"):
        data = bytes.fromhex(vector["input_bytes_hex"]) if "input_bytes_hex" in vector else vector["input"]
        yield vector["id"], "policy", data
    for vector in _vectors("sts-txt-vectors.json"):
        for text in _records(vector):
            yield vector["id"], "record", text
    for vector in _vectors("tlsrpt-txt-vectors.json"):
        for text in _records(vector):
            yield vector["id"], "tlsrpt", text


def lint(kind: str, data: str | bytes) -> tuple[Problem, ...]:
    """The problems ``mtasts lint KIND`` reports for ``data`` (advice included, as it adds it)."""
    return _lint(kind, data)[1]


def _lint(kind: str, data: str | bytes) -> tuple[bool, tuple[Problem, ...]]:
    if kind == "policy":
        policy, problems = lint_policy(data)
        return policy is not None, problems + (policy_advice(policy) if policy is not None else ())
    assert isinstance(data, str)
    record, found = (lint_sts_record if kind == "record" else lint_tlsrpt_record)(data)
    return record is not None, found


SUMMARY = {"policy": "ポリシー", "record": "_mta-sts レコード", "tlsrpt": "_smtp._tls レコード"}


def _sentences(problem: Problem) -> Iterator[tuple[str, str]]:
    yield "message", problem.message
    yield "fix", problem.fix
    if problem.location:
        yield "location", problem.location


def test_every_problem_of_every_vector_is_translated() -> None:
    untranslated = sorted(
        {
            (problem.code, where, text)
            for _, kind, data in lint_inputs()
            for problem in lint(kind, data)
            for where, text in _sentences(problem)
            if not JA.translate(text).complete
        }
    )
    assert not untranslated, (
        f"{len(untranslated)} lint sentences have no shape in src/mtasts/i18n/messages.py: {untranslated}"
    )
    codes = {p.code for _, kind, data in lint_inputs() for p in lint(kind, data)}
    assert len(codes) >= 45  # the vectors reach nearly every problem code lint has (49 of them today)


def test_quoted_data_survives_translation() -> None:
    """A quoted value (a field, an MX pattern, the text found) is data: the translation keeps
    each one, so a wrong split of a sentence into its shape's parts shows here."""
    lost = sorted(
        {
            (problem.code, text, piece)
            for _, kind, data in lint_inputs()
            for problem in lint(kind, data)
            for _, text in _sentences(problem)
            for piece in _QUOTED.findall(text)
            if piece not in JA.text(text)
        }
    )
    assert not lost, lost


@pytest.mark.parametrize(
    ("english", "japanese"),
    [
        (
            "mx 'mail.example.com mx2.example.com': ' ' at position 17 is not allowed in a host name",
            "mx 'mail.example.com mx2.example.com'：17 文字目の ' ' はホスト名に使えません",
        ),
        (
            "the id 'a;b' contains ';'; only letters and digits are allowed"
            " (a repeat: senders ignore it and use the first value, RFC 8461 §3.2)",
            "id 'a;b' に ';' が含まれています。使えるのは英字と数字だけです"
            "（繰り返された行です。送信側はこれを無視して最初の値を使います。RFC 8461 §3.2）",
        ),
        (
            "'version' appears again; the first value 'STSv1' is used and 'STSv2' is ignored",
            "'version' が繰り返されています。最初の値 'STSv1' が使われ、'STSv2' は無視されます",
        ),
        ("line 3, column 12", "3 行 12 列目"),
    ],
)
def test_a_sentence_is_cut_at_the_right_places(english: str, japanese: str) -> None:
    assert JA.text(english) == japanese


def _argument(kind: str, data: str | bytes, folder: Path) -> str:
    """The command-line argument for ``data``: a policy goes in a file, a record as it is."""
    if kind != "policy":
        assert isinstance(data, str)
        return data
    path = folder / "mta-sts.txt"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def _invoke(kind: str, data: str | bytes, folder: Path, *options: str, json_output: bool = False) -> Any:
    """``mtasts [OPTIONS] lint KIND [--json] -- INPUT`` in a C locale (``--lang`` decides)."""
    command = [*options, "lint", kind, *(["--json"] if json_output else []), "--", _argument(kind, data, folder)]
    return CliRunner().invoke(app, command, env={"LANG": "C", "LC_ALL": "", "LC_MESSAGES": ""})


def test_mtasts_lint_prints_every_vector_in_japanese(tmp_path: Path) -> None:
    """Each vector as a user with ``LANG=ja_JP.UTF-8`` runs it: ``mtasts lint ...`` prints every
    problem's message and fix in Japanese (no English sentence left), its code, and a Japanese
    summary line. (The ``lint`` sub-app alone, as ``mtasts`` mounts it: building the whole
    command tree for each of some 300 inputs would take a minute.)"""
    missing: list[tuple[str, str]] = []
    env = {"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
    for vector_id, kind, data in lint_inputs():
        valid, problems = _lint(kind, data)
        shown = CliRunner().invoke(lint_app, [kind, "--", _argument(kind, data, tmp_path)], env=env)
        assert shown.exit_code == (0 if valid else 1), (vector_id, shown.output)
        out = shown.stdout
        for problem in problems:
            for where, text in (("message", problem.message), ("fix", problem.fix)):
                if JA.text(text) not in out or text in out:
                    missing.append((vector_id, f"{where}: {text}"))
            if f"[{problem.code}]" not in out:
                missing.append((vector_id, f"code {problem.code}"))
        summary = out.splitlines()[-1]
        wanted = f"✓ {SUMMARY[kind]}は有効です" if valid else f"✗ {SUMMARY[kind]}は無効です："
        if not summary.startswith(wanted):
            missing.append((vector_id, f"summary line {summary!r}"))
    assert not missing, f"{len(missing)} things printed in English: {missing[:40]}"


def test_json_stays_english_and_the_same(tmp_path: Path) -> None:
    data = "version: STSv1\nmode: enforce\nmx: mail.example.com.\nmax_age: 86400\n"
    english = json.loads(_invoke("policy", data, tmp_path, json_output=True).stdout)
    japanese = json.loads(_invoke("policy", data, tmp_path, "--lang", "ja", json_output=True).stdout)
    assert japanese == english
    assert english["problems"][0]["fix"] == "Remove the trailing dot: 'mx: mail.example.com'."


def test_lang_from_the_environment(tmp_path: Path) -> None:
    """``LANG=ja_JP.UTF-8`` without ``--lang``: the summary, the problem and its fix in Japanese."""
    result = CliRunner().invoke(
        app, ["lint", "record", "v=STSv1; id=2026 1201"], env={"LANG": "ja_JP.UTF-8", "LC_ALL": ""}
    )
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "✗ エラー 1 行 13 列目: id '2026 1201' に ' ' が含まれています。"
        "使えるのは英字と数字だけです [record.id.syntax]",
        "    対処：1〜32 文字の英字と数字を使ってください。"
        "たとえば 20261129T081500 のような UTC のタイムスタンプです。",
        "✗ _mta-sts レコードは無効です：エラー 1 件",
    ]


def test_a_valid_policy_with_advice_and_lints_own_errors(tmp_path: Path) -> None:
    data = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 3600\n"
    result = _invoke("policy", data, tmp_path, "--lang", "ja")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("! 警告: モード 'enforce' で max_age 3600 は 1 週間未満です。")
    assert lines[-1] == "✓ ポリシーは有効です（警告 1 件）"
    assert "i 情報: mode 'enforce' で、TLS レポートの有無は不明です。" in result.stdout
    usage = CliRunner().invoke(app, ["--lang", "ja", "lint", "policy", "--rua", "http://x", "-"], input=data)
    assert usage.exit_code == 2
    assert usage.stderr == (
        "mtasts: error: --rua：スキーム 'http:' には対応していません。レポートの送り先は mailto: か https: の URI です"
        "（'mailto:...' か 'https://...' を使ってください。）\n"
    )
    unreadable = CliRunner().invoke(app, ["--lang", "ja", "lint", "policy", str(tmp_path / "none.txt")])
    assert unreadable.exit_code == 3
    missing = tmp_path / "none.txt"
    assert unreadable.stderr == f"mtasts: error: {missing} を読めません：そのようなファイルやディレクトリはありません\n"
