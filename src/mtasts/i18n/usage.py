"""The usage errors of the ``mtasts`` command in the reader's language: what click and Typer say
when a command line is wrong ("No such option: --bogus", "Missing argument 'FILE|-'.", "Invalid
value for '--timeout': ...", "No such command 'x'."), the lines around it ("Try 'mtasts check -h'
for help.", "Error: "; "Usage: " is :mod:`mtasts.i18n.help`'s) and the abort line, in the plain
text (output that is not a terminal) and in Typer's Rich panel (a terminal), from the ``cli``
catalogue. Exit status and English output are click's, unchanged.

Typer's copy of click writes its messages as English f-strings, and Typer's ``_main`` shows the
error after the root context has closed. The root group (:class:`mtasts.i18n.help.TranslatedHelpGroup`)
runs each invocation inside :func:`run_in_language`, which for the duration of the run gives
click's ``UsageError.show`` and Typer's Rich error and abort renderers a Japanese rendering, and
puts them back when the run ends. ``--lang`` chooses the language with :func:`choose_language`,
which lasts until the run's error is shown and no further (the next run in the same process, a
test's ``CliRunner``, starts from the environment's language).

An error is translated by its class and fields (the parameter's hint, its kind, the suggested
options) and its message by its shape (:data:`USAGE_SHAPES`, matched as
:class:`mtasts.i18n.Translator` matches sentences; a message our own code raised is looked up in
the ``findings`` shapes as ``mtasts: error:`` lines are). The English is rebuilt from the same
parts and must equal click's ``format_message()``, so a Typer that words an error differently
gets its English, not a guess. A message not recognised whole leaves its line English whole.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from functools import cache
from typing import IO, Any

import typer.core
from typer import _click as click
from typer._click._compat import get_text_stderr
from typer._click.exceptions import BadParameter, MissingParameter, NoSuchOption, UsageError
from typer._click.globals import get_current_context

from mtasts.i18n import LANGUAGES, Translator, _shape, current, language_from_environment, set_language, translator

__all__ = [
    "USAGE_LABELS",
    "USAGE_MESSAGES",
    "USAGE_SHAPES",
    "choose_language",
    "language_asked",
    "run_in_language",
    "usage_message",
]

USAGE_LABELS: tuple[str, ...] = (
    "Error: %(message)s",
    "Try '%(command)s %(option)s' for help.",
    "Try [blue]'{command_path} {help_option}'[/] for help.",  # typer.rich_utils.RICH_HELP
    "Error",  # typer.rich_utils.ERRORS_PANEL_TITLE
    "Aborted!",  # typer.core, plain
    "Aborted.",  # typer.rich_utils.ABORTED_TEXT
    "Invalid value for %(hint)s: %(message)s",
    "Invalid value: %(message)s",
    "Missing argument %(hint)s.",
    "Missing option %(hint)s.",
    "Missing parameter %(hint)s.",
    "Missing argument.",
    "Missing option.",
    "Missing parameter.",
    "(Possible options: %(options)s)",
    "%(hint)s (env var: %(envvar)s)",
)
"""What click and Typer write around a message, each used where its part of the error is built."""

_PATH_KINDS = ("file", "dir", "path")  # typer._param_types.path_type_name
USAGE_SHAPES: tuple[str, ...] = (
    "No such option: %(name)s",
    "No such command %(command)s.",
    "Missing command.",
    "Got unexpected extra argument(s) (%(arguments)s)",
    "Option %(opt)s requires an argument.",
    "Option %(opt)s requires %(count)s arguments.",
    "Option %(opt)s does not take a value.",
    "Argument %(argument)s takes %(count)s values.",
    "Choose from:\n\t%(choices)s",
    # Typer checks values with pydantic: its messages ("Value error, " before a ValueError's)
    "Value error, %(value)s is not one of %(choices)s.",
    "Input should be a valid number, unable to parse string as a number",
    "Input should be a valid integer, unable to parse string as an integer",
    "Input should be a valid integer, got a number with a fractional part",
    "Input should be a finite number",
    "Input should be greater than or equal to %(bound)s",
    "Input should be less than or equal to %(bound)s",
    "Input should be greater than %(bound)s",
    "Input should be less than %(bound)s",
    *(f"{kind} %(file)s does not exist." for kind in _PATH_KINDS),
    "dir %(file)s is a file.",
    "file %(file)s is a directory.",
    *(f"{kind} %(file)s is not readable." for kind in _PATH_KINDS),
    *(f"{kind} %(file)s is not writable." for kind in _PATH_KINDS),
)
"""The messages of click's and Typer's usage errors, as sentence shapes (``%(name)s`` placeholders)."""

USAGE_MESSAGES: tuple[str, ...] = USAGE_LABELS + USAGE_SHAPES
"""Every message id of this module in the ``cli`` catalogue (tests/i18n/test_usage_errors_ja.py
fails when one lacks a translation)."""

_MISSING = {
    (kind, bool(hint)): f"Missing {kind} %(hint)s." if hint else f"Missing {kind}."
    for kind in ("argument", "option", "parameter")
    for hint in (True, False)
}
_ENVVAR = " (env var: "


@cache
def _shapes_translator(tag: str) -> Translator:
    """The translator of :data:`USAGE_SHAPES` in ``tag`` (from the ``cli`` catalogue)."""
    from mtasts.i18n.help import catalogue  # noqa: PLC0415 (help imports this module)

    shapes = tuple(sorted((_shape(m) for m in USAGE_SHAPES), key=lambda s: (-s.weight, len(s.names))))
    return Translator(tag, catalogue(tag), shapes)


def _reader() -> str:
    """The reader's language (:func:`mtasts.i18n.current`); English if its catalogue is missing
    (a packaging bug said elsewhere: a usage error must still be shown)."""
    try:
        return current().tag
    except ValueError:
        return "en"


def _english(message_id: str, **values: str) -> str:
    """A message of this module as click writes it."""
    return message_id % values if values else message_id


def _label(tag: str, message_id: str, **values: str) -> str:
    """A message of this module in ``tag`` (its values already in ``tag``)."""
    words = _shapes_translator(tag).gettext(message_id)
    return words % values if values else words


def _message(tag: str, english: str) -> str | None:
    """``english`` (a message click, Typer or our own code wrote) in ``tag``, if known whole."""
    for known in (_shapes_translator(tag), translator(tag)):
        translated = known.translate(english)
        if translated.complete:
            return translated.text
    return None


def _hint(tag: str, hint: str) -> str:
    """A parameter's hint (``'--timeout'``, ``'--width' (env var: 'MTASTS_WIDTH')``): names,
    kept, and the environment variable's label, translated."""
    if not hint.endswith(")") or _ENVVAR not in hint:
        return hint
    names, envvar = hint[:-1].rsplit(_ENVVAR, 1)
    return _label(tag, "%(hint)s (env var: %(envvar)s)", hint=names, envvar=envvar)


