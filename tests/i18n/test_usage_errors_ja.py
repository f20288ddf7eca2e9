"""click's and Typer's usage errors in Japanese (mtasts.i18n.usage): ``mtasts`` run as a user
runs it, with ``--lang ja`` or ``LANG=ja_JP.UTF-8``, its output piped (click's plain text) and on
a terminal (Typer's Rich panel); the English run of each is today's text, byte for byte; the
exit status is 2 in both; a message the catalogue does not know whole stays English whole; and a
``--lang ja`` run in-process leaves the next run English."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer._click.exceptions import UsageError
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.i18n import LOCALE_DIR, current
from mtasts.i18n.help import TranslatedHelpGroup
from mtasts.i18n.usage import USAGE_MESSAGES
from tests.cli.terminal import in_terminal, piped

babel = pytest.importorskip("babel", reason="Babel (a test dependency) is not installed")
from babel.messages.pofile import read_po  # noqa: E402

PO = LOCALE_DIR / "ja" / "LC_MESSAGES" / "cli.po"
C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": "", "MTASTS_DB": ""}
JA_LOCALE = {**C_LOCALE, "LANG": "ja_JP.UTF-8"}


def _shown(usage: str | None, command: str, error: str, *, japanese: bool) -> str:
    """What click writes for a usage error: usage line, hint, blank line, error line."""
    if usage is None:
        return f"エラー: {error}\n" if japanese else f"Error: {error}\n"
    if japanese:
        return f"使い方: {usage}\nヘルプは '{command} -h' で表示できます。\n\nエラー: {error}\n"
    return f"Usage: {usage}\nTry '{command} -h' for help.\n\nError: {error}\n"


CHECK = "mtasts check [OPTIONS] [domains]..."
LINT = "mtasts lint policy [OPTIONS] {FILE|-}"
ROOT = "mtasts [OPTIONS] COMMAND [ARGS]..."

# (arguments, usage line, command path, English error, Japanese error); the Japanese run puts
# "--lang ja" first, or (lang="env") sets LANG=ja_JP.UTF-8
CASES = [
    pytest.param(
        ["check", "--bogus"], CHECK, "mtasts check",
        "No such option: --bogus",
        "--bogus というオプションはありません",
        id="unknown-option",
    ),
    pytest.param(
        ["check", "--tim", "example.com"], CHECK, "mtasts check",
        "No such option: --tim (Possible options: --timeout)",
        "--tim というオプションはありません（候補：--timeout）",
        id="unknown-option-suggested",
    ),
    pytest.param(
        ["lint", "policy"], LINT, "mtasts lint policy",
        "Missing argument 'FILE|-'.",
        "引数 'FILE|-' が指定されていません。",
        id="missing-argument",
    ),
    pytest.param(
        ["generate", "--mx", "mail.example.com"], "mtasts generate [OPTIONS]", "mtasts generate",
        "Missing option '--domain' / '-d'.",
        "オプション '--domain' / '-d' が指定されていません。",
        id="missing-option",
    ),
    pytest.param(
        ["check", "--concurrency", "1.5", "example.com"], CHECK, "mtasts check",
        "Invalid value for '--concurrency' / '-c': "
        "Input should be a valid integer, unable to parse string as an integer",
        "'--concurrency' / '-c' の値が正しくありません：整数を指定してください（整数として読めません）",
        id="bad-int",
    ),
    pytest.param(
        ["check", "--timeout", "soon", "example.com"], CHECK, "mtasts check",
        "Invalid value for '--timeout': Input should be a valid number, unable to parse string as a number",
        "'--timeout' の値が正しくありません：数値を指定してください（数値として読めません）",
        id="bad-float",
    ),
    pytest.param(
        ["report", "summary", "--days", "0"], "mtasts report summary [OPTIONS]", "mtasts report summary",
        "Invalid value for '--days': Input should be greater than or equal to 1",
        "'--days' の値が正しくありません：1 以上にしてください",
        id="out-of-range",
    ),
    pytest.param(
        ["check", "--fail-on", "sometimes", "example.com"], CHECK, "mtasts check",
        "Invalid value for '--fail-on': Value error, 'sometimes' is not one of 'warning', 'error', 'never'.",
        "'--fail-on' の値が正しくありません：'sometimes' は 'warning', 'error', 'never' のどれでもありません。",
        id="bad-choice",
    ),
    pytest.param(
        ["--width", "3", "check", "example.com"], ROOT, "mtasts",
        "Invalid value for '--width' (env var: 'MTASTS_WIDTH'): Input should be greater than or equal to 20",
        "'--width' (環境変数 'MTASTS_WIDTH') の値が正しくありません：20 以上にしてください",
        id="env-var-hint",
    ),
    pytest.param(
        ["lint", "policy", "mta-sts.txt", "extra.txt"], LINT, "mtasts lint policy",
        "Got unexpected extra argument(s) (extra.txt)",
        "余分な引数があります（extra.txt）",
        id="extra-argument",
    ),
    pytest.param(
        ["check", "--timeout"], None, "mtasts check",
        "Option '--timeout' requires an argument.",
        "オプション '--timeout' には値が必要です。",
        id="option-without-value",
    ),
    pytest.param(
        ["lab", "launch"], "mtasts lab [OPTIONS] COMMAND [ARGS]...", "mtasts lab",
        "No such command 'launch'.",
        "'launch' というコマンドはありません。",
        id="unknown-command",
    ),
    pytest.param(
        ["--debug"], ROOT, "mtasts",
        "Missing command.",
        "コマンドが指定されていません。",
        id="missing-command",
    ),
]  # fmt: skip


@pytest.mark.parametrize("lang", ["--lang", "env"])
@pytest.mark.parametrize(("args", "usage", "command", "english", "japanese"), CASES)
def test_usage_error_in_japanese_and_english_as_before(
    lang: str, args: list[str], usage: str | None, command: str, english: str, japanese: str
) -> None:
    if lang == "--lang":  # the English run once per case
        before = piped(args, env=C_LOCALE)
        assert (before.returncode, before.stdout) == (2, "")
        assert before.stderr == _shown(usage, command, english, japanese=False)
        ja = piped(["--lang", "ja", *args], env=C_LOCALE)
    else:
        ja = piped(args, env=JA_LOCALE)
    assert (ja.returncode, ja.stdout) == (2, "")
    assert ja.stderr == _shown(usage, command, japanese, japanese=True)


@pytest.mark.parametrize("asked", [["--lang", "ja"], ["--lang=ja"], ["--lang", "JA"]])
def test_a_mistake_among_the_roots_own_options_is_said_in_the_language_asked(asked: list[str]) -> None:
    """click stops at an unknown root option before any callback, ``--lang``'s too: the language
    is read from the arguments first, so the error is Japanese all the same."""
    ja = piped([*asked, "--bogus", "check"], env=C_LOCALE)
    assert (ja.returncode, ja.stdout) == (2, "")
    assert ja.stderr == _shown(ROOT, "mtasts", "--bogus というオプションはありません", japanese=True)


def test_a_lang_word_after_the_sub_command_is_not_the_roots() -> None:
    """``--lang`` belongs to ``mtasts`` itself: after the sub-command it is that command's
    unknown option, said in the environment's language."""
    english = piped(["check", "--lang", "ja"], env=C_LOCALE)
    assert english.returncode == 2
    assert english.stderr == _shown(CHECK, "mtasts check", "No such option: --lang", japanese=False)


