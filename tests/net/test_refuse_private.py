"""``--refuse-private`` connects to nothing that is not globally reachable, for every
connection check makes (the policy host and every MX address).

The real test runs in a network namespace this test creates (``unshare -n``): the issue's
addresses (100.64.0.1, the cloud metadata address 100.100.100.200, 192.0.0.8, 192.0.0.170,
10.0.0.1, 6to4 of 10.0.0.1, NAT64 of 10.0.0.1, Teredo with client 10.0.0.1, and IPv4-mapped
10.0.0.1) are put on its loopback device with listeners on them, so a connection attempt
would really arrive. A control run without the option proves the listeners are reachable.
Where namespaces are not allowed, the same world runs with loopback addresses (which are not
public either), and the connector seam test below proves no connect call is made at all.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mtasts.net import _streams
from mtasts.net._streams import AddressRefused, open_stream

WORLD = Path(__file__).with_name("ssrf_world.py")
ROOT = Path(__file__).resolve().parents[2]


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, check=False)
    return probe.returncode == 0


def _free_ports() -> tuple[int, int]:
    """Two different free port numbers (both held while choosing, so they differ)."""
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        return one.getsockname()[1], two.getsockname()[1]


def _run_world() -> tuple[str, dict[str, Any]]:
    mode = "netns" if _namespaces_work() else "loopback"
    smtp_port, https_port = _free_ports()
    command = [sys.executable, str(WORLD), mode, str(smtp_port), str(https_port)]
    if mode == "netns":
        command = ["unshare", "-n", *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return mode, json.loads(done.stdout.strip().splitlines()[-1])


def test_no_connection_reaches_a_non_public_address() -> None:
    mode, result = _run_world()
    control, refused = result["control"], result["refused"]
    smtp_hits = {key for key in control["hits"] if key.startswith("smtp ")}
    # the control run reached every listener the MX resolves to (policy host: the first one)
    expected = 8 if mode == "netns" else 3
    assert len(smtp_hits) == expected, control
    assert any(key.startswith("https ") for key in control["hits"]), control
    # with --refuse-private: not one connection, to any of them
    assert refused["hits"] == {}, refused
    by_code = {f["code"]: f for f in refused["findings"]}
    assert "non-public addresses" in by_code["mx-unreachable"]["message"]
    assert "non-public addresses" in by_code["policy-fetch-failed"]["message"]


async def test_the_connector_refuses_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second lock: even an address that skipped the DNS layer is refused at the one place
    connections are opened, before any connect call (recorded here to prove it)."""
    calls: list[tuple[str, int]] = []

    async def recording(host: str, port: int, **kwargs: Any) -> Any:
        calls.append((host, port))
        raise ConnectionRefusedError

    monkeypatch.setattr(_streams.asyncio, "open_connection", recording)
    for address in ("100.64.0.1", "100.100.100.200", "192.0.0.8", "10.0.0.1", "2002:a00:1::1", "::ffff:10.0.0.1"):
        with pytest.raises(AddressRefused) as caught:
            await open_stream(address, 25, refuse_non_public=True, limit=1024)
        assert address in caught.value.reason or "::ffff" in address
    assert calls == []
    with pytest.raises(ConnectionRefusedError):
        await open_stream("8.8.8.8", 25, refuse_non_public=True, limit=1024)
    with pytest.raises(ConnectionRefusedError):
        await open_stream("10.0.0.1", 25, refuse_non_public=False, limit=1024)
    assert calls == [("8.8.8.8", 25), ("10.0.0.1", 25)]
