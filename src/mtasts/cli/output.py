"""Shared output for every command: consoles, tables, JSON, and problems rendered the same way.

Where the output goes decides how it looks, here and nowhere else:

* **a terminal** (or ``FORCE_COLOR`` / ``TTY_COMPATIBLE=1``): Rich at the terminal's width, or
  the width asked for (``--width``, ``MTASTS_WIDTH``, ``COLUMNS``); tables fit that width,
  wrapping prose at word boundaries, never splitting a name, shrinking or dropping decorative
  columns first, and turning into one block per record when even that does not fit;
* **anything else** (a pipe, a file, a cron mail): no colour, no box drawing, no trailing
  spaces, and no hard wrap unless a width was asked for: a line of output is one line of text
  for ``grep`` and ``cut``, and tables are plain aligned columns.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import IO, Any, cast

from rich import box
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, RenderableType, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.style import StyleType
from rich.table import Table
from rich.text import Text
from rich.theme import Theme

from mtasts.core.problems import Problem, Severity
from mtasts.core.untrusted import printable
from mtasts.i18n import Translator
from mtasts.i18n.width import cells

__all__ = [
    "THEME",
    "Column",
    "Fit",
    "FitTable",
    "configure",
    "console",
    "fit_widths",
    "help_for_terminal",
    "label_width",
    "literal",
    "padded",
    "print_json",
    "print_problems",
    "problem_text",
]

THEME = Theme(
    {
        "severity.error": "bold red",
        "severity.warning": "bold yellow",
        "severity.info": "bold cyan",
        "ok": "bold green",
        "fix": "green",
        "code": "dim",
        "where": "cyan",
        "heading": "bold",
    }
)

_SYMBOLS = {Severity.ERROR: "✗", Severity.WARNING: "!", Severity.INFO: "i"}

# "No hard wrap" for piped output: wider than any line mtasts writes, so Rich never breaks one
# (top-level text is printed with soft wrap and is not wrapped at all; this is for tables).
UNLIMITED = 10_000
MIN_WIDTH = 20  # narrower than this, nothing reads: --width refuses it

# --- where the output goes --------------------------------------------------------------------


@dataclass(slots=True)
class _Settings:
    width: int | None = None  # --width / MTASTS_WIDTH; None: COLUMNS, else the terminal's own


# Set once per run by the ``mtasts`` callback (like logging's configuration: every command's
# console() reads it, and no command has to pass it along).
_settings = _Settings()


def configure(*, width: int | None) -> None:
    """Record the global output options of this run (``mtasts --width N``)."""
    _settings.width = width


def _requested_width() -> int | None:
    """The width asked for: ``--width`` (or ``MTASTS_WIDTH``, read by the option), else
    ``COLUMNS`` when exported (POSIX: the user's preferred width), else none."""
    if _settings.width is not None:
        return _settings.width
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) >= MIN_WIDTH else None


def _is_terminal(stderr: bool) -> bool:
    """Rich's own detection (isatty, ``FORCE_COLOR``, ``TTY_COMPATIBLE``), so that colour and
    layout never disagree about where the output goes."""
    return Console(stderr=stderr).is_terminal


def console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) with the project theme, drawn for where it goes (see the
    module docstring)."""
    width = _requested_width()
    # emoji=False: ":1234:" in an IPv6 address is not an emoji code
    if _is_terminal(stderr):
        return Console(theme=THEME, stderr=stderr, highlight=False, emoji=False, width=width)
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        theme=THEME,
        file=cast(IO[str], _TrimmedLines(stream)),  # the few methods Rich uses
        highlight=False,
        emoji=False,
        width=width or UNLIMITED,
        soft_wrap=width is None,
    )


def help_for_terminal() -> bool:
    """Whether ``--help`` and usage errors may be drawn with Rich (boxes, colour): only when
    both stdout (help) and stderr (errors) are terminals; elsewhere they are click's plain text."""
    return _is_terminal(False) and _is_terminal(True)


