"""``mtasts --lang ja web user add|list|remove``: every line Japanese, errors (including the
reasons of :mod:`mtasts.web.accounts`, translated where the CLI writes them) and output alike;
English as it was. Real commands on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.i18n import translator

JA = translator("ja")
C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": "", "MTASTS_DB": ""}
JA_LOCALE = {**C_LOCALE, "LANG": "ja_JP.UTF-8"}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, text in (("short", "short\n"), ("good", "a good long passphrase\n")):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o600)
    return tmp_path


def _run(args: list[str], *, ja: bool = True) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--lang", "ja" if ja else "en", "web", "user", *args], env=C_LOCALE)
    return result.exit_code, result.stdout, result.stderr


def test_the_mistakes_of_web_user_add_in_japanese(files: Path) -> None:
    db = ["--db", str(files / "u.sqlite3")]
    assert _run(["add", "alice", "--password-file", str(files / "short"), *db]) == (
        2,
        "",
        "mtasts: error: パスワードが短すぎます：10 文字以上にしてください\n",
    )
    assert _run(["add", "bad name", "--password-file", str(files / "good"), *db]) == (
        2,
        "",
        "mtasts: error: 'bad name' はユーザー名にできません：英字・数字と . _ @ + - を 1〜64 文字で使ってください"
        "（先頭は英字か数字）\n",
    )
    assert _run(["add", "alice", "--password-file", str(files / "good"), "--role", "admin", *db])[0] == 0
    assert _run(["add", "alice", "--password-file", str(files / "good"), *db]) == (
        2,
        "",
        "mtasts: error: ユーザー 'alice' はすでにいます：置き換えるには、先に削除してください"
        "（'mtasts web user remove alice'）\n",
    )
    assert (
        _run(["remove", "carol", *db])[2]
        == "mtasts: error: ユーザー 'carol' はいません（'mtasts web user list' を参照）\n"
    )


def test_the_output_of_add_list_and_remove_in_japanese(files: Path) -> None:
    db = files / "u.sqlite3"
    where = f"sqlite:///{db}"
    say = JA.gettext
    code, out, _ = _run(["add", "alice", "--password-file", str(files / "good"), "--role", "admin", "--db", str(db)])
    assert (code, out) == (0, f"alice（admin）を {where} に追加しました\n")
    assert (
        out == say("added %(name)s (%(role)s) to %(where)s") % {"name": "alice", "role": "admin", "where": where} + "\n"
    )
    assert _run(["add", "bob", "--password-file", str(files / "good"), "--db", str(db)])[0] == 0
    code, out, _ = _run(["list", "--db", str(db)])
    lines = out.splitlines()
    assert code == 0
    assert len(lines) == 3
    assert lines[0].startswith("alice  admin      ")
    assert lines[0].endswith(" UTC に追加")
    assert lines[1].startswith("bob    read-only  ")
    assert lines[1].endswith(" UTC に追加")
    assert lines[2] == "ユーザー 2 人"
    assert _run(["remove", "bob", "--db", str(db)])[:2] == (
        0,
        "bob を削除しました。そのユーザーのセッションは終了しました\n",
    )
    assert _run(["list", "--db", str(db)])[1].splitlines()[-1] == "ユーザー 1 人"
    assert _run(["remove", "alice", "--db", str(db)])[0] == 0
    assert _run(["list", "--db", str(db)])[1] == (
        "ユーザーはまだいません：'mtasts web user add NAME --password-file FILE --role admin' で追加してください\n"
    )


def test_lang_from_the_environment(files: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["web", "user", "add", "alice", "--password-file", str(files / "short"), "--db", str(files / "u")],
        env=JA_LOCALE,
    )
    assert (result.exit_code, result.stderr) == (
        2,
        "mtasts: error: パスワードが短すぎます：10 文字以上にしてください\n",
    )


def test_english_stays_as_it_was(files: Path) -> None:
    db = ["--db", str(files / "u.sqlite3")]
    assert _run(["add", "alice", "--password-file", str(files / "short"), *db], ja=False)[2] == (
        "mtasts: error: the password is too short: use at least 10 characters\n"
    )
    code, out, _ = _run(["add", "alice", "--password-file", str(files / "good"), *db], ja=False)
    assert (code, out) == (0, f"added alice (read-only) to sqlite:///{files / 'u.sqlite3'}\n")
    lines = _run(["list", *db], ja=False)[1].splitlines()
    assert lines[0].startswith("alice  read-only  added ")
    assert lines[0].endswith(" UTC")
    assert lines[1] == "1 user"
    assert _run(["remove", "alice", *db], ja=False)[1] == "removed alice; their sessions have ended\n"