def test_our_own_bad_value_goes_through_the_findings_shapes() -> None:
    """``--lang xx`` is our BadParameter: its reason from the ``findings`` catalogue (the
    language is the environment's, as the one asked for does not exist)."""
    before = piped(["--lang", "xx", "check"], env=C_LOCALE)
    assert before.returncode == 2
    assert before.stderr == _shown(ROOT, "mtasts", "Invalid value for --lang: 'xx': choose en or ja", japanese=False)
    ja = piped(["--lang", "xx", "check"], env=JA_LOCALE)
    assert ja.returncode == 2
    assert ja.stderr == _shown(
        ROOT, "mtasts", "--lang の値が正しくありません：'xx'：en か ja を選んでください", japanese=True
    )


def test_rich_panel_on_a_terminal() -> None:
    english = in_terminal(["check", "--tim", "example.com"], 80, env=C_LOCALE)
    assert english.returncode == 2
    assert english.stdout == (
        "Usage: mtasts check [OPTIONS] [domains]...\n"
        "Try 'mtasts check -h' for help.\n"
        "╭─ Error ──────────────────────────────────────────────────────────────────────╮\n"
        "│ No such option: --tim (Possible options: --timeout)                          │\n"
        "╰──────────────────────────────────────────────────────────────────────────────╯\n"
    )
    japanese = in_terminal(["--lang", "ja", "check", "--tim", "example.com"], 80, env=C_LOCALE)
    assert japanese.returncode == 2
    assert japanese.stdout == (
        "使い方: mtasts check [OPTIONS] [domains]...\n"
        "ヘルプは 'mtasts check -h' で表示できます。\n"
        "╭─ エラー ─────────────────────────────────────────────────────────────────────╮\n"
        "│ --tim というオプションはありません（候補：--timeout）                        │\n"
        "╰──────────────────────────────────────────────────────────────────────────────╯\n"
    )