def _joined_hint(error: BadParameter) -> str | None:
    """The hint click's ``format_message`` gives the parameter at fault (``None``: none)."""
    hint: Sequence[str] | str | None = error.param_hint
    if hint is None and error.param is not None:
        hint = error.param.get_error_hint()
    if hint is not None and not isinstance(hint, str):
        hint = " / ".join(repr(x) for x in hint)
    return hint


def _parts(error: click.ClickException, tag: str) -> list[tuple[str, str]] | None:
    """``error``'s message as (English, translation) parts, or ``None`` where one is unknown."""
    if isinstance(error, MissingParameter):
        hint = _joined_hint(error)
        kind = error.param_type or (error.param.param_type_name if error.param is not None else "")
        message_id = _MISSING.get((kind, bool(hint)))
        if message_id is None:
            return None
        head = _english(message_id, hint=hint) if hint else message_id
        parts = [(head, _label(tag, message_id, hint=_hint(tag, hint)) if hint else _label(tag, message_id))]
        rest = error.format_message()[len(head) + 1 :]  # after click's ". ": what the parameter adds
        if rest:
            words = _message(tag, rest)
            if words is None:
                return None
            parts.append((f" {rest}", words))
        return parts
    if isinstance(error, BadParameter):
        hint = _joined_hint(error)
        words = _message(tag, error.message)
        if words is None:
            return None
        if hint is None:
            message_id = "Invalid value: %(message)s"
            return [(_english(message_id, message=error.message), _label(tag, message_id, message=words))]
        message_id = "Invalid value for %(hint)s: %(message)s"
        english = _english(message_id, hint=hint, message=error.message)
        return [(english, _label(tag, message_id, hint=_hint(tag, hint), message=words))]
    if isinstance(error, UsageError):
        words = _message(tag, error.message)
        if words is None:
            return None
        parts = [(error.message, words)]
        if isinstance(error, NoSuchOption) and error.possibilities:
            message_id = "(Possible options: %(options)s)"
            options = ", ".join(sorted(error.possibilities))
            parts.append((" " + _english(message_id, options=options), _label(tag, message_id, options=options)))
        return parts
    return None