class _TrimmedLines:
    """A text stream that drops the spaces ending each line: Rich pads table cells and
    justified text to their width, which is noise in a file or a diff. Spaces at the end of
    what was written so far are held back until the line goes on or ends."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._held = ""

    def write(self, text: str) -> int:
        *lines, tail = (self._held + text).split("\n")
        kept = tail.rstrip(" ")
        self._held = tail[len(kept) :]
        self._stream.write("".join(line.rstrip(" ") + "\n" for line in lines) + kept)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"


# --- tables that fit ----------------------------------------------------------------------------


class Fit(Enum):
    """How a column gives way when the width runs short."""

    DATA = "data"  # a name, code, number, date or verdict: always whole, on one line
    TEXT = "text"  # prose: wraps at word boundaries (a word longer than the column folds)
    DECORATIVE = "decorative"  # helps the eye, adds no data (a sparkline): shrinks, then goes


Cell = RenderableType | Callable[[int], RenderableType]  # a decorative cell is drawn to a width


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a :class:`FitTable`. A decorative column lists the widths it can be drawn
    at, widest first (``sizes``); its header and cells are then functions of that width."""

    header: str | Callable[[int], str]
    fit: Fit = Fit.TEXT
    justify: JustifyMethod = "left"
    style: StyleType = ""
    sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if (self.fit is Fit.DECORATIVE) != bool(self.sizes):
            raise ValueError("a decorative column, and only one, gives the widths it can be drawn at")

    def shown(self, size: int | None) -> _Shown:
        """The column as laid out (a decoration drawn at ``size`` is data of that width)."""
        header = self.header(size or 0) if callable(self.header) else self.header
        return _Shown(header, Fit.DATA if self.fit is Fit.DECORATIVE else self.fit, self.justify, self.style)


@dataclass(frozen=True, slots=True)
class _Shown:
    header: str
    fit: Fit
    justify: JustifyMethod
    style: StyleType


def _drawn(cell: Cell, size: int | None) -> RenderableType:
    return cell(size or 0) if callable(cell) else cell


TEXT_FLOOR = 30  # prose narrower than this is a tall column of a few words: lay out records instead
_GAP = 2  # spaces between two columns


