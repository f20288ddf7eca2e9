"""The layout and wording of ``mtasts --lang ja COMMAND --help`` piped (not a terminal): Japanese
wraps between characters by display width, never inside an option name, a word or a number
(:func:`mtasts.i18n.help.fill`), at 60 and 100 columns, for every command; and the wording a
new user tripped over reads as the catalogue now says it."""

from __future__ import annotations

import itertools
import re
import subprocess

import pytest
import typer
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.i18n.help import fill, walk
from mtasts.i18n.width import cells
from tests.cli.terminal import COMMAND, environment

_C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": ""}
_RUN_END = re.compile(r"[A-Za-z0-9_./-]+$")
_RUN_START = re.compile(r"^[A-Za-z0-9_./-]+")
PATHS = [path[1:] for path, _ in walk(typer.main.get_command(app))]


def _help(path: tuple[str, ...], lang: str, columns: int) -> str:
    """``--help`` as click lays it out for ``columns`` (CliRunner forces 80 columns whatever
    ``COLUMNS`` says, so the width goes to the context as ``COLUMNS`` would)."""
    result = CliRunner().invoke(app, ["--lang", lang, *path, "--help"], env=_C_LOCALE, terminal_width=columns)
    assert result.exit_code == 0, result.output
    return result.stdout


def _piped_help(path: tuple[str, ...], columns: int) -> str:
    """``mtasts --lang ja PATH --help | cat`` with ``COLUMNS`` set: the real console script."""
    done = subprocess.run(
        [*COMMAND, "--lang", "ja", *path, "--help"],
        capture_output=True,
        env=environment({**_C_LOCALE, "COLUMNS": str(columns)}),
        timeout=60,
        check=True,
    )
    return done.stdout.decode()


def cut_runs(narrow: str, whole: str) -> list[str]:
    """The line breaks of ``narrow`` that fall inside a run of ASCII letters, digits and
    ``-_/.``: where a line ends in such a run and the next begins with one, the two must have
    been apart (a space) in ``whole``, the same help laid out on one line per paragraph."""
    flat = " ".join(whole.split())
    lines = narrow.splitlines()
    cuts = []
    for line, following in itertools.pairwise(lines):
        if line.endswith("...") and not following.startswith(" " * (len(line) - len(line.lstrip()) + 1)):
            continue  # a command's entry in a list, cut short by click with "...", then the next entry
        if _RUN_END.search(line) and _RUN_START.search(following.lstrip()):
            joined = f"{line.split()[-1]} {following.split()[0]}"
            if joined not in flat:
                cuts.append(f"{line.strip()!r} / {following.strip()!r}")
    return cuts


@pytest.mark.parametrize("lang", ["ja", "en"])
@pytest.mark.parametrize("columns", [60, 100])
@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "mtasts")
def test_no_line_breaks_inside_an_option_name_or_a_word(path: tuple[str, ...], columns: int, lang: str) -> None:
    narrow = _help(path, lang, columns)
    assert not cut_runs(narrow, _help(path, lang, 100_000))
    # by display width (a Japanese character takes two columns): only a word too long for any line overflows
    too_wide = [line for line in narrow.splitlines() if cells(line) > columns]
    assert all(cells(max(line.split(), key=cells)) > columns // 2 for line in too_wide), too_wide


def test_the_lines_the_walkthrough_found_cut() -> None:
    """The four places of the report, piped at 100 columns: each whole on one line."""
    serve = _piped_help(("web", "serve"), 100)
    for whole in ("（--refuse-private）", "--public", "X-Remote-User"):
        assert any(whole in line for line in serve.splitlines()), whole
    run = _piped_help(("monitor", "run"), 100)
    assert any("report-events]" in line for line in run.splitlines())
    assert not any(
        line.rstrip().endswith(("report-", "--refus", "--publi", "X-Remote-")) for line in serve.splitlines()
    )


def test_a_catalogue_gap_is_found() -> None:
    """The check sees a cut: click's own wrapping of the same Japanese (before this fix)."""
    from typer._click.formatting import wrap_text

    text = "リバースプロキシのこのヘッダー（例：X-Remote-User）が示す人をログインさせます。"
    assert cut_runs(wrap_text(text, 28), text)
    assert not cut_runs(fill(text, 28), text)


@pytest.mark.parametrize(
    ("text", "width", "lines"),
    [
        # Japanese breaks between characters; an option name stays whole with its brackets
        ("接続せず（--refuse-private）、クライアント", 20, ["接続せず", "（--refuse-private）、", "クライアント"]),
        # a space is a break, dropped at the end of the line
        ("[デフォルト: report-events]", 20, ["[デフォルト:", "report-events]"]),
        # an ASCII run wider than the line overflows it rather than being cut
        ("例：https://example.com/a/very/long/path です", 12, ["例：", "https://example.com/a/very/long/path", "です"]),
        # a line never begins with a closing mark or punctuation (kinsoku)
        ("ああああ。いい", 8, ["あああ", "あ。いい"]),
    ],
)
def test_fill(text: str, width: int, lines: list[str]) -> None:
    assert fill(text, width).split("\n") == lines


def test_the_wording_of_lab_monitor_and_web_serve() -> None:
    flat = "".join(_help(("lab",), "ja", 100).split())
    assert "ループバック上に再現したメール環境一式（DNS、ポリシーホスト、MXホスト、TLSRPTの受信先）。" in flat
    assert "まるごと" not in flat
    flat = "".join(_help(("monitor", "run"), "ja", 100).split())
    assert (
        "保存されたTLSレポートからもイベントを作ります（レポートが--dbではなく別のサービスに届くときはオフにします）。"
        in flat
    )
    serve = "".join(_help(("web", "serve"), "ja", 100).split())
    assert "X-Remote-User）が示す人をログインさせます。" in serve
    assert "監査ログもここに保存し" in serve
    assert "サインイン" not in serve
    assert "監査記録" not in serve
