"""``mtasts check``: inspect MTA-STS and TLS reporting for one or many domains.

A bulk run (``--file``, or ``-`` for standard input) is streamed: lines are read as domains are
handed out, results are written to ``--output`` as they complete, and only the names already
seen are kept (to check each domain once). From :data:`SMALL_RUN` domains on it is spread over
``--workers`` processes (:mod:`mtasts.check.workers`); a smaller run is checked in this process,
where starting workers would cost more than it saves. ``--shard`` and ``--resume`` are planned
in :mod:`mtasts.check.bulk`.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, BinaryIO, NoReturn

import typer

from mtasts.check.bulk import (
    InputError,
    Outcome,
    RecordFormat,
    ResumePoint,
    Shard,
    Tally,
    count_domain_lines,
    decoded_lines,
    estimate_total,
    progress_text,
    resume_point,
)
from mtasts.check.domainlist import DomainList
from mtasts.check.limits import DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_MX_HOSTS, DOMAIN_TIMEOUT_FACTOR, CheckLimits
from mtasts.cli._run import run_async
from mtasts.cli.cafile import check_ca_file
from mtasts.cli.exitcodes import ExitCode, FailOn, exit_for, fail, in_language
from mtasts.cli.output import THEME, console, print_json
from mtasts.core.problems import Severity
from mtasts.i18n.words import plural
from mtasts.net.settings import DEFAULT_TIMEOUT, NetworkSettings, parse_nameserver

if TYPE_CHECKING:  # the inspector (dnspython, cryptography, h11) is imported when a check runs
    from rich.console import Console, RenderableType
    from rich.progress import Progress, TaskID

    from mtasts.check.inspect import DomainReport
    from mtasts.check.workers import Presenter


_TESTING = "For testing (the lab)"
_NETWORK = "Network"
_BULK = "Bulk"

SMALL_RUN = 100  # fewer domains than this are checked in this process, without workers
_FLUSH_SECONDS = 1.0  # an interrupted run keeps what it finished up to this long ago
_PROGRESS_SECONDS = 0.1
_INTERRUPTED = 130


def _cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, as ``taskset`` or a container sets it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check(
    domains: Annotated[
        list[str] | None,
        typer.Argument(help="Domains to check ('-' reads them from standard input, one per line).", show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Read domains from FILE, one per line ('#' starts a comment).", rich_help_panel=_BULK
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON document (a list, one object per domain, in input order) at the end: it is "
            "held in memory, so it is for small runs; a large one goes to --output FILE.jsonl.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write results to FILE.jsonl or FILE.csv, each as soon as it is known (in the order checks end).",
            rich_help_panel=_BULK,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run: keep the results already in --output and check only the "
            "domains it does not hold.",
            rich_help_panel=_BULK,
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            max=512,
            help=f"Processes checking domains of a large run (from {SMALL_RUN} domains) [default: the number of "
            "CPUs]. 1: everything in this process.",
            rich_help_panel=_BULK,
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            max=1000,
            help="Domains each worker process checks at the same time (--workers × this in all).",
            rich_help_panel=_BULK,
        ),
    ] = 32,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="I/N",
            help="Check only the I-th of N slices of the list (by a hash of each name: the same on every "
            "machine), so that N machines split one list without coordination.",
            rich_help_panel=_BULK,
            show_default=False,
        ),
    ] = None,
    nameserver: Annotated[
        str | None,
        typer.Option(
            "--nameserver",
            help="Resolve through this server, IP[:PORT], instead of the system resolver.",
            rich_help_panel=_NETWORK,
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            help="Trust the CAs in this PEM file instead of the system store.",
            rich_help_panel=_NETWORK,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, help="Seconds allowed for each lookup, fetch and probe.", rich_help_panel=_NETWORK
        ),
    ] = DEFAULT_TIMEOUT,
    domain_timeout: Annotated[
        float | None,
        typer.Option(
            "--domain-timeout",
            min=0.1,
            help="Seconds allowed for one whole domain, however many MX hosts it has "
            f"[default: {DOMAIN_TIMEOUT_FACTOR} × --timeout].",
            rich_help_panel=_NETWORK,
            show_default=False,
        ),
    ] = None,
    max_mx: Annotated[
        int,
        typer.Option(
            "--max-mx",
            min=1,
            max=100,
            help="MX hosts probed per domain, most preferred first.",
            rich_help_panel=_NETWORK,
        ),
    ] = DEFAULT_MAX_MX_HOSTS,
    max_addresses: Annotated[
        int,
        typer.Option(
            "--max-addresses",
            min=1,
            max=32,
            help="Addresses probed per MX host (IPv4 and IPv6 in turn).",
            rich_help_panel=_NETWORK,
        ),
    ] = DEFAULT_MAX_ADDRESSES,
    refuse_private: Annotated[
        bool,
        typer.Option(
            "--refuse-private",
            help="Never connect to an address that is not globally reachable (private, loopback, shared, "
            "documentation, ...; IPv4 inside 6to4, Teredo, NAT64 and IPv4-mapped IPv6 too).",
            rich_help_panel=_NETWORK,
        ),
    ] = False,
    expiry_days: Annotated[
        float,
        typer.Option("--expiry-warning-days", min=0, help="Warn about certificates expiring within this many days."),
    ] = 14,
    fail_on: Annotated[
        FailOn,
        typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe ('never': only 0, 2, 3, 4)."),
    ] = FailOn.WARNING,
    https_port: Annotated[
        int, typer.Option("--https-port", help="Policy hosts' HTTPS port (RFC 8461: 443).", rich_help_panel=_TESTING)
    ] = 443,
    smtp_port: Annotated[
        int, typer.Option("--smtp-port", help="MX hosts' SMTP port (RFC 8461: 25).", rich_help_panel=_TESTING)
    ] = 25,
) -> None:
    """Check whether MTA-STS works for each DOMAIN: the _mta-sts record, the policy fetch, every
    address of every MX (STARTTLS, certificate, TLS version) and TLS reporting.

    Each problem comes with a fix; the verdict says what a compliant sender would do.
    A large list (--file, or '-') is read as it is checked, on every CPU (--workers), with its
    results written to --output as they complete; Ctrl-C stops it (exit 130) and --resume
    continues it. Exit status: 0 no finding at or above --fail-on (default warning), 1 findings
    at or above it, 2 usage error, 3 could not run (unreadable or undecodable --file, bad
    --ca-file, --output in a missing folder, or every domain ended in local trouble: our
    nameserver or port 25), 4 internal error.
    """
    fmt: RecordFormat | None = None
    if output is not None:
        suffix = output.suffix.lower()
        if suffix not in (".jsonl", ".csv"):
            fail("--output must end in .jsonl or .csv", ExitCode.USAGE)
        fmt = "jsonl" if suffix == ".jsonl" else "csv"
    if resume and output is None:
        fail("--resume continues the results of --output FILE: give it", ExitCode.USAGE)
    selected = None
    if shard is not None:
        try:
            selected = Shard.parse(shard)
        except ValueError as exc:
            fail(f"--shard {exc}", ExitCode.USAGE)
    if output is not None and not output.parent.is_dir():
        fail(f"cannot write {output}: the folder {output.parent} does not exist")
    if ca_file is not None:
        check_ca_file(ca_file)
    server = None
    if nameserver is not None:
        try:
            server = parse_nameserver(nameserver)
        except ValueError as exc:
            fail(f"--nameserver {nameserver!r}: {exc}", ExitCode.USAGE)
    try:
        settings = NetworkSettings(
            nameserver=server,
            ca_file=ca_file,
            timeout=timeout,
            https_port=https_port,
            smtp_port=smtp_port,
            allow_private=not refuse_private,
            ehlo_name=_ehlo_name(),
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    limits = CheckLimits(domain_timeout=domain_timeout, max_mx_hosts=max_mx, max_addresses=max_addresses)

    with ExitStack() as stack:
        names = DomainList(select=None if selected is None else selected.selects)
        point = ResumePoint()
        if resume and output is not None and fmt is not None and output.exists():
            point = _resume_point(output, fmt)
            names.mark_done(point.done)
            point.done = set()  # one copy of a million names in memory, not two
        lines, total_lines = _input_lines(domains or [], file, stack)
        keys = names.names(lines)
        try:
            head = list(itertools.islice(keys, SMALL_RUN))
        except InputError as exc:
            fail(str(exc))
        if not head and names.lines == 0:
            fail("give at least one domain (arguments, --file, or '-' for standard input)", ExitCode.USAGE)
        handle = _open_output(output, fmt, point) if output is not None else None
        if handle is not None:
            stack.callback(handle.close)
        run = _Run(
            names=names,
            total_lines=total_lines,
            output=output,
            handle=handle,
            json_output=json_output,
            show_reports=not json_output and (output is None or len(head) == 1),
            single=len(head) == 1,
            resumed=point.resumed,
        )
        many = len(head) >= SMALL_RUN
        pool_size = _cpu_count() if workers is None else workers
        try:
            if many and pool_size > 1:
                run.in_pool(itertools.chain(head, keys), settings, limits, concurrency, expiry_days, fmt, pool_size)
            else:
                run.here(itertools.chain(head, keys), settings, limits, concurrency, expiry_days, fmt)
        except KeyboardInterrupt:  # the in-process run: asyncio cancelled it, nothing is half written
            run.interrupted = True
        finally:
            run.finish()
        if run.interrupted:
            run.say_interrupted()
            raise typer.Exit(_INTERRUPTED)
        if run.input_error is not None:
            fail(f"{run.input_error} (the domains before it were checked: --resume continues after fixing it)")
        run.summary()
        tally = run.tally
    if tally.all_local:
        raise typer.Exit(int(ExitCode.CANNOT_RUN))
    raise typer.Exit(int(exit_for(tally.severities(), fail_on)))


def _resume_point(output: Path, fmt: RecordFormat) -> ResumePoint:
    from mtasts.check.render import CSV_FIELDS

    try:
        with output.open("rb") as stream:
            return resume_point(stream, fmt, str(output), ",".join(CSV_FIELDS))
    except InputError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read {output} to resume: {exc.strerror or exc}")


def _open_output(output: Path, fmt: RecordFormat | None, point: ResumePoint) -> IO[str]:
    """The output file: new, or (``--resume``) cut after its last whole record and appended to."""
    from mtasts.check.render import CSV_FIELDS

    try:
        if point.read:
            with output.open("r+b") as raw:
                raw.truncate(point.keep)
            handle = output.open("a", encoding="utf-8", newline="")
        else:
            handle = output.open("w", encoding="utf-8", newline="")
        if fmt == "csv" and not point.has_header:
            handle.write(",".join(CSV_FIELDS) + "\n")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    return handle


def _input_lines(arguments: list[str], file: Path | None, stack: ExitStack) -> tuple[Iterator[str], int | None]:
    """The lines naming domains, in order (arguments, standard input where '-' is, then
    --file), read lazily; and how many of them name a domain when that is known beforehand
    (no standard input). --file is read once first: a byte that is not UTF-8 is refused before
    anything is checked, and the count gives the progress display its total."""
    total: int | None = 0
    parts: list[Iterator[str]] = []
    for argument in arguments:
        if argument == "-":
            total = None
            stream = getattr(sys.stdin, "buffer", None)
            parts.append(decoded_lines(stream, "standard input") if stream is not None else iter(sys.stdin))
        else:
            parts.append(iter([argument]))
            if total is not None:
                total += count_domain_lines([argument])
    if file is not None:
        try:
            with file.open("rb") as stream:
                counted = count_domain_lines(decoded_lines(stream, str(file)))
            handle: BinaryIO = stack.enter_context(file.open("rb"))
        except InputError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}")
        parts.append(decoded_lines(handle, str(file)))
        if total is not None:
            total += counted
    return itertools.chain.from_iterable(parts), total


@dataclass(frozen=True, slots=True)
class RenderedReport:
    """A report rendered, in a worker, as this process's stdout would show it (width, colour,
    terminal or not), so the parent only copies text. Sent to workers: keep it picklable."""

    width: int
    soft_wrap: bool
    terminal: bool
    color_system: str | None

    def __call__(self, report: DomainReport) -> str:
        from rich.console import Console

        from mtasts.check.render import render_report

        buffer = io.StringIO()
        shown = Console(
            file=buffer,
            theme=THEME,
            highlight=False,
            emoji=False,
            width=self.width,
            soft_wrap=self.soft_wrap,
            force_terminal=self.terminal,
            force_interactive=False,
            color_system=self.color_system if self.terminal else None,  # type: ignore[arg-type]
        )
        shown.print(render_report(report))
        text = buffer.getvalue()
        return text if self.terminal else "\n".join(line.rstrip(" ") for line in text.split("\n"))


@dataclass(slots=True)
class _Run:
    """One run's output side: the output file, stdout, the progress display and the tally. The
    one writer of the output file, whichever process checked the domain."""

    names: DomainList
    total_lines: int | None
    output: Path | None
    handle: IO[str] | None
    json_output: bool
    show_reports: bool
    single: bool
    resumed: int
    tally: Tally = field(default_factory=Tally)
    interrupted: bool = False
    input_error: InputError | None = None
    dispatched: int = 0
    _json: list[tuple[int, str]] = field(default_factory=list)
    _out: Console | None = None
    _progress: Progress | None = None
    _task: TaskID | None = None
    _started: float = field(default_factory=time.monotonic)
    _flushed: float = field(default_factory=time.monotonic)
    _drawn: float = 0.0

    def counted(self, keys: Iterator[str]) -> Iterator[str]:
        for key in keys:
            self.dispatched += 1
            yield key

    def start(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self._out = console()
        err = console(stderr=True)
        if err.is_terminal and not self.single:
            self._progress = Progress(
                TextColumn("checking"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                console=err,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._task = self._progress.add_task("check", total=self.total_lines, status="")
            self._progress.start()

    def presenter(self, fmt: RecordFormat | None, *, in_worker: bool) -> Presenter:
        from mtasts.check.workers import Presenter

        show = None
        if in_worker and self.show_reports:
            out = self._out or console()
            show = RenderedReport(out.width, out.soft_wrap, out.is_terminal, out.color_system)
        return Presenter(record=fmt, json=self.json_output, show=show)

    def emit(self, outcome: Outcome, renderable: RenderableType | None = None) -> None:
        if self.handle is not None:
            self.handle.write(outcome.record)
        if self.json_output:
            self._json.append((outcome.seq, outcome.shown))
        elif self.show_reports:
            self._show(outcome.shown, renderable)
        self.tally.add(outcome)
        now = time.monotonic()
        if self.handle is not None and now - self._flushed >= _FLUSH_SECONDS:
            self.handle.flush()
            self._flushed = now
        if self._progress is not None and now - self._drawn >= _PROGRESS_SECONDS:
            self._draw(now)

    def _show(self, text: str, renderable: RenderableType | None) -> None:
        out = self._out or console()
        target = self._progress.console if self._progress is not None and out.is_terminal else None
        if renderable is not None:
            (target or out).print(renderable)
        elif out.is_terminal:
            from rich.text import Text

            (target or out).print(Text.from_ansi(text.removesuffix("\n")), soft_wrap=True)
        else:
            sys.stdout.write(text)

    def _draw(self, now: float) -> None:
        assert self._progress is not None
        assert self._task is not None
        total = estimate_total(self.total_lines, self.names.lines, self.dispatched)
        status = progress_text(self.tally.done, total, now - self._started, self.tally.errors_text())
        self._progress.update(self._task, completed=self.tally.done, total=total, status=status)
        self._drawn = now

    def warn(self, message: str) -> None:
        err = self._progress.console if self._progress is not None else console(stderr=True)
        err.print(f"mtasts: warning: {in_language(message)}", markup=False, highlight=False)

    # -- the two ways to run --

    def here(
        self,
        keys: Iterator[str],
        settings: NetworkSettings,
        limits: CheckLimits,
        concurrency: int,
        expiry_days: float,
        fmt: RecordFormat | None,
    ) -> None:
        """In this process, on one event loop (small runs, --workers 1)."""
        self.start()
        run_async(self._here(self.counted(keys), settings, limits, concurrency, expiry_days, fmt))

    async def _here(
        self,
        keys: Iterator[str],
        settings: NetworkSettings,
        limits: CheckLimits,
        concurrency: int,
        expiry_days: float,
        fmt: RecordFormat | None,
    ) -> None:
        from mtasts.check.inspect import Inspector
        from mtasts.check.render import render_report

        inspector = Inspector(settings, expiry_warning_days=expiry_days, limits=limits)
        presenter = self.presenter(fmt, in_worker=False)
        order: dict[str, int] = {}

        def numbered() -> Iterator[str]:
            for seq, key in enumerate(keys):
                if self.json_output:  # only --json needs the input order back
                    order[key] = seq
                yield key

        try:
            async for report in inspector.check_many(numbered(), concurrency=concurrency):
                outcome = presenter.outcome(order.get(report.domain, 0), report)
                self.emit(outcome, render_report(report) if self.show_reports else None)
        except InputError as exc:
            self.input_error = exc

    def in_pool(
        self,
        keys: Iterator[str],
        settings: NetworkSettings,
        limits: CheckLimits,
        concurrency: int,
        expiry_days: float,
        fmt: RecordFormat | None,
        workers: int,
    ) -> None:
        """Over ``workers`` processes; Ctrl-C stops handing out domains and cancels the rest."""
        from mtasts.check.workers import Pool, WorkersLost, WorkerSpec

        self.start()
        spec = WorkerSpec(settings, limits, expiry_days, concurrency, self.presenter(fmt, in_worker=True))
        pool = Pool(spec, workers, preload=("mtasts.cli.check",), on_worker_lost=self.warn)

        def interrupt(signum: int, frame: FrameType | None) -> None:
            pool.stop()

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, interrupt) if main else None
        try:
            pool.run(self.counted(keys), self.emit)
        except InputError as exc:
            self.input_error = exc
        except WorkersLost as exc:
            self._internal(f"{exc}; the results so far are in the output (--resume continues)")
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        self.interrupted = pool.stopped

    def _internal(self, message: str) -> NoReturn:
        self.finish()
        sys.stderr.write(f"mtasts: internal error: {message}\n")
        raise typer.Exit(int(ExitCode.INTERNAL))

    # -- the end --

    def finish(self) -> None:
        """Stop the progress display and make what was written durable (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.handle is not None and not self.handle.closed:
            self.handle.flush()

    def say_interrupted(self) -> None:
        where = (
            f"; results so far in {self.output}: the same command with --resume checks the rest" if self.output else ""
        )
        sys.stderr.write(f"mtasts: interrupted after {plural(self.tally.done, 'domain')}{where}\n")

    def summary(self) -> None:
        out = self._out or console()
        if self.json_output:
            print_json([json.loads(line) for _, line in sorted(self._json)])
        if self.output is None or self.json_output:
            return
        counts = self.tally.worst
        skipped = f" ({plural(self.resumed, 'domain')} already there)" if self.resumed else ""
        out.print(
            f"{plural(self.tally.done, 'domain')}: [ok]{counts[None]} ok[/], "
            f"[severity.warning]{counts[Severity.WARNING]} with warnings[/], "
            f"[severity.error]{counts[Severity.ERROR]} with errors[/]; results in {self.output}{skipped}"
        )


def _ehlo_name() -> str:
    """This host's name for EHLO, without a DNS lookup (getfqdn can block on reverse DNS)."""
    name = socket.gethostname()
    return name if "." in name else "mtasts.invalid"