def fit_widths(minimum: Sequence[int], natural: Sequence[int], available: int) -> list[int] | None:
    """Column widths that fit ``available`` (gaps excluded): each column at its natural width,
    the widest shrunk first, one column at a time and never below its minimum, until the sum
    fits; ``None`` when even the minimums do not."""
    widths = [max(n, m) for n, m in zip(natural, minimum, strict=True)]
    if sum(minimum) > available:
        return None
    while sum(widths) > available:
        widest = max((i for i, w in enumerate(widths) if w > minimum[i]), key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


class FitTable:
    """A table that fits where it is printed (see the module docstring): boxed lightly on a
    terminal, plain aligned columns elsewhere. Data columns are never split; prose wraps at
    word boundaries; decorative columns shrink, then disappear, before prose has to wrap; and
    when even the data does not fit, each row becomes a block of "header: value" lines.

    A Rich renderable: the choices are made at render time, from the console's width and
    whether it is a terminal, so the same table goes to a terminal, a pipe or a test console.
    """

    def __init__(
        self, *columns: Column, title: str | None = None, caption: str | None = None, show_header: bool = True
    ) -> None:
        self.columns = columns
        self.title = title
        self.caption = caption
        self.show_header = show_header
        self.rows: list[tuple[Cell, ...]] = []

    def add_row(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.title:
            yield Text.from_markup(self.title, style="heading", emoji=False)
        yield self._body(console, options)
        if self.caption:
            yield Text.from_markup(self.caption, style="dim", emoji=False)

    def _body(self, console: Console, options: ConsoleOptions) -> RenderableType:
        available = options.max_width
        plans = list(self._plans())
        for index, plan in enumerate(plans):
            columns, rows = self._resolve(plan)
            minimum, natural = self._measure(console, options, columns, rows)
            room = available - _GAP * (len(columns) - 1)
            if index < len(plans) - 1:  # a decoration stays only if nothing else has to wrap for it
                if sum(natural) <= room:
                    return self._table(columns, rows, natural, boxed=options.is_terminal)
                continue
            widths = fit_widths(minimum, natural, room)
            if widths is not None:
                return self._table(columns, rows, widths, boxed=options.is_terminal)
        columns, rows = self._resolve(plans[-1])
        return self._records(columns, rows, available)

    def _plans(self) -> Iterator[dict[int, int | None]]:
        """The decorative columns' widths to try, richest first: the last decoration shrinks
        through its sizes, then goes, then the one before it...; the last plan has none left."""
        decorative = [i for i, c in enumerate(self.columns) if c.fit is Fit.DECORATIVE]
        plan: dict[int, int | None] = {i: self.columns[i].sizes[0] for i in decorative}
        yield dict(plan)
        for i in reversed(decorative):
            for size in (*self.columns[i].sizes[1:], None):
                plan[i] = size
                yield dict(plan)

    def _resolve(self, plan: dict[int, int | None]) -> tuple[list[_Shown], list[list[RenderableType]]]:
        """The columns and cells of ``plan``: decorations drawn at their size or left out."""
        keep = [i for i in range(len(self.columns)) if plan.get(i, 0) is not None]
        columns = [self.columns[i].shown(plan.get(i)) for i in keep]
        rows = [[_drawn(row[i], plan.get(i)) for i in keep] for row in self.rows]
        return columns, rows

    def _measure(
        self, console: Console, options: ConsoleOptions, columns: list[_Shown], rows: list[list[RenderableType]]
    ) -> tuple[list[int], list[int]]:
        """Each column's minimum (data whole, prose at its longest word or the prose floor,
        headers at their longest word) and natural width (everything on one line)."""
        wide = options.update_width(UNLIMITED)
        minimum, natural = [], []
        for index, column in enumerate(columns):
            cells = [Measurement.get(console, wide, row[index]) for row in rows]
            header = Measurement.get(console, wide, Text(column.header)) if self.show_header else Measurement(0, 0)
            most = max([header.maximum, *(m.maximum for m in cells)])
            if column.fit is Fit.DATA:
                least = max([header.minimum, *(m.maximum for m in cells)])
            else:
                least = max([header.minimum, min(most, TEXT_FLOOR), *(m.minimum for m in cells)])
            minimum.append(least)
            natural.append(most)
        return minimum, natural

    def _table(
        self, columns: list[_Shown], rows: list[list[RenderableType]], widths: list[int], *, boxed: bool
    ) -> Table:
        table = Table(
            box=box.SIMPLE_HEAD if boxed else None,
            show_edge=False,
            show_header=self.show_header,
            pad_edge=False,
            padding=(0, _GAP - 1 if boxed else _GAP, 0, 0),  # the box's own separator is one space
            header_style="heading" if boxed else "",
        )
        for column, width in zip(columns, widths, strict=True):
            table.add_column(
                column.header,
                width=width,
                justify=column.justify,
                style=column.style,
                no_wrap=column.fit is Fit.DATA,
                overflow="fold",
            )
        for row in rows:
            table.add_row(*row)
        return table

    def _records(self, columns: list[_Shown], rows: list[list[RenderableType]], width: int) -> RenderableType:
        """One block per row: the first cell, then the data fields ("header: value", each
        whole) packed after it and into indented lines of ``width``; then each prose field on
        its own indented "header: value" line, wrapping at word boundaries under itself."""
        blocks: list[RenderableType] = []
        for row in rows:
            fields = [
                (column, _as_text(cell, column.style))
                for column, cell in zip(columns[1:], row[1:], strict=True)
                if _as_text(cell, "").plain.strip()  # nothing to say: no field
            ]
            lines = [_as_text(row[0], "heading").copy()]
            for field in (self._field(c, text) for c, text in fields if c.fit is Fit.DATA):
                room = width - (0 if len(lines) == 1 else 2)
                if lines[-1].cell_len + len(_FIELD_GAP) + field.cell_len <= room:
                    lines[-1].append(_FIELD_GAP)
                    lines[-1].append_text(field)
                else:
                    lines.append(field.copy())
            blocks.append(lines[0])
            parts: list[RenderableType] = list(lines[1:])
            parts += self._prose([(c, text) for c, text in fields if c.fit is not Fit.DATA], width)
            if parts:
                blocks.append(Padding(Group(*parts), (0, 0, 0, 2), expand=False))
        return Group(*blocks)

    def _prose(self, fields: list[tuple[_Shown, Text]], width: int) -> list[RenderableType]:
        """Prose fields as "header: value" lines, the values lined up; a long header has its
        value under it instead, so that the value keeps the width."""
        parts: list[RenderableType] = []
        grid = None
        for column, text in fields:
            label = f"{column.header}:" if self.show_header and column.header else ""
            if len(label) > min(_LABEL_MAX, width // 3):
                parts += [Text(label, style="dim"), Padding(text, (0, 0, 0, 2), expand=False)]
                grid = None
                continue
            if grid is None:
                grid = Table.grid(padding=(0, 1))
                grid.add_column(style="dim", no_wrap=True)
                grid.add_column(overflow="fold")
                parts.append(grid)
            grid.add_row(label, text)
        return parts

    def _field(self, column: _Shown, value: Text) -> Text:
        if not self.show_header or not column.header:
            return value
        return Text.assemble((f"{column.header}: ", "dim"), value)


_FIELD_GAP = "  "
_LABEL_MAX = 24  # a record's header longer than this goes on a line of its own


def _as_text(cell: RenderableType, style: StyleType) -> Text:
    """A cell as styled text (markup read); other renderables keep only their text."""
    if isinstance(cell, Text):
        return cell
    if isinstance(cell, str):
        return Text.from_markup(cell, style=style, emoji=False)
    return Text(str(cell), style=style)


def literal(text: str) -> str:
    """Someone else's ``text`` (a report's field, a server's reply) for a markup string: shown
    as written, never read as Rich markup (``[link=...]``) nor passed to the terminal as a
    control character (an ESC sequence, a line break, a BiDi override: Rich strips only a few),
    which :func:`~mtasts.core.untrusted.printable` writes as its escape."""
    return escape(printable(text))


# --- JSON and problems ------------------------------------------------------------------------


def print_json(data: Any) -> None:
    """Print one JSON document on stdout (UTF-8, stable key order as given)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def problem_text(problem: Problem, *, subject: str | None = None, tr: Translator | None = None) -> Text:
    """One problem as it appears in a terminal: severity, place, message, code, then the fix;
    its words in ``tr``'s language (:mod:`mtasts.i18n`; English without it), the code as is."""
    say = tr.text if tr is not None else str
    label = tr.gettext if tr is not None else str
    style = f"severity.{problem.severity.value}"
    text = Text()
    text.append(f"{_SYMBOLS[problem.severity]} {label(problem.severity.value)}", style=style)
    where = say(problem.location)
    if subject and where:
        where = f"{subject}:{problem.line or ''}:{problem.column or ''}".rstrip(":")
    if where:
        text.append(f" {where}", style="where")
    text.append(f": {say(problem.message)} ")
    text.append(f"[{problem.code}]", style="code")
    text.append(f"\n    {label('fix: ')}", style="fix")
    text.append(say(problem.fix))
    return text


def print_problems(
    out: Console, problems: Iterable[Problem], *, subject: str | None = None, tr: Translator | None = None
) -> None:
    for problem in problems:
        out.print(problem_text(problem, subject=subject, tr=tr))


# --- labels aligned in the reader's language ---------------------------------------------------


def label_width(labels: tuple[str, ...], minimum: int) -> int:
    """The columns of a label column: ``minimum``, or more when a label in the reader's
    language needs it (two spaces before the value)."""
    from mtasts.i18n import current

    tr = current()
    return max(minimum, *(cells(tr.gettext(label)) + 2 for label in labels))


def padded(label: str, width: int) -> str:
    """``label`` in the reader's language, padded to ``width`` terminal columns, so the values
    after it line up as in English."""
    from mtasts.i18n import current

    words = current().gettext(label)
    return words + " " * max(width - cells(words), 1)
