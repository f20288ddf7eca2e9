"""Where report bytes come from on disk: single files, directories, mbox files, Maildir folders.

Each item is a :class:`Source`: a label for messages, the bytes, and ``done``, which a caller
runs only *after* the reports in it are committed (for Maildir it moves the message from
``new/`` to ``cur/`` with the Seen flag; files and mbox messages are left as they are).
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["MAX_SOURCE", "Source", "is_maildir", "iter_sources"]

MAX_SOURCE: Final = 64 * 1024 * 1024
_SKIP_SUFFIXES: Final = frozenset({".md", ".txt", ".html", ".pdf", ".py", ".toml", ".yaml", ".yml"})


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Source:
    """One report body or message: ``label`` names it in messages, ``done`` marks it processed."""

    label: str
    data: bytes
    done: Callable[[], None] = _nothing


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _read(path: Path, limit: int) -> bytes:
    with path.open("rb") as handle:
        return handle.read(limit + 1)  # one byte more, so the parser sees it is too large


def _maildir_done(path: Path) -> Callable[[], None]:
    def done() -> None:
        name = path.name
        base, sep, info = name.partition(":2,")
        flags = set(info) if sep else set()
        flags.add("S")
        target = path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
        if target != path:
            os.replace(path, target)

    return done


def _iter_maildir(path: Path, limit: int) -> Iterator[Source]:
    # List both folders first: messages that are done move from new/ to cur/ meanwhile.
    entries = [entry for sub in ("new", "cur") for entry in sorted((path / sub).iterdir())]
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            data = _read(entry, limit)
        except (FileNotFoundError, IsADirectoryError):
            continue  # taken meanwhile by another ingest
        yield Source(str(entry), data, _maildir_done(entry))


def _iter_mbox(path: Path) -> Iterator[Source]:
    box = mailbox.mbox(path, create=False)
    try:
        for number, key in enumerate(box.iterkeys(), start=1):
            yield Source(f"{path}#{number}", box.get_bytes(key))
    finally:
        box.close()


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def iter_sources(path: Path, *, limit: int = MAX_SOURCE) -> Iterator[Source]:
    """Every report body or message under ``path``: a file, an mbox, a Maildir, or a directory
    (walked recursively in name order; hidden files and documents such as ``.md`` are skipped)."""
    if is_maildir(path):
        yield from _iter_maildir(path, limit)
    elif path.is_dir():
        for entry in sorted(path.iterdir()):
            if entry.name.startswith(".") or (entry.is_file() and entry.suffix.lower() in _SKIP_SUFFIXES):
                continue
            yield from iter_sources(entry, limit=limit)
    elif _is_mbox(path):
        yield from _iter_mbox(path)
    else:
        yield Source(str(path), _read(path, limit))
