"""The help of the ``mtasts`` command in the reader's language: every command's help, the short
help in command lists, the epilog, every option's and argument's help, and the labels click
and Typer add around them ("Usage: ", "Options", "default: ..."), from the ``cli`` catalogue.

Typer builds the click command tree from docstrings and ``help=`` strings in English when the
program starts. The root group (:class:`TranslatedHelpGroup`, ``cls=`` of the app in
``mtasts.cli.main``) gives every command of its tree :class:`HelpContext`, whose ``get_help``
(the one path of ``--help``, ``no_args_is_help`` and usage errors that show help) renders the
help with the strings of the command at hand looked up in the catalogue, for that rendering
only: the tree is English again afterwards, and English (or a string the catalogue lacks) is
rendered as it is. The language is :func:`mtasts.i18n.current`'s (``--lang``, an eager option
so that ``mtasts --lang ja --help`` sees it, else ``LC_ALL``/``LC_MESSAGES``/``LANG``).

Typer renders its labels with the process-wide :func:`gettext.gettext` (``typer.core``) or keeps
them in module constants (``typer.rich_utils``, for the Rich help on a terminal); they are
swapped for the catalogue's for the rendering and put back, so no other code in the process sees
another gettext domain. Nothing here changes what the commands do, only the words of the help.

Piped help (click's plain text) is wrapped by :func:`wrap_text`: by display width (a Japanese
character takes two columns), Japanese between characters with its kinsoku rules, anything else
at white space only, so no line break ever cuts an option name, a word or a number.

The message ids are what the tree holds (:func:`help_messages` walks it, so an f-string or a
shared constant is seen as the user sees it): ``python -m mtasts.i18n.help`` writes the template
with Babel (a development dependency), and the standard toolchain does the rest::

    python -m mtasts.i18n.help > src/mtasts/i18n/locale/cli.pot
    pybabel update -i src/mtasts/i18n/locale/cli.pot -d src/mtasts/i18n/locale -D cli
    pybabel compile -d src/mtasts/i18n/locale -D cli

tests/i18n/test_help.py fails when a help string of the covered commands has no translation.
"""

from __future__ import annotations

import gettext
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import cache
from typing import Any

import typer
import typer.core
from typer import _click as click
from typer._click import formatting
from typer._click.utils import make_default_short_help

from mtasts.i18n import LOCALE_DIR, current
from mtasts.i18n.usage import USAGE_MESSAGES, choose_language, language_asked, run_in_language
from mtasts.i18n.width import cells, wide

__all__ = [
    "DOMAIN",
    "LABELS",
    "HelpContext",
    "HelpFormatter",
    "TranslatedHelpGroup",
    "catalogue",
    "help_messages",
    "short_help_id",
    "walk",
]

DOMAIN = "cli"

LABELS: tuple[str, ...] = (
    "Usage: ",
    "Arguments",
    "Options",
    "Commands",
    "default: {default}",
    "env var: {var}",
    "required",
    "(dynamic)",
    "Show this message and exit.",
    "[default: {}]",
    "[env var: {}]",
    "[required]",
    "(deprecated) ",
)
"""What click and Typer write around the help strings (their English, as they say it)."""

_RICH_CONSTANTS = {
    "ARGUMENTS_PANEL_TITLE": "Arguments",
    "OPTIONS_PANEL_TITLE": "Options",
    "COMMANDS_PANEL_TITLE": "Commands",
    "DEFAULT_STRING": "[default: {}]",
    "ENVVAR_STRING": "[env var: {}]",
    "REQUIRED_LONG_STRING": "[required]",
    "DEPRECATED_STRING": "(deprecated) ",
}
_SHORT_HELP_LIMIT = 1_000_000  # a command's first sentence, however long: its entry in command lists


@cache
def catalogue(tag: str) -> gettext.NullTranslations:
    """The ``cli`` catalogue of ``tag`` (English: none, the source is English). Without its
    ``.mo`` (a packaging bug, which tests/i18n/test_help.py catches) help is English: ``--help``
    must work whatever else is broken."""
    if tag == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[tag], fallback=True)


def short_help_id(help_text: str) -> str:
    """The message id of a command's entry in a list of commands: its first sentence, as click
    makes it (first paragraph, white space collapsed, up to a word ending with a full stop)."""
    return make_default_short_help(inspect.cleandoc(help_text), _SHORT_HELP_LIMIT)