def usage_message(error: click.ClickException, tag: str | None = None) -> str | None:
    """``error``'s message (click's ``format_message()``) in ``tag`` (default: the reader's
    language), or ``None`` when it is English or not known whole."""
    tag = _reader() if tag is None else tag
    if tag == "en" or type(error).__name__ == "NoArgsIsHelpError":
        return None
    try:
        parts = _parts(error, tag)
    except (KeyError, TypeError, ValueError):  # a damaged catalogue entry: click's English
        return None
    if parts is None or "".join(english for english, _ in parts) != error.format_message():
        return None
    return "".join(words for _, words in parts)


def _show(original: Callable[..., None]) -> Callable[..., None]:
    """click's ``UsageError.show`` (usage, hint, error line) with its lines in the reader's language."""

    def show(self: UsageError, file: IO[Any] | None = None) -> None:
        tag = _reader()
        if tag == "en":
            original(self, file)
            return
        stream = get_text_stderr() if file is None else file
        color = None
        if self.ctx is not None:
            hint = ""
            if self.ctx.command.get_help_option(self.ctx) is not None:
                values = {"command": self.ctx.command_path, "option": self.ctx.help_option_names[0]}
                hint = _label(tag, "Try '%(command)s %(option)s' for help.", **values) + "\n"
            color = self.ctx.color
            click.echo(f"{self.ctx.get_usage()}\n{hint}", file=stream, color=color)
        words = usage_message(self, tag)
        line = f"Error: {self.format_message()}" if words is None else _label(tag, "Error: %(message)s", message=words)
        click.echo(line, file=stream, color=color)

    return show


def _rich_error(original: Callable[[click.ClickException], None]) -> Callable[[click.ClickException], None]:
    """Typer's ``rich_format_error`` with its hint, panel title and message in the reader's language."""

    def rich_format_error(error: click.ClickException) -> None:
        tag = _reader()
        if tag == "en":
            original(error)
            return
        from typer import rich_utils  # noqa: PLC0415 (loaded: Typer is drawing with it)

        words = usage_message(error, tag)
        with ExitStack() as undo:
            constants = {"RICH_HELP": "Try [blue]'{command_path} {help_option}'[/] for help."}
            if words is not None:
                constants["ERRORS_PANEL_TITLE"] = "Error"
                vars(error)["format_message"] = lambda: words  # this rendering's message
                undo.callback(vars(error).pop, "format_message", None)
            for name, english in constants.items():
                undo.callback(setattr, rich_utils, name, getattr(rich_utils, name))
                setattr(rich_utils, name, _label(tag, english))
            original(error)

    return rich_format_error


