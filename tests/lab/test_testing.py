"""The background-thread controller and the session fixture."""

from __future__ import annotations

import asyncio

import pytest

from mtasts.lab.scenarios import CATALOGUE
from mtasts.lab.testing import LabController, running_lab
from mtasts.lab.world import Ports

pytestmark = pytest.mark.lab


def test_session_fixture_serves_the_whole_catalogue(lab: LabController) -> None:
    assert {d["scenario"] for d in lab.info()["domains"]} == set(CATALOGUE)
    assert lab.lab.running


def test_controller_start_stop() -> None:
    controller = LabController(["enforce-ok"])
    with pytest.raises(RuntimeError):
        controller.call(lambda: None)
    with controller:
        with pytest.raises(RuntimeError, match="already started"):
            controller.start()
        assert controller.call(lambda: 42) == 42
        assert controller.resolver().resolve(controller.domain("enforce-ok"), "MX")
    assert controller.leftover_tasks == ()


def test_start_failure_is_raised_in_the_caller() -> None:
    with running_lab(["enforce-ok"]) as first:
        _address, port = first.nameserver
        taken = LabController(["enforce-ok"], network=first.lab.network, ports=Ports(dns=port))
        with pytest.raises(OSError, match="in use"):
            taken.start()
        assert not taken.lab.running
        taken.stop()  # nothing to stop: harmless


async def test_async_tests_run_on_uvloop() -> None:
    """tests/conftest.py puts every async test on the loop the CLI uses (issue #8: the lab's TLS
    bug showed only there)."""
    uvloop = pytest.importorskip("uvloop")
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


def test_the_controller_runs_the_lab_on_uvloop(lab: LabController) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert lab.call(lambda: isinstance(asyncio.get_running_loop(), uvloop.Loop))
