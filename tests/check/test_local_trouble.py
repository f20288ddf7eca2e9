"""Trouble on the checking side is named as such, and the domain is not blamed for it: a dead
--nameserver, outbound port 25 blocked. (A non-PEM --ca-file is refused before anything is
checked: tests/check/test_cli_mistakes.py.)"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app


def _closed_port(kind: int) -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_dead_nameserver_is_named_not_the_domain(runner: CliRunner) -> None:
    """It used to say "Make the DNS servers of example.com answer" and "mail cannot be delivered"."""
    port = _closed_port(socket.SOCK_DGRAM)
    nameserver = f"127.0.0.1:{port}"
    result = runner.invoke(
        app, ["check", "example.com", "example.org", "--nameserver", nameserver, "--timeout", "0.5", "--json"]
    )
    assert result.exit_code == 3, result.output  # could not run: every domain ended in local trouble
    document = json.loads(result.stdout)
    assert [entry["domain"] for entry in document] == ["example.com", "example.org"]
    for entry in document:
        [finding] = entry["findings"]
        assert finding["code"] == "local-dns-unreachable"
        assert nameserver in finding["message"]
        assert "--nameserver" in finding["fix"]
        assert "resolv.conf" in finding["fix"]
        assert entry["verdict"]["delivery"] == "unknown"
        text = json.dumps(entry)
        assert "Make the DNS servers of" not in text
        assert "mail cannot be delivered" not in text


@pytest.mark.lab
def test_a_nameserver_that_refuses_is_alive(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    """The lab's nameserver answers REFUSED outside its zone: it is alive, so a timeout on one
    name (sts-lookup-timeout) stays the domain's finding."""
    result = runner.invoke(app, ["check", lab.domain("sts-lookup-timeout"), "--json", *lab_options])
    [entry] = json.loads(result.stdout)
    assert {f["code"] for f in entry["findings"]} == {"sts-record-lookup-failed"}


@pytest.mark.lab
def test_port_25_blocked_everywhere_is_local(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    """Every MX of every domain refuses the connection, the same way: after a few hosts of
    several domains, that is this machine's network. (The lab's MXs listen on --smtp-port;
    pointing it at a port where nothing listens is what an outbound block on 25 looks like.)"""
    options = list(lab_options)
    options[options.index("--smtp-port") + 1] = str(_closed_port(socket.SOCK_STREAM))
    names = [lab.domain(n) for n in ("enforce-ok", "testing-ok", "tlsrpt-missing", "mx-cert-expired", "dane-ok")]
    result = runner.invoke(app, ["check", *names, "--json", "--concurrency", "1", *options])
    by_domain = {entry["domain"]: entry for entry in json.loads(result.stdout)}
    blocked = [d for d in names if "local-port25-blocked" in {f["code"] for f in by_domain[d]["findings"]}]
    # the first domains cannot know yet; from the third MX host of the run on, every one does
    assert blocked == names[2:], blocked
    for domain in blocked:
        entry = by_domain[domain]
        codes = [f["code"] for f in entry["findings"]]
        assert "mx-unreachable" not in codes
        [finding] = [f for f in entry["findings"] if f["code"] == "local-port25-blocked"]
        assert "ECONNREFUSED" in finding["message"]
        assert "port 25" in finding["fix"]
        assert entry["verdict"]["delivery"] == "unknown"
        assert "deferred" not in entry["verdict"]["summary"]


@pytest.mark.lab
def test_one_domain_with_a_dead_mx_is_still_the_domains(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    names = [lab.domain("mx-unreachable"), lab.domain("enforce-ok"), lab.domain("testing-ok")]
    result = runner.invoke(app, ["check", *names, "--json", "--concurrency", "1", *lab_options])
    by_domain = {entry["domain"]: entry for entry in json.loads(result.stdout)}
    codes = {f["code"] for f in by_domain[names[0]]["findings"]}
    assert "mx-unreachable" in codes
    assert "local-port25-blocked" not in codes


@pytest.mark.lab
def test_a_nameserver_that_refuses_this_domain_is_named(runner: CliRunner, lab: Any, lab_options: list[str]) -> None:
    """The lab's nameserver serves only its zone and REFUSES the rest, as an authoritative-only
    server or a resolver closed to this machine does: that is the setting's fault, not example.com's."""
    result = runner.invoke(app, ["check", "example.com", "--json", *lab_options])
    assert result.exit_code == 3, result.output
    [entry] = json.loads(result.stdout)
    [finding] = entry["findings"]
    assert finding["code"] == "local-dns-unreachable"
    assert "refuses every query for example.com" in finding["message"]
    assert lab.info()["nameserver"] in finding["message"]
