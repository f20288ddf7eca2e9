"""Report parsing for ``report serve`` off the event loop, a bounded number at once.

Parsing a report (gunzip, JSON, building values) is CPU-bound Python. On the server's event
loop, one large or hostile body delays every other client's answer; in a thread it still holds
the GIL, and the event loop then waits a switch interval (5 ms) each time it wants to run, so
a request that needs a dozen loop turns is late by tens of milliseconds. The parse therefore
runs in worker *processes* (``bench/report.py`` measures both kinds).

Two lanes, each with its own workers and a bounded queue: small bodies (every real report: a
few KiB; JSON up to ``small_body`` bytes, gzip up to a sixteenth of it, since gzip may expand a
thousandfold) and the rest. A flood of large hostile bodies fills only the
large lane, so a normal report never waits behind one. A lane that is full, or a client that
already has ``per_client`` parses waiting, gets :class:`PoolBusy` at once (the endpoint answers
503 with ``Retry-After``): excess work is refused fast, never queued without bound.

Workers get either the body (small ones, in memory) or the path of the file it was spooled to,
and send back the report or the parse error as plain data (``ParseError`` itself does not
survive pickling).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mtasts.core.problems import ParseError
from mtasts.core.tlsrpt_report import ReportLimits, TlsRptReport, parse_report

__all__ = ["ParseFailed", "ParsePool", "PoolBusy", "Unexpected", "pin_malloc_thresholds"]

PoolKind = Literal["process", "thread"]

_M_TRIM_THRESHOLD: int = -1
_M_MMAP_THRESHOLD: int = -3


def pin_malloc_thresholds(mmap_threshold: int = 32 * 1024) -> bool:
    """Make glibc serve every block of ``mmap_threshold`` bytes or more with its own mapping.

    glibc raises its mmap threshold each time a large mapped block is freed (up to 32 MiB), so
    after a burst of 4 MiB bodies later ones come from the heap and fragment it: RSS stays at
    its peak long after the burst ends. Fixing the threshold (which also fixes the trim
    threshold) returns such blocks to the system on ``free``. False where libc is not glibc.
    """
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * mmap_threshold))


def trim_malloc() -> None:
    """Give freed heap memory back to the system now (glibc ``malloc_trim``; no-op elsewhere)."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name).malloc_trim(0)


@dataclass(frozen=True, slots=True)
class ParseFailed:
    """The body is not a report: the parser's stable code and message."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Unexpected:
    """The parser raised something else (a bug): its type, message and traceback text."""

    kind: str
    message: str
    traceback: str


class PoolBusy(Exception):
    """No parse slot now (lane full or the client has enough waiting); retry after a while."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Outcome = TlsRptReport | ParseFailed | Unexpected


def parse_job(source: bytes | str, limits: ReportLimits) -> Outcome:
    """The work of one parse, in a worker: ``source`` is the body or the path of its spool file."""
    try:
        if isinstance(source, str):
            with open(source, "rb") as handle:
                data = handle.read(limits.max_input + 1)
        else:
            data = source
        return parse_report(data, limits)
    except ParseError as exc:
        return ParseFailed(exc.code, exc.message)
    except OSError as exc:
        return Unexpected(type(exc).__name__, f"cannot read the spooled body: {exc.strerror or exc}", "")
    except Exception as exc:  # a bug in the parser: reported as data, the worker lives on
        return Unexpected(type(exc).__name__, str(exc)[:200], traceback.format_exc())


def _warm() -> int:
    return os.getpid()


def _worker_init() -> None:
    pin_malloc_thresholds()


class _Lane:
    def __init__(self, name: str, workers: int, queue: int, kind: PoolKind) -> None:
        self.name = name
        self.workers = workers
        self.capacity = workers + queue
        self.kind = kind
        self.active = 0
        self.executor = self._new_executor()

    def _new_executor(self) -> concurrent.futures.Executor:
        if self.kind == "thread":
            return concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix=f"mtasts-parse-{self.name}")
        # forkserver: workers start from a small clean process, not from a copy of a server
        # with an event loop, threads and open sockets (fork), and faster than spawn.
        context = multiprocessing.get_context("forkserver")
        return concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_init)

    def renew(self) -> None:
        """A worker died (killed, out of memory): the executor is broken; start a fresh one."""
        old, self.executor = self.executor, self._new_executor()
        old.shutdown(wait=False, cancel_futures=True)


class ParsePool:
    """Two lanes of parse workers with bounded queues and a per-client cap. Nothing starts
    until :meth:`start`; :meth:`parse` is called from the event loop."""

    def __init__(
        self,
        limits: ReportLimits,
        *,
        workers: int = 1,
        queue: int = 8,
        small_body: int = 64 * 1024,
        per_client: int = 2,
        kind: PoolKind = "process",
        on_worker_lost: Callable[[str], None] | None = None,
    ) -> None:
        if workers < 1 or queue < 0 or per_client < 1 or small_body < 0:
            raise ValueError("workers and per_client must be positive, queue and small_body not negative")
        self.limits = limits
        self.kind = kind
        self.small_body = small_body
        self.per_client = per_client
        self._workers = workers
        self._queue = queue
        self._clients: Counter[str] = Counter()
        self._lanes: dict[str, _Lane] = {}
        self._on_worker_lost = on_worker_lost

    async def start(self) -> None:
        """Start the workers now, so that the first report does not wait for a process to start."""
        if self.kind == "process":
            multiprocessing.get_context("forkserver").set_forkserver_preload(["mtasts.report.parsepool"])
        self._lanes = {name: _Lane(name, self._workers, self._queue, self.kind) for name in ("small", "large")}
        loop = asyncio.get_running_loop()
        lanes = self._lanes.values()
        warm = [loop.run_in_executor(lane.executor, _warm) for lane in lanes for _ in range(lane.workers)]
        await asyncio.gather(*warm)

    def shutdown(self) -> None:
        for lane in self._lanes.values():
            lane.executor.shutdown(wait=False, cancel_futures=True)
        self._lanes = {}

    @property
    def in_flight(self) -> int:
        return sum(lane.active for lane in self._lanes.values())

    def is_small(self, source: bytes | Path, size: int) -> bool:
        """Whether a body goes to the small lane: cheap to parse whatever its content."""
        if isinstance(source, Path) or size > self.small_body:
            return False
        return not source.startswith(b"\x1f\x8b") or size <= self.small_body // 16

    async def parse(self, client: str, source: bytes | Path, size: int) -> Outcome:
        """Parse ``source`` (the body, or its spool file) for ``client``; :class:`PoolBusy` when
        no slot is free now."""
        if not self._lanes:  # not started: lanes without warm-up (threads start on demand anyway)
            self._lanes = {name: _Lane(name, self._workers, self._queue, self.kind) for name in ("small", "large")}
        lane = self._lanes["small" if self.is_small(source, size) else "large"]
        if self._clients[client] >= self.per_client:
            raise PoolBusy(f"this client already has {self.per_client} reports being read")
        if lane.active >= lane.capacity:
            raise PoolBusy(f"{lane.active} {lane.name} reports are being read")
        lane.active += 1
        self._clients[client] += 1
        job = str(source) if isinstance(source, Path) else source
        try:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(lane.executor, parse_job, job, self.limits)
            except concurrent.futures.BrokenExecutor:
                lane.renew()
                if self._on_worker_lost is not None:
                    self._on_worker_lost(lane.name)
                return Unexpected("BrokenProcessPool", "a parse worker died while reading this report", "")
        finally:
            lane.active -= 1
            self._clients[client] -= 1
            if self._clients[client] <= 0:
                del self._clients[client]
