"""``mtasts lab list`` and ``mtasts lab up`` (the latter in a real subprocess, stopped by SIGTERM)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.lab.scenarios import CATALOGUE
from tests.lab.test_scenarios import REQUIRED

pytestmark = pytest.mark.lab

RUN_CLI = "import sys; from mtasts.cli.main import run; sys.argv[0] = 'mtasts'; run()"


def test_lab_list_names_every_scenario() -> None:
    result = CliRunner().invoke(app, ["lab", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    listed = {line.split()[0] for line in result.output.splitlines() if line.strip()}
    assert set(REQUIRED) <= listed
    assert set(CATALOGUE) <= listed


def test_lab_up_rejects_unknown_scenarios() -> None:
    result = CliRunner().invoke(app, ["lab", "up", "--scenario", "nope"])
    assert result.exit_code == 2
    assert "nope" in result.output


def test_lab_up_rejects_a_network_outside_loopback() -> None:
    result = CliRunner().invoke(app, ["lab", "up", "--network", "10.0.0.0/24"])
    assert result.exit_code == 2
    assert "127.0.0.0/8" in result.output


def wait_for_file(path: Path, process: subprocess.Popen[bytes], seconds: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            data: dict[str, object] = json.loads(path.read_text("utf-8"))
            return data
        if process.poll() is not None:
            raise AssertionError(f"mtasts lab up exited with {process.returncode}")
        time.sleep(0.02)
    raise AssertionError("the info file never appeared")


@pytest.mark.parametrize("scenarios", [[], ["enforce-ok", "policy-404"]], ids=["all", "some"])
def test_lab_up_writes_info_and_stops_on_sigterm(tmp_path: Path, scenarios: list[str]) -> None:
    info_file = tmp_path / "lab.json"
    args = [sys.executable, "-c", RUN_CLI, "lab", "up", "--info", str(info_file)]
    for name in scenarios:
        args += ["--scenario", name]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        info = wait_for_file(info_file, process)
        assert {"nameserver", "ca_file", "https_port", "smtp_port", "domains"} <= info.keys()
        domains = info["domains"]
        assert isinstance(domains, list)
        expected = scenarios or list(CATALOGUE)
        assert [d["scenario"] for d in domains] == expected
        address, port = str(info["nameserver"]).rsplit(":", 1)
        query = dns.message.make_query(f"_mta-sts.{domains[0]['name']}", "TXT")
        assert dns.query.udp(query, address, port=int(port), timeout=2).answer
        assert Path(str(info["ca_file"])).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err.decode()
    assert b"lab stopped" in out
    assert not Path(str(info["ca_file"])).exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, int(port)), timeout=1).close()


def test_lab_up_stops_on_sigint(tmp_path: Path) -> None:
    info_file = tmp_path / "lab.json"
    args = [sys.executable, "-c", RUN_CLI, "lab", "up", "-s", "enforce-ok", "--info", str(info_file)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_file(info_file, process)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