def test_a_japanese_run_in_process_leaves_the_next_one_english() -> None:
    show = UsageError.__dict__["show"]
    ja = CliRunner().invoke(app, ["--lang", "ja", "check", "--bogus"], env=C_LOCALE)
    assert ja.exit_code == 2
    assert ja.stderr == _shown(CHECK, "mtasts check", "--bogus というオプションはありません", japanese=True)
    assert current().tag == "en"
    assert UsageError.__dict__["show"] is show  # click's own again, for any other code in the process
    english = CliRunner().invoke(app, ["check", "--bogus"], env=C_LOCALE)
    assert english.exit_code == 2
    assert english.stderr == _shown(CHECK, "mtasts check", "No such option: --bogus", japanese=False)


def _small(rich: bool) -> typer.Typer:
    """A command of the same root group for what mtasts's own commands cannot produce."""
    small = typer.Typer(
        cls=TranslatedHelpGroup,
        rich_markup_mode="rich" if rich else None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @small.command()
    def read(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
        """Read FILE."""

    @small.command()
    def stop() -> None:
        raise typer.Abort

    @small.command()
    def odd(value: Annotated[str, typer.Option()] = "") -> None:
        raise typer.BadParameter("a reason no catalogue has", param_hint="--value")

    return small


def test_paths_abort_and_unknown_messages(tmp_path: Path) -> None:
    small = _small(rich=False)
    runner = CliRunner()
    none = tmp_path / "none.txt"
    missing = runner.invoke(small, ["read", str(none)], prog_name="small", env=C_LOCALE)
    assert missing.stderr.endswith(f"Error: Invalid value for 'file': file '{none}' does not exist.\n")
    ja = runner.invoke(small, ["read", str(none)], prog_name="small", env=JA_LOCALE)
    assert ja.exit_code == 2
    assert ja.stderr.endswith(f"エラー: 'file' の値が正しくありません：ファイル '{none}' はありません。\n")
    folder = runner.invoke(small, ["read", str(tmp_path)], prog_name="small", env=JA_LOCALE)
    assert folder.stderr.endswith(f"{tmp_path}' はディレクトリです（ファイルを指定してください）。\n")
    stopped = runner.invoke(small, ["stop"], prog_name="small", env=JA_LOCALE)
    assert (stopped.exit_code, stopped.stderr) == (1, "中断しました。\n")
    assert runner.invoke(small, ["stop"], prog_name="small", env=C_LOCALE).stderr == "Aborted!\n"
    # a message no catalogue knows: that line English whole, the lines around it Japanese
    odd = runner.invoke(small, ["odd"], prog_name="small", env=JA_LOCALE)
    assert odd.exit_code == 2
    assert odd.stderr == (
        "使い方: small odd [OPTIONS]\nヘルプは 'small odd -h' で表示できます。\n\n"
        "Error: Invalid value for --value: a reason no catalogue has\n"
    )


def test_rich_abort_and_unknown_message_in_the_panel() -> None:
    small = _small(rich=True)
    stopped = CliRunner().invoke(small, ["stop"], prog_name="small", env=JA_LOCALE)
    assert (stopped.exit_code, stopped.stderr) == (1, "中断しました。\n")
    odd = CliRunner().invoke(small, ["odd"], prog_name="small", env=JA_LOCALE)
    assert odd.exit_code == 2
    assert "ヘルプは 'small odd -h' で表示できます。" in odd.stderr
    assert "╭─ Error ─" in odd.stderr  # the panel's title goes with its (English) message
    assert "│ Invalid value for --value: a reason no catalogue has " in odd.stderr
    known = CliRunner().invoke(small, ["read", "/nonexistent"], prog_name="small", env=JA_LOCALE)
    assert "╭─ エラー ─" in known.stderr
    assert "│ 'file' の値が正しくありません：ファイル '/nonexistent' はありません。 " in known.stderr


def untranslated(japanese: dict[str, str]) -> list[str]:
    return [message for message in USAGE_MESSAGES if not japanese.get(message)]


def test_every_usage_message_is_translated() -> None:
    with PO.open("rb") as stream:
        japanese = {m.id: m.string for m in read_po(stream) if m.id and not m.fuzzy}
    assert not untranslated(japanese), f"{PO} lacks: {untranslated(japanese)}"
    assert untranslated({m: t for m, t in japanese.items() if m != "Missing command."}) == ["Missing command."]
