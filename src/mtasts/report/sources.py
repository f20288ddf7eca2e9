"""Where report bytes come from on disk: single files, directories, mbox files, Maildir folders.

Each item :func:`walk` yields is a :class:`Source` (a label for messages, the bytes, and two
actions) or a :class:`Skipped` path (with a warning saying why). A caller runs
``Source.done`` only *after* the reports in it are committed, and ``Source.set_aside`` when the
source failed, whatever the reason, so that one bad message never blocks the others.

Maildir (the one format that can record progress without a database):

* ``done`` moves a message to ``cur/`` with the flags ``S`` (seen) and :data:`MARK`
  ("ingested", a letter the Maildir specification leaves free). A run that skips marked
  messages (``skip_marked``) never re-reads, let alone re-parses, what it already committed,
  so the cost of a cron run follows the new mail, not the size of the mailbox.
* ``set_aside`` moves a message into the Maildir++ folder :data:`FAILED_FOLDER` (kept with its
  flags, readable by any mail client); ``retry_failed`` reads that folder again, and a message
  that now succeeds moves back to ``cur/`` with the mark.

Files and mbox messages are left as they are (a failing one is reported and skipped).

The walk never blocks and never loops: special files (FIFOs, sockets, devices) are not opened
for a blocking read, a directory reached twice (a symlink loop) is read once, and a file that
vanishes between listing and reading is a warning, not a failure of the run.
"""

from __future__ import annotations

import errno
import logging
import mailbox
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from mtasts.core.problems import Problem, Severity

__all__ = [
    "FAILED_FOLDER",
    "MARK",
    "MAX_SOURCE",
    "STDIN_LABEL",
    "Skipped",
    "Source",
    "failed_folder",
    "is_maildir",
    "is_marked",
    "iter_sources",
    "read_stream",
    "walk",
]

log = logging.getLogger(__name__)

MAX_SOURCE: Final = 64 * 1024 * 1024
MARK: Final = "I"
"""The Maildir info flag meaning "committed by mtasts": ``cur/NAME:2,IS``. ``S`` alone is not
enough: a mail client marks messages seen that were never ingested."""
FAILED_FOLDER: Final = ".mtasts-failed"
STDIN_LABEL: Final = "<stdin>"
"""How standard input (given as ``-``) is named in messages and output."""
_SKIP_SUFFIXES: Final = frozenset({".md", ".txt", ".html", ".pdf", ".py", ".toml", ".yaml", ".yml"})
_CHUNK: Final = 64 * 1024  # bytes per read at least (a file that grows meanwhile is read on)
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


def _nothing() -> None:
    return None


def _left_in_place() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Source:
    """One report body or message.

    ``label`` names it in messages; ``done`` marks it processed (after the commit);
    ``set_aside`` moves a failed one out of the way and returns where it went (``None`` when
    it stays where it is, as files and mbox messages do).
    """

    label: str
    data: bytes
    done: Callable[[], None] = _nothing
    set_aside: Callable[[], str | None] = _left_in_place


@dataclass(frozen=True, slots=True)
class Skipped:
    """A path that was not read: ``problem`` (a warning) says why."""

    label: str
    problem: Problem


def _skipped(path: Path | str, code: str, message: str, fix: str) -> Skipped:
    return Skipped(str(path), Problem(code, message, fix, severity=Severity.WARNING))


def _vanished(path: Path) -> Skipped:
    return _skipped(
        path,
        "source.vanished",
        "it disappeared before it could be read (moved or deleted meanwhile)",
        "Nothing to do if another program (or another ingest) took it; otherwise check who removes files here.",
    )


def _loop(path: Path) -> Skipped:
    return _skipped(
        path,
        "source.loop",
        "a symbolic link loop (this folder was already read through another path)",
        "Remove the symbolic link that points back into the folder tree.",
    )


def _special(path: Path, mode: int) -> Skipped:
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    return _skipped(
        path,
        "source.special",
        f"{kind}, not a file: not read (reading it could block forever)",
        "Keep only report files, e-mails, mbox files and Maildir folders here.",
    )


