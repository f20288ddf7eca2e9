"""Checking domains on every core: worker processes, each running the async inspector.

One event loop is one core: the inspector spends a few milliseconds of CPU per domain, so a
single process caps a bulk run at a few hundred domains a second however many cores the
machine has. :class:`Pool` runs ``workers`` processes, each with its own :class:`Inspector`
checking ``concurrency`` domains at a time, and the parent reads the list, hands domains out
and writes every result itself (the only writer of the output file).

* **Start method**: ``forkserver``, not ``fork``: the parent may hold threads (Rich's progress
  refresh, the lab in tests) and an event loop, which a forked copy would inherit half-locked.
  The server preloads the inspector, so each worker starts from a warm, clean process.
* **Bounded both ways**: each worker holds at most ``2 × concurrency`` domains (so it never
  waits for work), and the parent reads the next line only when a worker has room: the reader
  never runs ahead of the checks by more than ``workers × 2 × concurrency`` domains. Workers
  send results back in small batches as they complete, each already rendered
  (:class:`Presenter`), with what the tally needs (:class:`mtasts.check.bulk.Outcome`).
* **Per-worker pipes**, not one shared queue: the parent knows which domains each worker
  holds, so when a worker dies (killed, out of memory, a crash in a C library) its domains are
  checked again once elsewhere, and a domain that was on two dead workers is reported as
  ``check-internal-error``. None is lost silently.
* **Stopping** (Ctrl-C: :meth:`Pool.stop`): no more domains go out, workers cancel what they
  are checking and send what they finished; a domain not finished is not written, so
  ``--resume`` checks it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from typing import Any

from mtasts.check.bulk import Outcome, RecordFormat
from mtasts.check.inspect import DomainReport, Inspector
from mtasts.check.limits import CheckLimits
from mtasts.check.render import csv_rows, report_json_line
from mtasts.core.findings import Finding
from mtasts.core.problems import Severity
from mtasts.core.verdict import unknown_verdict
from mtasts.i18n.words import plural
from mtasts.net.settings import NetworkSettings

__all__ = [
    "Pool",
    "Presenter",
    "WorkerSpec",
    "WorkersLost",
    "internal_error_report",
    "run_loop",
    "tune_collector",
]

_STOP = "stop"
_BATCH = 64  # results per message at most
_BATCH_SECONDS = 0.05  # and at most this late
_TICK = 0.2  # the parent's longest wait: how soon a Ctrl-C or a dead worker is seen
_GRACE = 5.0  # seconds workers get to stop before they are terminated
_GC_THRESHOLDS = (20_000, 20, 20)  # the young generation collected after this many more allocations


class WorkersLost(RuntimeError):
    """Workers kept dying: the run cannot go on (the output written so far is consistent)."""


@dataclass(frozen=True, slots=True)
class Presenter:
    """Turns a report into an :class:`Outcome`: ``record`` in the output file's format, ``shown``
    the ``--json`` line or ``show(report)`` (a report rendered for stdout), where wanted. It is
    sent to workers, so ``show`` must be a picklable module-level callable."""

    record: RecordFormat | None = None
    json: bool = False
    show: Callable[[DomainReport], str] | None = None

    def outcome(self, seq: int, report: DomainReport) -> Outcome:
        line = report_json_line(report) if self.record == "jsonl" or self.json else ""
        record = line + "\n" if self.record == "jsonl" else csv_rows([report]) if self.record == "csv" else ""
        shown = line if self.json else self.show(report) if self.show is not None else ""
        errors = tuple(sorted({f.code for f in report.findings if f.severity is Severity.ERROR}))
        local = any(f.code.startswith("local-") for f in report.findings)
        return Outcome(seq, report.domain, record, shown, report.worst, local, errors)


def internal_error_report(domain: str, why: str) -> DomainReport:
    """The report of a domain whose check could not finish because of mtasts itself."""
    finding = Finding(
        "check-internal-error",
        Severity.ERROR,
        f"the check of {domain} did not finish: {why}",
        "This is a bug in mtasts or a limit of this machine (memory): check this domain alone "
        "(mtasts check DOMAIN --debug) and report it; the other checks are not affected.",
    )
    verdict = unknown_verdict("not known: the check did not finish")
    return DomainReport(domain, (finding,), verdict, None, None, 0.0, datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything a worker needs to check domains as the parent would (picklable)."""

    settings: NetworkSettings
    limits: CheckLimits
    expiry_days: float
    concurrency: int
    presenter: Presenter


