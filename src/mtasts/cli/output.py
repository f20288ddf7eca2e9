"""Shared output for every command: consoles, JSON, and problems rendered the same way."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.theme import Theme

from mtasts.core.problems import Problem, Severity

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


def console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) with the project theme; Rich decides on colour."""
    return Console(theme=THEME, stderr=stderr, highlight=False)


def print_json(data: Any) -> None:
    """Print one JSON document on stdout (UTF-8, stable key order as given)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def problem_text(problem: Problem, *, subject: str | None = None) -> Text:
    """One problem as it appears in a terminal: severity, place, message, code, then the fix."""
    style = f"severity.{problem.severity.value}"
    text = Text()
    text.append(f"{_SYMBOLS[problem.severity]} {problem.severity.value}", style=style)
    where = problem.location
    if subject and where:
        where = f"{subject}:{problem.line or ''}:{problem.column or ''}".rstrip(":")
    if where:
        text.append(f" {where}", style="where")
    text.append(f": {problem.message} ")
    text.append(f"[{problem.code}]", style="code")
    text.append("\n    fix: ", style="fix")
    text.append(problem.fix)
    return text


def print_problems(out: Console, problems: Iterable[Problem], *, subject: str | None = None) -> None:
    for problem in problems:
        out.print(problem_text(problem, subject=subject))