def _unreadable(path: Path, exc: OSError) -> Skipped:
    if exc.errno == errno.ELOOP:
        return _loop(path)
    if exc.errno == errno.ENXIO:  # opening a Unix socket
        return _skipped(
            path,
            "source.special",
            "a socket, not a file: not read",
            "Keep only report files, e-mails, mbox files and Maildir folders here.",
        )
    return _skipped(
        path,
        "source.unreadable",
        f"cannot read it: {exc.strerror or exc}",
        "Check the permissions of the file and of the folders above it.",
    )


def is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def failed_folder(maildir: Path) -> Path:
    """Where the failed messages of ``maildir`` go: a Maildir++ folder beside its other folders.

    For a Maildir root (``~/Maildir``) that is ``~/Maildir/.mtasts-failed``; for a Maildir++
    folder (``~/Maildir/.tlsrpt``) it is its sub-folder ``~/Maildir/.tlsrpt.mtasts-failed``,
    which IMAP servers show as ``tlsrpt.mtasts-failed`` (or ``tlsrpt/mtasts-failed``).
    """
    if maildir.name.startswith(".") and is_maildir(maildir.parent):
        return maildir.parent / (maildir.name + FAILED_FOLDER)
    return maildir / FAILED_FOLDER


class _NotRegular(Exception):
    def __init__(self, mode: int) -> None:
        super().__init__(mode)
        self.mode = mode