def run_loop(coroutine: Any) -> Any:
    """``asyncio.run`` on uvloop where installed (as :mod:`mtasts.cli._run`, which ``check`` may
    not import from here)."""
    try:
        import uvloop  # noqa: PLC0415 - optional: absent on Windows
    except ImportError:  # not on this platform: the standard loop does the same work
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def tune_collector() -> None:
    """Set the cyclic garbage collector for a process that only checks domains.

    With CPython's defaults (a young collection every 700 net allocations) a bulk check runs a
    young collection every three or four domains, each walking the thousands of young objects
    (coroutines, futures, handles, tuples) of the domains in flight: the collector took 0.2 ms
    of CPU per domain (0.4 ms in a process that also keeps every report), about 5 % of the
    check; with these settings 0.01 to 0.02 ms (``bench/inspector_cpu.py --gc-stats``, with and
    without ``--default-gc``). Nearly everything a check allocates is freed by reference
    counting anyway; the cycles it leaves (exceptions and their tracebacks, finished tasks) are
    few, so collecting them less often costs a few megabytes at most. ``gc.freeze`` moves what
    the process holds at start (modules, the inspector) out of every later collection.
    """
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


# --- the worker process -----------------------------------------------------------------------


def _worker_main(spec: WorkerSpec, inbox: Connection, outbox: Connection) -> None:
    # Ctrl-C reaches every process of the terminal's group: the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_collector()
    try:
        run_loop(_serve(spec, inbox, outbox))
    except (BrokenPipeError, EOFError):  # the parent is gone: nobody to report to
        pass
    finally:
        outbox.close()


async def _serve(spec: WorkerSpec, inbox: Connection, outbox: Connection) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue()  # bounded by the parent's credit
    stopped = asyncio.Event()

    def put_many(items: list[tuple[int, str]]) -> None:
        for item in items:
            queue.put_nowait(item)

    def read() -> None:
        """Receive in a thread, so the pipe from the parent is always drained, however busy the
        loop is (the parent never blocks on a send while this worker blocks on one)."""
        while True:
            try:
                message = inbox.recv()
            except (EOFError, OSError):
                message = _STOP
            if message == _STOP:
                loop.call_soon_threadsafe(stopped.set)
                return
            if message is None:
                loop.call_soon_threadsafe(queue.put_nowait, None)
                return
            loop.call_soon_threadsafe(put_many, message)

    threading.Thread(target=read, name="mtasts-check-inbox", daemon=True).start()
    inspector = Inspector(spec.settings, expiry_warning_days=spec.expiry_days, limits=spec.limits)
    pending: list[Outcome] = []
    last_sent = time.monotonic()

    def send() -> None:
        nonlocal last_sent
        if pending:
            outbox.send(list(pending))
            pending.clear()
        last_sent = time.monotonic()

    async def check() -> None:
        while (item := await queue.get()) is not None:
            seq, domain = item
            report = await inspector.check(domain)
            try:
                pending.append(spec.presenter.outcome(seq, report))
            except Exception as exc:  # a renderer bug: this domain says so, the others go on
                why = f"its result could not be written: {type(exc).__name__}: {exc}"
                pending.append(spec.presenter.outcome(seq, internal_error_report(domain, why)))
            if len(pending) >= _BATCH or time.monotonic() - last_sent >= _BATCH_SECONDS:
                send()
        queue.put_nowait(None)  # for the other tasks

    async def tick() -> None:
        while True:
            await asyncio.sleep(_BATCH_SECONDS)
            if time.monotonic() - last_sent >= _BATCH_SECONDS:
                send()

    checks = [asyncio.create_task(check()) for _ in range(spec.concurrency)]
    ticker = asyncio.create_task(tick())
    stop = asyncio.create_task(stopped.wait())
    waiting: list[asyncio.Future[Any]] = [stop, asyncio.gather(*checks)]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    for task in (*checks, ticker, stop):
        task.cancel()
    await asyncio.gather(*checks, ticker, stop, return_exceptions=True)
    send()


# --- the parent -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Worker:
    process: Any  # multiprocessing.context.ForkServerProcess
    inbox: Connection  # parent → worker
    outbox: Connection  # worker → parent
    in_flight: dict[int, str]
    alive: bool = True


