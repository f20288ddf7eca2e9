"""Fixtures of the web tests: the app in-process (httpx over ASGI, on the test's loop) and the
real ``serve`` process, both pointed at the session's lab."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mtasts.lab.world import check_options as lab_check_options
from mtasts.net.settings import NetworkSettings
from mtasts.web import WebSettings, create_app

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def lab_network(lab: Any) -> NetworkSettings:
    """Network settings pointing at the lab (its nameserver, CA and ports)."""
    info = lab.info()
    return NetworkSettings(
        nameserver=lab.nameserver,
        ca_file=Path(info["ca_file"]),
        timeout=2.0,
        https_port=lab.https_port,
        smtp_port=lab.smtp_port,
    )


@pytest.fixture
def web(lab_network: NetworkSettings) -> Client:
    """``async with web(**settings) as client``: the app with these WebSettings over the lab,
    and an httpx client calling it in-process (``client_address`` sets the peer address). The
    app's checks are cancelled at the end, as its lifespan would."""

    @asynccontextmanager
    async def make(
        *, client_address: str = "127.0.0.1", clock: Callable[[], float] | None = None, **options: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(WebSettings(network=lab_network, **options), clock=clock)
        transport = httpx.ASGITransport(app=app, client=(client_address, 40000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://inspector.test") as client:
                client.app = app  # type: ignore[attr-defined]
                yield client
        finally:
            await app.state.checks.close()

    return make


def peer(client: httpx.AsyncClient, address: str) -> httpx.AsyncClient:
    """Another client of the same app (from ``web``), seen from ``address``."""
    transport = httpx.ASGITransport(app=client.app, client=(address, 40000))  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=transport, base_url=str(client.base_url))


async def finished(client: httpx.AsyncClient, result_path: str) -> httpx.Response:
    """The result page once its check has ended (following the progress events, as the page's
    script does)."""
    job_id = result_path.rsplit("/", 1)[1]
    events = await client.get("/check/events", params={"id": job_id})
    assert events.status_code == 200, events.text
    assert "event: done" in events.text
    return await client.get(result_path)


def section(html: str, section_id: str) -> str:
    """The HTML of the ``<section id=...>`` of a page."""
    match = re.search(rf'<section[^>]*id="{section_id}".*?</section>', html, re.S)
    assert match is not None, f"no section {section_id}"
    return match.group(0)


# --- the real server --------------------------------------------------------------------------


@dataclass
class Served:
    """A running ``mtasts web serve`` process and its base URL; ``stderr`` once stopped."""

    process: subprocess.Popen[str]
    url: str
    stderr: str = ""

    def stop(self) -> int:
        """SIGINT, as Ctrl-C: the exit status (what it wrote to stderr is kept in ``stderr``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=5)
            raise
        self.stderr += err
        return self.process.returncode


def lab_options(lab: Any) -> list[str]:
    return lab_check_options(lab.info(), timeout=2)


def start_server(*options: str, login: bool = False) -> Served:
    """``mtasts web serve --listen 127.0.0.1:0 OPTIONS`` in a new process, once it listens
    (``--no-login`` unless ``login``: the accounts' own tests sign in, tests/web/test_login_browser.py)."""
    command = [sys.executable, "-c", "from mtasts.cli.web import app; app()", "serve", "--listen", "127.0.0.1:0"]
    command += [] if login or "--public" in options else ["--no-login"]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_proxy") and not k.endswith("_PROXY")}
    if "--db" not in options:  # the accounts' database: never the user's own default file
        env["MTASTS_DB"] = f"sqlite:///{tempfile.mkdtemp(prefix='mtasts-web-')}/web.sqlite3"
    process = subprocess.Popen(
        [*command, *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"listening on (http://\S+/)", line)
        if match:
            return Served(process, match.group(1).rstrip("/"), stderr=line)
        if not line and process.poll() is not None:
            break
    process.kill()
    _, err = process.communicate(timeout=5)
    raise AssertionError(f"mtasts web serve did not start: {line!r} {err}")


@pytest.fixture(scope="module")
def served(lab: Any) -> Iterator[Served]:
    """``mtasts web serve`` over the lab, for the module's tests."""
    server = start_server(*lab_options(lab))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lab_options_web(lab: Any) -> list[str]:
    """The lab as ``mtasts check`` / ``mtasts web serve`` options."""
    return lab_options(lab)