def _rich_abort(original: Callable[[], None]) -> Callable[[], None]:
    """Typer's ``rich_abort_error`` with its line in the reader's language."""

    def rich_abort_error() -> None:
        tag = _reader()
        if tag == "en":
            original()
            return
        from typer import rich_utils  # noqa: PLC0415

        before = rich_utils.ABORTED_TEXT
        rich_utils.ABORTED_TEXT = _label(tag, "Aborted.")
        try:
            original()
        finally:
            rich_utils.ABORTED_TEXT = before

    return rich_abort_error


def _labels(original: Callable[[str], str]) -> Callable[[str], str]:
    """``typer.core``'s gettext, with "Aborted!" in the reader's language (the rest as before)."""

    def say(message: str) -> str:
        tag = _reader() if message == "Aborted!" else "en"
        return original(message) if tag == "en" else _label(tag, message)

    return say


class _Run:
    """One run of the root group: what to undo when it ends, and whether Typer's Rich
    renderers are in the reader's language yet (they are loaded, as Typer loads them, only when
    a run needs them: for a language other than English on a terminal)."""

    def __init__(self, command: click.Command, undo: ExitStack) -> None:
        self.command = command
        self.undo = undo
        self.after = ExitStack()  # closed first: after the error is shown, before the patches go
        self._rich = False

    def patch(self, owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
        before = owner.__dict__[name]
        setattr(owner, name, wrap(before))
        self.undo.callback(setattr, owner, name, before)

    def rich(self) -> None:
        if self._rich:
            return
        rich_utils = sys.modules.get("typer.rich_utils")
        if rich_utils is None and getattr(self.command, "rich_markup_mode", None) is not None:
            from typer import rich_utils  # noqa: PLC0415 (Typer loads it on demand too)
        if rich_utils is not None:
            self.patch(rich_utils, "rich_format_error", _rich_error)
            self.patch(rich_utils, "rich_abort_error", _rich_abort)
            self._rich = True


_runs: ContextVar[_Run | None] = ContextVar("mtasts_usage_run", default=None)


def choose_language(tag: str) -> None:
    """``tag`` is the language of the current run (``--lang``): from now until the run ends,
    after its usage error (if any) is shown; then the environment's language is back. Outside
    :func:`run_in_language`, until the current click context closes."""
    set_language(tag)
    run = _runs.get()
    if run is not None:
        run.after.callback(set_language, None)
        if tag != "en":
            run.rich()
        return
    context = get_current_context(silent=True)
    if context is not None:
        context.call_on_close(lambda: set_language(None))


def language_asked(command: click.Command, args: Sequence[str]) -> str | None:
    """The language ``--lang`` asks for among the root's own options in ``args`` (before the
    first sub-command; ``--lang ja`` or ``--lang=ja``), read before click parses them: click
    stops at the first option it does not know, before any callback, so a mistake among the
    root's options (``mtasts --lang ja --bogus``) would otherwise be said in the environment's
    language. ``None`` when there is none, or it names no language we have (click says so)."""
    commands = getattr(command, "commands", None) or {}
    asked = None
    words = iter(args)
    for word in words:
        if word == "--" or word in commands:
            break
        if word == "--lang":
            asked = next(words, None)
        elif word.startswith("--lang="):
            asked = word.partition("=")[2]
    if asked is None or asked.lower() not in LANGUAGES:
        return None
    return asked.lower()


@contextmanager
def run_in_language(command: click.Command) -> Iterator[None]:
    """One run of ``command`` (the root group): its usage errors and abort line in the reader's
    language (see the module); :func:`choose_language`'s choice lasts until it ends."""
    with ExitStack() as undo:
        run = _Run(command, undo)
        run.patch(UsageError, "show", _show)
        if callable(typer.core.__dict__.get("_")):
            run.patch(typer.core, "_", _labels)
        # the environment's language is known now (cheaply: no catalogue is loaded for it);
        # --lang's when it is read (choose_language)
        if language_from_environment(os.environ) != "en" or "typer.rich_utils" in sys.modules:
            run.rich()
        undo.push(run.after)
        token = _runs.set(run)
        undo.callback(_runs.reset, token)
        yield