class Pool:
    """``workers`` checking processes fed from one iterator of domains. Nothing starts until
    :meth:`run`; :meth:`stop` may be called from a signal handler."""

    def __init__(
        self,
        spec: WorkerSpec,
        workers: int,
        *,
        preload: tuple[str, ...] = (),
        on_worker_lost: Callable[[str], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be positive")
        self.spec = spec
        self.workers = workers
        self.capacity = 2 * spec.concurrency
        self.dispatched = 0
        self._context = multiprocessing.get_context("forkserver")
        self._preload = ("mtasts.check.workers", *preload)
        self._on_worker_lost = on_worker_lost
        self._pool: list[_Worker] = []
        self._retry: deque[tuple[int, str]] = deque()
        self._retried: set[int] = set()
        self._restarts = 3 * workers
        self._stopping = False
        self._input_error: Exception | None = None

    def stop(self) -> None:
        """Stop handing out domains; what workers are checking is cancelled (safe in a signal handler)."""
        self._stopping = True

    @property
    def stopped(self) -> bool:
        return self._stopping

    def run(self, domains: Iterator[str], emit: Callable[[Outcome], None]) -> None:
        """Check every domain of ``domains`` (read lazily), calling ``emit`` with each outcome as
        it completes. An exception from ``domains`` (unreadable input) stops the reading; the
        domains already sent are finished first, then it is raised."""
        self._context.set_forkserver_preload(list(self._preload))
        self._pool = [self._start() for _ in range(self.workers)]
        source: Iterator[str] | None = domains
        self._input_error = None
        told_to_stop = False
        deadline = 0.0
        try:
            while True:
                if self._stopping and not told_to_stop:
                    told_to_stop, deadline, source = True, time.monotonic() + _GRACE, None
                    self._retry.clear()
                    for worker in self._alive():
                        self._send(worker, _STOP)
                if not self._stopping:
                    source = self._dispatch(source)
                busy = any(w.in_flight for w in self._alive()) or self._retry
                if source is None and not busy and not self._stopping:
                    break
                if told_to_stop and (not any(w.alive for w in self._pool) or time.monotonic() > deadline):
                    break
                if not self._alive():
                    raise WorkersLost("every check worker has stopped")
                self._receive(emit)
        finally:
            self._close()
        if self._input_error is not None:
            raise self._input_error

    # -- internals --

    def _start(self) -> _Worker:
        inbox_r, inbox_w = self._context.Pipe(duplex=False)
        outbox_r, outbox_w = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main, args=(self.spec, inbox_r, outbox_w), name="mtasts-check", daemon=True
        )
        process.start()
        inbox_r.close()  # the worker's ends: closed here, so a dead worker reads as EOF
        outbox_w.close()
        return _Worker(process, inbox_w, outbox_r, {})

    def _alive(self) -> list[_Worker]:
        return [w for w in self._pool if w.alive]

    def _send(self, worker: _Worker, message: object) -> None:
        with contextlib.suppress(OSError):  # it died: its sentinel says so next
            worker.inbox.send(message)

    def _dispatch(self, source: Iterator[str] | None) -> Iterator[str] | None:
        """Fill every worker up to its capacity: retries first, then new domains."""
        for worker in self._alive():
            batch: list[tuple[int, str]] = []
            while len(worker.in_flight) + len(batch) < self.capacity:
                if self._retry:
                    batch.append(self._retry.popleft())
                    continue
                if source is None:
                    break
                try:
                    domain = next(source, None)
                except Exception as exc:  # raised by the reader: what was read is checked first
                    self._input_error, domain = exc, None
                if domain is None:
                    source = None
                    break
                batch.append((self.dispatched, domain))
                self.dispatched += 1
            if batch:
                worker.in_flight.update(batch)
                self._send(worker, batch)
        return source

    def _receive(self, emit: Callable[[Outcome], None]) -> None:
        alive = self._alive()
        by_handle: dict[Any, _Worker] = {}
        for worker in alive:
            by_handle[worker.outbox] = worker
            by_handle[worker.process.sentinel] = worker
        for handle in wait(list(by_handle), timeout=_TICK):
            worker = by_handle[handle]
            if not worker.alive:
                continue
            if handle is worker.outbox:
                try:
                    self._take(worker, worker.outbox.recv(), emit)
                except (EOFError, OSError):
                    self._lost(worker, emit)
            else:
                self._drain(worker, emit)
                self._lost(worker, emit)

    def _take(self, worker: _Worker, outcomes: list[Outcome], emit: Callable[[Outcome], None]) -> None:
        for outcome in outcomes:
            if worker.in_flight.pop(outcome.seq, None) is not None:
                emit(outcome)

    def _drain(self, worker: _Worker, emit: Callable[[Outcome], None]) -> None:
        """What a worker sent before it exited."""
        try:
            while worker.outbox.poll():
                self._take(worker, worker.outbox.recv(), emit)
        except (EOFError, OSError):
            pass

    def _lost(self, worker: _Worker, emit: Callable[[Outcome], None]) -> None:
        """A worker ended: fine when it had nothing left; else its domains go elsewhere once."""
        worker.alive = False
        worker.process.join(timeout=_GRACE)
        if self._stopping:
            return
        if self._restarts > 0:  # only _close ends workers on purpose: this one is replaced
            self._restarts -= 1
            self._pool.append(self._start())
        if not worker.in_flight:
            return
        code = worker.process.exitcode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with status {code}"
        lost = sorted(worker.in_flight.items())
        worker.in_flight.clear()
        again = [(seq, domain) for seq, domain in lost if seq not in self._retried]
        for seq, domain in lost:
            if seq in self._retried:
                report = internal_error_report(domain, f"the worker checking it {how}, twice")
                emit(self.spec.presenter.outcome(seq, report))
        self._retried.update(seq for seq, _ in again)
        self._retry.extend(again)
        if self._on_worker_lost is not None:
            verb = "is" if len(again) == 1 else "are"
            self._on_worker_lost(
                f"a check worker {how} while checking {plural(len(lost), 'domain')}; {len(again)} {verb} checked again"
            )

    def _close(self) -> None:
        for worker in self._alive():
            self._send(worker, _STOP if self._stopping else None)
        deadline = time.monotonic() + _GRACE
        for worker in self._pool:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(timeout=1.0)
            worker.inbox.close()
            worker.outbox.close()
        self._pool = []
