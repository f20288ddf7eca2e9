"""Running ``mtasts`` as a user does: in a real terminal of a given size, or with its output piped.

:func:`in_terminal` gives the command a pseudo-terminal (``pty.openpty``) whose window size is
set with ``TIOCSWINSZ``, exactly what a terminal emulator does, so the command's own terminal
detection and width lookup are what is tested (no ``COLUMNS``, no forcing). :func:`piped` runs
it with stdout and stderr on pipes, as in ``mtasts ... | less`` or a cron job.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich.cells import cell_len

from tests.commands import MTASTS

COMMAND = list(MTASTS)
TIMEOUT = 60.0

# Settings that would override what the terminal (or the pipe) says about itself.
_OVERRIDES = ("COLUMNS", "LINES", "MTASTS_WIDTH", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR")
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
BOX_DRAWING = re.compile("[\u2500-\u257f]")


@dataclass(frozen=True, slots=True)
class Run:
    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    env["TERM"] = "xterm-256color"
    env.update(extra or {})
    return env


def in_terminal(args: list[str], columns: int, *, env: Mapping[str, str] | None = None, rows: int = 50) -> Run:
    """``mtasts ARGS`` on a ``columns``-wide terminal; what it showed, escape sequences removed
    (stdout and stderr both go to the terminal, as they do for a user)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        process = subprocess.Popen(
            COMMAND + args, stdin=slave, stdout=slave, stderr=slave, env=environment(env), close_fds=True
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every end of the terminal is closed, the command is done
                break
            if not data:
                break
            chunks.append(data)
        returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return Run(returncode, _ESCAPE.sub("", text))


def piped(args: list[str], *, env: Mapping[str, str] | None = None, stdin: bytes | None = None) -> Run:
    """``mtasts ARGS | ...``: stdout and stderr are pipes."""
    done = subprocess.run(
        COMMAND + args, input=stdin, capture_output=True, env=environment(env), timeout=TIMEOUT, check=False
    )
    return Run(done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8"))


def assert_fits(lines: Iterable[str], columns: int) -> None:
    too_long = [line for line in lines if cell_len(line) > columns]
    assert not too_long, f"lines wider than {columns} columns: {too_long}"


def assert_plain(text: str) -> None:
    """What a pipe must get: no colour or other escape codes, no box drawing, no trailing spaces."""
    assert "\x1b" not in text, "escape codes in piped output"
    boxes = [line for line in text.splitlines() if BOX_DRAWING.search(line)]
    assert not boxes, f"box drawing in piped output: {boxes[:3]}"
    trailing = [line for line in text.splitlines() if line != line.rstrip()]
    assert not trailing, f"trailing white space in piped output: {trailing[:3]}"


def assert_whole(lines: list[str], names: Iterable[str]) -> None:
    """Every name appears whole on a line, and none is broken across two lines (the lines
    glued back together, indentation removed, hold no more copies than the lines do)."""
    glued = "".join(line.strip() for line in lines)
    for name in names:
        on_lines = sum(line.count(name) for line in lines)
        assert on_lines, f"{name!r} never appears whole on one line"
        assert glued.count(name) == on_lines, f"{name!r} is split across lines"