def _read(path: Path, limit: int, *, mbox: bool = False) -> bytes | None:
    """At most ``limit + 1`` bytes of the regular file at ``path`` (one byte more, so the
    parser sees it is too large); ``None`` when ``mbox`` is set and the file is an mbox (it
    begins with ``From ``). Opened non-blocking and checked with ``fstat`` before any read, so
    a FIFO or device put in its place cannot stall the run."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotRegular(info.st_mode)
        # read in pieces of the size fstat gave (plus one byte: the end is met at once), not
        # with one buffered read(limit): that allocates the limit (64 MiB) first, which cost
        # four times the reading of a report file of a few KiB
        size = max(info.st_size + 1, _CHUNK)
        pieces: list[bytes] = []
        got, want, head_checked = 0, limit + 1, not mbox
        while got < want:
            piece = os.read(fd, min(want - got, size))
            pieces.append(piece)
            got += len(piece)
            if not head_checked and (got >= len(b"From ") or not piece):
                head_checked = True
                if b"".join(pieces).startswith(b"From "):
                    return None  # an mbox: read message by message
            if not piece:
                break
        return b"".join(pieces)
    finally:
        os.close(fd)


def _info(name: str) -> tuple[str, set[str]]:
    base, sep, info = name.partition(":2,")
    return base, set(info) if sep else set()


def is_marked(name: str) -> bool:
    """True for a Maildir file name carrying :data:`MARK` (committed by an earlier run)."""
    return MARK in _info(name)[1]


def _maildir_done(path: Path, maildir: Path) -> Callable[[], None]:
    def done() -> None:
        base, flags = _info(path.name)
        target = maildir / "cur" / f"{base}:2,{''.join(sorted(flags | {'S', MARK}))}"
        if target != path:
            os.replace(path, target)

    return done


def _make_folder(folder: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "maildirfolder").touch(exist_ok=True)  # Maildir++: "this is a sub-folder"


def _maildir_set_aside(path: Path, failed: Path) -> Callable[[], str | None]:
    def set_aside() -> str | None:
        if path.parent.parent == failed:
            return str(path)  # failed again on retry: it stays where it is
        _make_folder(failed)
        base, flags = _info(path.name)
        target = failed / "cur" / f"{base}:2,{''.join(sorted(flags - {MARK}))}"
        os.replace(path, target)
        return str(target)

    return set_aside


def _iter_maildir(path: Path, limit: int, *, skip_marked: bool, retry_failed: bool) -> Iterator[Source | Skipped]:
    failed = failed_folder(path)
    folders = [path / "new", path / "cur"]
    if retry_failed and is_maildir(failed):
        folders += [failed / "new", failed / "cur"]
    # List every folder first: messages that are done move from new/ to cur/ meanwhile.
    entries: list[Path] = []
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        entries += [folder / name for name in names if not name.startswith(".")]
    for entry in entries:
        if skip_marked and entry.parent.name == "cur" and is_marked(entry.name):
            continue  # committed by an earlier run: not even opened
        try:
            data = _read(entry, limit) or b""
        except FileNotFoundError:
            yield _vanished(entry)  # taken meanwhile, by another ingest or a mail client
            continue
        except IsADirectoryError:
            continue
        except _NotRegular as exc:
            yield _special(entry, exc.mode)
            continue
        except OSError as exc:
            yield _unreadable(entry, exc)
            continue
        yield Source(str(entry), data, _maildir_done(entry, path), _maildir_set_aside(entry, failed))


def _iter_mbox(path: Path) -> Iterator[Source]:
    box = mailbox.mbox(path, create=False)
    try:
        for number, key in enumerate(box.iterkeys(), start=1):
            yield Source(f"{path}#{number}", box.get_bytes(key))
    finally:
        box.close()


def _walk(
    path: Path, limit: int, seen: set[tuple[int, int]], *, skip_marked: bool, retry_failed: bool, top: bool
) -> Iterator[Source | Skipped]:
    try:
        info = path.stat()  # follows symbolic links, as a user pointing at a link expects
    except FileNotFoundError:
        if top:
            raise  # the path given on the command line: the caller says it does not exist
        yield _vanished(path)
        return
    except OSError as exc:
        if top and exc.errno != errno.ELOOP:
            raise
        yield _unreadable(path, exc)
        return
    if stat.S_ISDIR(info.st_mode):
        key = (info.st_dev, info.st_ino)
        if key in seen:
            yield _loop(path)
            return
        seen.add(key)
        if is_maildir(path):
            yield from _iter_maildir(path, limit, skip_marked=skip_marked, retry_failed=retry_failed)
            return
        try:
            names = sorted(os.listdir(path))
        except FileNotFoundError:
            yield _vanished(path)
            return
        except OSError as exc:
            if top:
                raise
            yield _unreadable(path, exc)
            return
        for name in names:
            entry = path / name
            if name.startswith(".") or entry.suffix.lower() in _SKIP_SUFFIXES:
                continue
            yield from _walk(entry, limit, seen, skip_marked=skip_marked, retry_failed=retry_failed, top=False)
        return
    if not stat.S_ISREG(info.st_mode):
        yield _special(path, info.st_mode)
        return
    try:
        data = _read(path, limit, mbox=True)
    except FileNotFoundError:
        yield _vanished(path)
        return
    except _NotRegular as exc:
        yield _special(path, exc.mode)
        return
    except OSError as exc:
        if top:
            raise
        yield _unreadable(path, exc)
        return
    if data is None:
        yield from _iter_mbox(path)
    else:
        yield Source(str(path), data)


def walk(
    path: Path, *, limit: int = MAX_SOURCE, skip_marked: bool = False, retry_failed: bool = False
) -> Iterator[Source | Skipped]:
    """Every report body or message under ``path`` (a file, an mbox, a Maildir, or a directory
    walked recursively in name order; hidden files and documents such as ``.md`` are skipped),
    and every path that was not read, with the reason.

    ``skip_marked``: leave out Maildir messages an earlier ingest committed (:data:`MARK`).
    ``retry_failed``: also read the messages a Maildir's :func:`failed_folder` holds.
    Raises ``OSError`` only when ``path`` itself cannot be read.
    """
    yield from _walk(path, limit, set(), skip_marked=skip_marked, retry_failed=retry_failed, top=True)


def iter_sources(path: Path, *, limit: int = MAX_SOURCE) -> Iterator[Source]:
    """Every source under ``path`` (see :func:`walk`); what was skipped is logged as a warning."""
    for item in walk(path, limit=limit):
        if isinstance(item, Skipped):
            log.warning("skipped %s: %s", item.label, item.problem.message)
        else:
            yield item


def read_stream(stream: BinaryIO, label: str = STDIN_LABEL, *, limit: int = MAX_SOURCE) -> Iterator[Source]:
    """The report body, e-mail or mbox on ``stream`` (standard input), bounded as a file is:
    at most ``limit + 1`` bytes are read, so the parser sees when it is too large. An mbox (it
    begins with ``From ``) yields one source per message, labelled ``<stdin>#1``...; it goes
    through a private temporary file, since :mod:`mailbox` reads only files."""
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"From "):
        yield Source(label, bytes(data))
        return
    with tempfile.TemporaryDirectory(prefix="mtasts-stdin-") as folder:
        path = Path(folder) / "mbox"
        path.write_bytes(data)
        del data
        for source in _iter_mbox(path):
            yield Source(label + source.label[len(str(path)) :], source.data)
