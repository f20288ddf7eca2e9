"""Running a command: its coroutine on uvloop where it is installed (else on asyncio's loop), and
the log lines of a server command on its stderr."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from typer._click.globals import get_current_context  # typer carries its own click (as i18n.help reads)

_T = TypeVar("_T")


def run_async(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run``, on uvloop when available: it spends about a sixth less CPU per inspected
    domain (measured with bench/inspector.py), and nothing in mtasts depends on the loop type."""
    try:
        import uvloop
    except ImportError:  # not on this platform (Windows): the standard loop does the same work
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def log_to_stderr(line_format: str, levels: Mapping[str, int]) -> None:
    """Send the records of the ``levels`` loggers (name -> level; ``MTASTS_DEBUG=1`` makes every
    one DEBUG) to this command's stderr, formatted by ``line_format``, and not to the root.

    Undone when the command ends (click's context closes), so a command run in-process (a
    test's ``CliRunner``, a caller of :func:`mtasts.cli.main.app`) leaves no handler behind that
    writes to a stream closed since: the next records would end as "--- Logging error ---"."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(line_format))
    debug = os.environ.get("MTASTS_DEBUG") == "1"
    saved: list[tuple[logging.Logger, int, bool]] = []
    for name, level in levels.items():
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if debug else level)
        logger.propagate = False

    def restore() -> None:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate

    context = get_current_context(silent=True)
    if context is not None:
        context.call_on_close(restore)
