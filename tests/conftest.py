"""Fixtures and helpers shared by the whole suite."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
VECTORS = SHARED / "vectors"
TLSRPT_SAMPLES = SHARED / "tlsrpt-samples"
ABSENT_REASON = "../shared is absent: the shared test material exists only in the project's workspace"


def vector_params(name: str, *, where: Any = None) -> list[Any]:
    """One ``pytest.param`` per vector of ``../shared/vectors/<name>`` (id = the vector's id),
    filtered by ``where``; a single skipped param saying why when the file is absent."""
    path = VECTORS / name
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=ABSENT_REASON), id="shared-absent")]
    vectors: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))["vectors"]
    return [pytest.param(v, id=v["id"]) for v in vectors if where is None or where(v)]


@pytest.fixture
def runner() -> CliRunner:
    """A CLI runner with a wide, colourless terminal so output is stable to compare."""
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})


def has_ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1 (some sandboxes have no IPv6 at all)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def require_shared(path: Path) -> None:
    """Skip the calling test, with the reason, when ``path`` under ``../shared`` is absent."""
    if not path.exists():
        pytest.skip(ABSENT_REASON)


# --- mtasts lab -------------------------------------------------------------------------------
# One lab (the whole scenario catalogue on loopback) per test session; see mtasts.lab.testing.
# Imported inside the fixture so that suites not using the lab do not depend on it.


@pytest.fixture(scope="session")
def lab() -> Any:
    """The whole catalogue running on loopback (a ``mtasts.lab.testing.LabController``):
    DNS, policy hosts, MXs and the TLSRPT sink, started once per session."""
    from mtasts.lab.testing import running_lab

    with running_lab() as controller:
        yield controller


# --- event loop -------------------------------------------------------------------------------
# Async tests run on uvloop, the loop the `mtasts` command runs on (mtasts.cli._run): bugs that
# depend on the loop's timing (a ClientHello lost before a TLS upgrade, issue #8) never showed
# on asyncio's own loop. pytest-asyncio >= 1.4 takes the loop from this hook (overriding the
# `event_loop_policy` fixture is deprecated there, and warnings are errors in this suite).


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The loop every async test runs on: uvloop where installed (as the CLI), else asyncio's."""
    try:
        import uvloop
    except ImportError:  # not on this platform (Windows): the CLI runs on asyncio's loop too
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}