def walk(command: click.Command, path: tuple[str, ...] = ("mtasts",)) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command under (and with) ``command``, with its path of names, depth first."""
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from walk(sub, (*path, name))


def help_messages(command: click.Command) -> dict[str, list[str]]:
    """Each help string of ``command``'s tree (as a message id) and where it is said
    (``mtasts lint policy --rua``): help, short help, epilog, every parameter's help; hidden
    commands and options too (they can be asked for)."""
    found: dict[str, list[str]] = {}

    def add(text: str | None, where: str) -> None:
        if text and text.strip():
            found.setdefault(inspect.cleandoc(text), []).append(where)

    for path, node in walk(command):
        where = "/".join(path)
        add(node.help, where)
        add(node.epilog, f"{where} (epilog)")
        if node.short_help:
            add(node.short_help, f"{where} (short help)")
        elif node.help:
            add(short_help_id(node.help), f"{where} (short help)")
        for param in node.params:
            add(getattr(param, "help", None), f"{where}/{param.opts[0] if param.opts else param.name}")
    return found


_NO_LINE_START = frozenset(
    "、。，．,.)]}）」』】〕〉》］｝：；:;！？!?ー・…‐–〜ぁぃぅぇぉっゃゅょゎァィゥェォッャュョヮヵヶ"
)
"""What a Japanese line does not begin with (JIS X 4051 kinsoku): closing brackets, punctuation,
the long-vowel mark and small kana stay at the end of the line before."""
_NO_LINE_END = frozenset("([{（「『【〔〈《［｛")
"""What a Japanese line does not end with: opening brackets stay with what they open."""


def _clusters(text: str) -> Iterator[tuple[str, str]]:
    """``text`` as (separator, cluster) pairs, a line break being allowed only at a separator:
    white space (``" "``, dropped at a break) or between a wide character and its neighbour
    (``""``), unless kinsoku forbids it. A run of narrow characters (an option name, a word, a
    number, a URL) is never cut: it has no break opportunity inside."""
    atoms = re.findall(r"\s+|[^\s]", text)
    separator, cluster, before = "", "", ""
    for atom in atoms:
        if atom.isspace():
            if cluster:
                yield separator, cluster
                separator, cluster = " ", ""
            elif separator or before:
                separator = " "
            before = ""
            continue
        if cluster and (wide(atom) or wide(before)) and atom not in _NO_LINE_START and before not in _NO_LINE_END:
            yield separator, cluster
            separator, cluster = "", ""
        cluster += atom
        before = atom
    if cluster:
        yield separator, cluster


def fill(text: str, width: int, initial_indent: str = "", subsequent_indent: str = "") -> str:
    """``text`` wrapped to ``width`` columns, breaking Japanese between characters and any
    other text at white space only (:func:`_clusters`): a cluster wider than the line
    overflows it rather than being cut, since a cut option name cannot be copied."""
    lines: list[str] = []
    line, used = initial_indent, cells(initial_indent)
    bare = True  # nothing on the line yet but its indent
    for separator, cluster in _clusters(text):
        size = cells(cluster)
        if not bare and used + len(separator) + size > width:
            lines.append(line)
            line, used, bare = subsequent_indent, cells(subsequent_indent), True
        if not bare:
            line, used = line + separator, used + len(separator)
        line, used, bare = line + cluster, used + size, False
    lines.append(line)
    return "\n".join(lines)


def wrap_text(
    text: str, width: int, initial_indent: str = "", subsequent_indent: str = "", preserve_paragraphs: bool = False
) -> str:
    """click's :func:`~click.formatting.wrap_text` (paragraphs, ``\\b`` blocks kept as they are),
    lines filled by :func:`fill`: click's wrapper counts characters, not columns, and breaks
    at hyphens and inside long words, which cut option names (``--trusted-`` / ``proxy``) in
    English too."""
    text = text.expandtabs()
    if not preserve_paragraphs:
        return fill(text, width, initial_indent, subsequent_indent)
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines or not block.strip():
            continue
        indent = " " * (len(lines[0]) - len(lines[0].lstrip()))
        if lines[0].strip() == "\b":  # click's mark for a block not to rewrap
            paragraphs.append("\n".join(initial_indent + indent + line for line in lines[1:]))
        else:
            joined = " ".join(line.strip() for line in lines)
            paragraphs.append(fill(joined, width, initial_indent + indent, subsequent_indent + indent))
    return "\n\n".join(paragraphs)


class HelpFormatter(click.HelpFormatter):
    """click's formatter with its one literal label ("Usage: ") from the catalogue, and its
    text wrapped by display width, never inside an option name or a word (:func:`wrap_text`)."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        if prefix is None:
            prefix = catalogue(current().tag).gettext("Usage: ")
        super().write_usage(prog, args, prefix)

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        self.write(wrap_text(text, self.width, indent, indent, preserve_paragraphs=True))
        self.write("\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        widths = formatting.measure_table(rows)
        first_col = min(widths[0], col_max) + col_spacing
        for first, second in formatting.iter_rows(rows, len(widths)):
            self.write(f"{'':>{self.current_indent}}{first}")
            if not second:
                self.write("\n")
                continue
            if cells(first) <= first_col - col_spacing:
                self.write(" " * (first_col - cells(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            lines = wrap_text(second, max(self.width - first_col - 2, 10), preserve_paragraphs=True).splitlines()
            self.write(f"{lines[0] if lines else ''}\n")
            for line in lines[1:]:
                self.write(f"{'':>{first_col + self.current_indent}}{line}\n")


class HelpContext(click.Context):
    """A context whose help is rendered in the reader's language (see the module)."""

    formatter_class = HelpFormatter

    def get_help(self) -> str:
        tag = current().tag
        if tag == "en":
            return super().get_help()
        with translated_help(self, catalogue(tag).gettext):
            return super().get_help()


@contextmanager
def translated_help(ctx: click.Context, say: Callable[[str], str]) -> Iterator[None]:
    """For the duration of the block, ``ctx.command``'s help strings (and its sub-commands'
    entries, and Typer's labels) are ``say``'s words for them; English again afterwards."""
    command = ctx.command
    with ExitStack() as undo:

        def swap(owner: Any, name: str, english: str | None) -> None:
            if not english:
                return
            words = say(inspect.cleandoc(english))
            if words != inspect.cleandoc(english):
                before = getattr(owner, name)
                setattr(owner, name, words)
                undo.callback(setattr, owner, name, before)

        swap(command, "help", command.help)
        swap(command, "epilog", command.epilog)
        for param in command.get_params(ctx):
            swap(param, "help", getattr(param, "help", None))
        for sub in (getattr(command, "commands", None) or {}).values():
            swap(sub, "short_help", sub.short_help or (short_help_id(sub.help) if sub.help else None))
        labels = typer.core.__dict__.get("_")  # Typer's labels, plain help (gettext, or usage's)
        if callable(labels):
            undo.callback(setattr, typer.core, "_", labels)
            typer.core._ = say  # type: ignore[attr-defined,assignment]
        rich_utils = sys.modules.get("typer.rich_utils")  # the Rich help (loaded when drawn)
        if rich_utils is None and getattr(command, "rich_markup_mode", None) is not None:
            from typer import rich_utils  # noqa: PLC0415 (Typer loads it on demand too)
        if rich_utils is not None:
            for name, english in _RICH_CONSTANTS.items():
                if isinstance(getattr(rich_utils, name, None), str):
                    undo.callback(setattr, rich_utils, name, getattr(rich_utils, name))
                    setattr(rich_utils, name, say(english))
        yield


class TranslatedHelpGroup(typer.core.TyperGroup):
    """The root group: every command of its tree gets :class:`HelpContext` (Typer builds the
    sub-commands first and hands them to the root, so the whole tree is here), and each run
    shows its usage errors in the reader's language (:mod:`mtasts.i18n.usage`)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for _, node in walk(self):
            node.context_class = HelpContext

    def main(self, *args: Any, **kwargs: Any) -> Any:
        with run_in_language(self):
            arguments = kwargs.get("args", args[0] if args else None)
            asked = language_asked(self, sys.argv[1:] if arguments is None else arguments)
            if asked is not None:  # a mistake among the root's options is said in it too
                choose_language(asked)
            return super().main(*args, **kwargs)


def _write_template() -> None:
    """``python -m mtasts.i18n.help``: the ``cli`` template (.pot) on standard output."""
    try:
        from babel.messages.catalog import Catalog  # noqa: PLC0415
        from babel.messages.pofile import write_po  # noqa: PLC0415
    except ImportError:
        sys.exit("mtasts: error: Babel is needed to write the template (pip install Babel)")
    from mtasts.cli.main import app  # noqa: PLC0415

    template = Catalog(project="mtasts", domain=DOMAIN, fuzzy=False)
    for label in LABELS:
        template.add(label, locations=[("typer", 0)])
    for message in USAGE_MESSAGES:  # python-format, except Rich's one brace-format label
        flags = ["python-brace-format"] if "{" in message else ["python-format"] if "%(" in message else []
        template.add(message, locations=[("usage", 0)], flags=flags)
    for message, places in help_messages(typer.main.get_command(app)).items():
        template.add(message, locations=[(place, 0) for place in places])
    write_po(sys.stdout.buffer, template, width=0, omit_header=False, sort_output=False)


if __name__ == "__main__":
    _write_template()
