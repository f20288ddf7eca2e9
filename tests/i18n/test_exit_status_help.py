"""The last paragraph of every ``--help``: the command's own exit statuses, in English and in
Japanese. Exit status 1 is stated only by the commands that exit with it
(:data:`mtasts.cli.exitcodes.WHEN_PROBLEMS`), and an option named there is one the command has:
no ``--fail-on`` in the help of ``monitor run`` or ``web serve``."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mtasts.cli.exitcodes import EXIT_CODES_HELP, WHEN_PROBLEMS, exit_status_help
from mtasts.cli.main import app
from mtasts.i18n.help import catalogue, walk

_C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": ""}
TREE = dict(walk(typer.main.get_command(app)))
PATHS = list(TREE)
_OPTION = re.compile(r"--[a-z][a-z-]*")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _last_paragraph(path: tuple[str, ...], lang: str) -> str:
    """The epilog (for ``mtasts`` itself: the last paragraph of its help, above the commands)."""
    result = CliRunner().invoke(app, ["--lang", lang, *path[1:], "--help"], env=_C_LOCALE, terminal_width=400)
    assert result.exit_code == 0, result.output
    paragraphs = result.stdout.rstrip().split("\n\n")
    if len(path) == 1:
        paragraphs = paragraphs[
            : next(i for i, p in enumerate(paragraphs) if p.lstrip().startswith(("Options", "オプション")))
        ]
    return _flat(paragraphs[-1])


def _options(node: Any) -> set[str]:
    return {o for p in node.params for o in getattr(p, "opts", ()) if o.startswith("--")}


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_each_help_ends_with_its_own_exit_statuses(path: tuple[str, ...]) -> None:
    node = TREE[path]
    group = hasattr(node, "commands")
    english = EXIT_CODES_HELP if group else exit_status_help(" ".join(path[1:]))
    assert _last_paragraph(path, "en") == english
    assert _last_paragraph(path, "ja") == catalogue("ja").gettext(english) != english
    if group:
        return
    # the claim against the command: 1 only where it exits 1; an option named is one it has
    says_one = " 1 " in english
    assert says_one == (" ".join(path[1:]) in WHEN_PROBLEMS)
    assert set(_OPTION.findall(english)) - {"--debug"} <= _options(node)
    for option in ("--fail-on", "--exit-status"):
        if option in _options(node):
            assert option in english, f"{' '.join(path)} has {option}: its exit status 1 depends on it"


def test_the_commands_of_the_walkthrough() -> None:
    assert _last_paragraph(("mtasts", "monitor", "run"), "en") == (
        "Exit status: 0 success, 1 an event opened (only with --exit-status), 2 usage error, "
        "3 could not run (network, database, files), 4 internal error (rerun with --debug)."
    )
    assert _last_paragraph(("mtasts", "monitor", "run"), "ja") == (
        "終了ステータス：0 成功、1 新しいイベントが発生した（--exit-status を付けたときだけ）、2 使い方の誤り、"
        "3 実行できない（ネットワーク、データベース、ファイル）、4 内部エラー（--debug を付けて再実行してください）。"
    )
    assert _last_paragraph(("mtasts", "web", "serve"), "ja") == (
        "終了ステータス：0 成功、2 使い方の誤り、3 実行できない（ネットワーク、データベース、ファイル）、"
        "4 内部エラー（--debug を付けて再実行してください）。"
    )
    assert "--fail-on" in _last_paragraph(("mtasts", "check"), "ja")


def test_every_row_is_a_command() -> None:
    commands = {" ".join(p[1:]) for p, node in TREE.items() if not hasattr(node, "commands")}
    assert set(WHEN_PROBLEMS) <= commands
