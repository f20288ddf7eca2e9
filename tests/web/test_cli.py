"""``mtasts web serve`` as a user runs it: a real process on the uvloop loop, over the lab;
mistakes are one line and exit 2 or 3; Ctrl-C is a clean exit 0."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from mtasts.cli.web import app
from tests.web.conftest import Served, start_server

pytestmark = pytest.mark.lab


def _mounted() -> typer.Typer:
    """``mtasts web`` as the main command will mount it (``app.add_typer(web.app, name="web")``)."""
    root = typer.Typer()
    root.add_typer(app, name="web")
    return root


@pytest.mark.parametrize(
    ("arguments", "message", "code"),
    [
        (["--listen", "localhost:80"], "mtasts: error: --listen localhost:80: 'localhost' is not an IP address", 2),
        (["--listen", "127.0.0.1"], "mtasts: error: --listen 127.0.0.1: '127.0.0.1' is not HOST:PORT", 2),
        (["--nameserver", "ns.example"], "mtasts: error: --nameserver 'ns.example': 'ns.example' is not an IP", 2),
        (["--https-port", "70000"], "mtasts: error: port 70000 is out of range", 2),
    ],
)
def test_usage_mistakes(arguments: list[str], message: str, code: int) -> None:
    result = CliRunner().invoke(_mounted(), ["web", "serve", *arguments])
    assert result.exit_code == code, result.output
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_unusable_ca_file(tmp_path: Any) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    result = CliRunner().invoke(_mounted(), ["web", "serve", "--ca-file", str(bad)])
    assert result.exit_code == 3
    assert result.stderr.startswith(f"mtasts: error: --ca-file {bad}: ")


def test_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(_mounted(), ["web", "serve", "--listen", f"127.0.0.1:{port}"])
    assert result.exit_code == 3
    assert result.stderr == f"mtasts: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_help_names_the_options() -> None:
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}).invoke(
        _mounted(), ["web", "serve", "--help"]
    )
    assert result.exit_code == 0
    for option in ("--listen", "--public", "--lang", "--nameserver", "--ca-file", "--https-port", "--smtp-port"):
        assert option in result.stdout


def test_serve_checks_a_lab_domain_and_stops_on_ctrl_c(served: Served, lab: Any) -> None:
    domain = lab.domain("mx-cert-expired")
    with httpx.Client(base_url=served.url, timeout=30, trust_env=False) as client:
        form = client.get("/", headers={"accept-language": "ja"})
        api = client.get("/api/check", params={"domain": domain})
        page = client.get("/check", params={"domain": domain}, follow_redirects=True)
    assert form.status_code == 200
    assert '<html lang="ja">' in form.text
    assert api.status_code == 200
    assert "mx-cert-expired" in {f["code"] for f in api.json()["findings"]}
    assert "server" not in api.headers  # no banner
    assert "mx-cert-expired" in page.text or "Checking" in page.text


def test_public_serve_refuses_private_addresses_and_exits_cleanly(lab: Any, lab_options_web: list[str]) -> None:
    server = start_server("--public", "--lang", "ja", *lab_options_web)
    try:
        with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
            form = client.get("/")
            api = client.get("/api/check", params={"domain": lab.domain("enforce-ok")})
    finally:
        code = server.stop()
    assert '<html lang="ja">' in form.text
    assert "公開チェッカー" in form.text
    assert {"policy-fetch-failed", "mx-unreachable"} <= {f["code"] for f in api.json()["findings"]}
    assert code == 0
    assert "listening on http://127.0.0.1:" in server.stderr
    assert "(public mode: private addresses refused, rate limited)" in server.stderr
    assert "Traceback" not in server.stderr
