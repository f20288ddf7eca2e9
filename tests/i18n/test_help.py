"""``mtasts --lang ja COMMAND --help`` (and ``LANG=ja_JP.UTF-8``): the help of the commands a
newcomer meets first is Japanese, every command and option of them, from the ``cli`` catalogue
(mtasts.i18n.help); the catalogue lacks none of their strings, holds none the tree no longer
has, and its .mo is compiled from its .po; English help is unchanged.

Covered: ``mtasts`` itself and every command group with all its sub-commands (:data:`COVERED`,
which must name every group of the tree: a new group fails the test until it is translated)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.i18n import LOCALE_DIR
from mtasts.i18n.help import LABELS, help_messages, short_help_id, walk
from mtasts.i18n.usage import USAGE_MESSAGES

babel = pytest.importorskip("babel", reason="Babel (a test dependency) is not installed")
from babel.messages.mofile import read_mo  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

COVERED = ("check", "lint", "generate", "report", "demo", "lab", "publish", "resolver", "web", "monitor")
PO = LOCALE_DIR / "ja" / "LC_MESSAGES" / "cli.po"
_C_LOCALE = {"LANG": "C", "LC_ALL": "", "LC_MESSAGES": ""}


@pytest.fixture(scope="module")
def tree() -> Any:
    return typer.main.get_command(app)


@pytest.fixture(scope="module")
def japanese() -> dict[str, str]:
    with PO.open("rb") as stream:
        catalogue = read_po(stream)
    assert not [m.id for m in catalogue if m.id and m.fuzzy], "fuzzy translations to review"
    return {m.id: m.string for m in catalogue if m.id and m.string}


def covered(place: str) -> bool:
    """Whether a place (``mtasts/report/digest/--smtp``) belongs to the covered commands."""
    parts = place.split(" (", maxsplit=1)[0].split("/")
    return len(parts) == 1 or parts[1].startswith("-") or parts[1] in COVERED


def covered_commands(tree: Any) -> list[tuple[str, ...]]:
    return [path for path, _ in walk(tree) if len(path) == 1 or path[1] in COVERED]


def untranslated(tree: Any, japanese: dict[str, str]) -> list[tuple[str, str]]:
    """(first place, message id) of each help string of the covered commands without a translation."""
    wanted = {m: places for m, places in help_messages(tree).items() if any(covered(p) for p in places)}
    assert len(wanted) > 250  # the walk found the covered commands' options, not just their names
    return sorted((places[0], m) for m, places in wanted.items() if m not in japanese)


def test_every_command_group_is_covered(tree: Any) -> None:
    """A command group added to ``mtasts`` fails here until its help is translated and named."""
    assert sorted(tree.commands) == sorted(COVERED)


def test_every_help_string_of_the_covered_commands_is_translated(tree: Any, japanese: dict[str, str]) -> None:
    missing = untranslated(tree, japanese)
    assert not missing, f"{PO} lacks {len(missing)} help strings: {missing}"
    assert not [label for label in LABELS if label not in japanese]


def test_a_missing_translation_is_found(tree: Any, japanese: dict[str, str]) -> None:
    """The check above sees a gap: the catalogue less one string of each newly covered group."""
    for group in ("publish", "resolver", "web", "monitor"):
        message = next(m for m, places in help_messages(tree).items() if places[0].startswith(f"mtasts/{group}/"))
        assert untranslated(tree, {m: t for m, t in japanese.items() if m != message}) == [
            (help_messages(tree)[message][0], message)
        ]


def test_the_catalogue_holds_only_what_the_tree_says(tree: Any) -> None:
    with PO.open("rb") as stream:
        ids = {m.id for m in read_po(stream) if m.id}
    stale = sorted(ids - set(help_messages(tree)) - set(LABELS) - set(USAGE_MESSAGES))  # usage: its own test
    assert not stale, f"{PO}: help strings the commands no longer have (run pybabel update): {stale}"


def test_placeholders_and_options_survive(japanese: dict[str, str]) -> None:
    """A translation keeps every ``{placeholder}``, option, environment variable and code."""
    keep = re.compile(r"\{\w*\}|--[a-z][a-z-]*|\$?MTASTS_[A-Z_]+|\b[a-z]+\.[a-z_]+\.[a-z_]+\b")
    lost = [(m, token) for m, ja in japanese.items() for token in keep.findall(m) if token not in ja]
    assert not lost, lost


def test_the_shipped_mo_is_compiled_from_the_po() -> None:
    with PO.open("rb") as stream:
        source = {m.id: m.string for m in read_po(stream) if m.id and m.string}
    with PO.with_suffix(".mo").open("rb") as stream:
        compiled = {m.id: m.string for m in read_mo(stream) if m.id}
    assert compiled == source, "the .mo is stale: run pybabel compile -d src/mtasts/i18n/locale -D cli"


def _flat(text: str) -> str:
    """``text`` without white space: click rewraps help, so a sentence may span lines."""
    return re.sub(r"\s+", "", text)


def test_each_covered_command_shows_japanese_help(tree: Any, japanese: dict[str, str]) -> None:
    """``mtasts --lang ja PATH --help`` for every covered command: its help, every option's
    help and the listed sub-commands in Japanese, none of the English left; labels too."""
    nodes = dict(walk(tree))
    problems: list[tuple[str, str]] = []
    for path in covered_commands(tree):
        result = CliRunner().invoke(app, ["--lang", "ja", *path[1:], "--help"], env=_C_LOCALE)
        assert result.exit_code == 0, (path, result.output)
        shown = _flat(result.stdout)
        node = nodes[path]
        texts = [node.help] + [getattr(p, "help", None) for p in node.params if not getattr(p, "hidden", False)]
        texts += [s.short_help or short_help_id(s.help) for s in (getattr(node, "commands", None) or {}).values()]
        for english in filter(None, texts):
            message = next((m for m in japanese if _flat(m) == _flat(english)), "")  # as the catalogue has it
            if _flat(japanese.get(message, "\0")) not in shown:
                problems.append((" ".join(path), english))
        for label in ("使い方:", "オプション:", "このメッセージを表示して終了します。"):
            if _flat(label) not in shown:
                problems.append((" ".join(path), label))
    assert not problems, f"{len(problems)} help texts not shown in Japanese: {problems}"


def test_lang_from_the_environment_and_english_as_before() -> None:
    japanese = CliRunner().invoke(
        app, ["report", "digest", "--help"], env={"LANG": "ja_JP.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
    )
    assert japanese.exit_code == 0
    assert "使い方: mtasts report digest [OPTIONS]" in japanese.stdout
    assert _flat("まとめのメールの送信者アドレス。 [デフォルト: mtasts@localhost]") in _flat(japanese.stdout)
    english = CliRunner().invoke(app, ["report", "digest", "--help"], env=_C_LOCALE)
    assert "Usage: mtasts report digest [OPTIONS]" in english.stdout
    assert _flat("Sender address of the digest mail. [default: mtasts@localhost]") in _flat(english.stdout)
    assert not re.search(r"[\u3040-\u30ff]", english.stdout)  # no kana left over from the last rendering


def test_lang_before_help_of_the_root() -> None:
    """``--lang`` is read as it comes, so ``mtasts --lang ja --help`` is Japanese."""
    result = CliRunner().invoke(app, ["--lang", "ja", "--help"], env=_C_LOCALE)
    assert result.exit_code == 0
    assert "MTA-STS（RFC 8461）と SMTP TLS Reporting（RFC" in result.stdout
    assert "コマンド:" in result.stdout
    wrong = CliRunner().invoke(app, ["--lang", "de", "--help"], env=_C_LOCALE)
    assert wrong.exit_code == 2
    assert "'de': choose en or ja" in wrong.output
