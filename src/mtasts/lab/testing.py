"""Running a lab from blocking code: a background-thread controller and client helpers.

Tests written with blocking clients (``smtplib``, ``http.client``, dnspython's sync resolver)
cannot share an event loop with the servers they talk to, so :class:`LabController` runs a
:class:`~mtasts.lab.world.Lab` on its own loop (uvloop, as the CLI does) in a daemon thread,
like aiosmtpd's ``Controller``: :meth:`~LabController.start` returns once every listener is ready and
:meth:`~LabController.stop` tears everything down and records any task left behind.
:func:`running_lab` wraps both for a pytest fixture::

    @pytest.fixture(scope="session")
    def lab():
        with running_lab() as controller:
            yield controller

This module does not import pytest, so the package keeps no test-only dependency.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

import dns.resolver

from mtasts.lab.https import LoggedRequest
from mtasts.lab.scenarios import Scenario
from mtasts.lab.sink import Report
from mtasts.lab.smtp import Message
from mtasts.lab.world import Lab

_uvloop: ModuleType | None
try:
    import uvloop as _uvloop
except ImportError:  # not on this platform (Windows)
    _uvloop = None

__all__ = ["LabController", "running_lab"]

_T = TypeVar("_T")
_START_TIMEOUT = 30.0


class LabController:
    """A :class:`Lab` running on an event loop in a background thread.

    Keyword arguments go to :class:`Lab`. Methods that read the lab's state run on the lab's
    loop, so they are safe to call from the test's thread.
    """

    def __init__(self, scenarios: Iterable[str | Scenario] | None = None, **lab_options: Any) -> None:
        self.lab = Lab(scenarios, **lab_options)
        self.leftover_tasks: tuple[str, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread and the lab; return when every listener is ready."""
        if self._thread is not None:
            raise RuntimeError("the lab controller is already started")
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="mtasts-lab", daemon=True)
        self._thread.start()
        try:
            ready.result(_START_TIMEOUT)
        except BaseException:
            self._thread.join(_START_TIMEOUT)
            self._thread = None
            raise

    def stop(self) -> None:
        """Stop the lab, then the loop; :attr:`leftover_tasks` names any task still alive."""
        if self._thread is None or self._loop is None:
            return
        self.leftover_tasks = self.call(self._stop_lab)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_TIMEOUT)
        self._thread = None

    def __enter__(self) -> LabController:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: Future[None]) -> None:
        loop = new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self.lab.start())
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _stop_lab(self) -> tuple[str, ...]:
        await self.lab.stop()
        current = asyncio.current_task()
        return tuple(repr(task) for task in asyncio.all_tasks() if task is not current)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` (or await the coroutine it returns) on the lab's loop; its result."""
        if self._loop is None:
            raise RuntimeError("the lab is not running")

        async def run() -> Any:
            result = function()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_START_TIMEOUT)

    # --- where things are (see Lab) ------------------------------------------------------------

    @property
    def nameserver(self) -> tuple[str, int]:
        """The nameserver's (address, port)."""
        return self.lab.nameserver

    @property
    def https_port(self) -> int:
        """The port every HTTPS host listens on."""
        return self.lab.https_port

    @property
    def smtp_port(self) -> int:
        """The port every MX host listens on."""
        return self.lab.smtp_port

    def info(self) -> dict[str, Any]:
        """:meth:`Lab.info`: nameserver, CA file, ports, domains."""
        return self.lab.info()

    def domain(self, scenario: str) -> str:
        """The mail domain of ``scenario``."""
        return self.lab.domain(scenario)

    def address(self, host: str) -> str:
        """The loopback address of ``host``."""
        return self.lab.address(host)

    def messages(self, host: str | None = None) -> tuple[Message, ...]:
        """Mail accepted by MX ``host`` (all MXs when ``None``)."""
        result: tuple[Message, ...] = self.call(lambda: self.lab.messages(host))
        return result

    def reports(self) -> tuple[Report, ...]:
        """TLS reports the sink received."""
        result: tuple[Report, ...] = self.call(self.lab.reports)
        return result

    def https_requests(self, host: str | None = None) -> tuple[LoggedRequest, ...]:
        """HTTPS requests the lab's hosts read (:meth:`Lab.https_requests`)."""
        result: tuple[LoggedRequest, ...] = self.call(lambda: self.lab.https_requests(host))
        return result

    # --- independent clients, configured for the lab ---------------------------------------

    def resolver(self, *, lifetime: float = 2.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only the lab's nameserver."""
        return lab_resolver(self.lab, lifetime=lifetime)

    def client_context(self, *, extra_ca: bytes | None = None) -> ssl.SSLContext:
        """A verifying client context trusting the lab root (and ``extra_ca`` PEM, if given)."""
        context = ssl.create_default_context(cafile=str(self.lab.ca_file))
        if extra_ca is not None:
            context.load_verify_locations(cadata=extra_ca.decode("ascii"))
        return context

    def connect(self, host: str, port: int, *, timeout: float = 2.0) -> socket.socket:
        """A TCP connection to ``host`` (a lab host name) on ``port``."""
        return socket.create_connection((self.address(host), port), timeout=timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop of the kind the ``mtasts`` command runs on: uvloop where it is installed.

    The lab must be tested on the loop it is used with: timing-dependent bugs (a ClientHello
    lost before a TLS upgrade) showed under uvloop and never under asyncio's own loop.
    """
    if _uvloop is None:  # not on this platform (Windows): the command runs on asyncio's loop too
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = _uvloop.new_event_loop()
    return loop


def lab_resolver(lab: Lab, *, lifetime: float = 2.0) -> dns.resolver.Resolver:
    """A dnspython resolver that asks only ``lab``'s nameserver (no system configuration)."""
    resolver = dns.resolver.Resolver(configure=False)
    address, port = lab.nameserver
    resolver.nameservers = [address]
    resolver.port = port
    resolver.lifetime = lifetime
    resolver.timeout = lifetime
    return resolver


@contextmanager
def running_lab(scenarios: Iterable[str | Scenario] | None = None, **lab_options: Any) -> Iterator[LabController]:
    """A started :class:`LabController` for the block, stopped afterwards."""
    controller = LabController(scenarios, **lab_options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
