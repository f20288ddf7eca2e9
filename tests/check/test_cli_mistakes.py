"""Everyday mistakes with ``mtasts check``, through the CLI: one line, the documented exit code,
no traceback, nothing created; and ``--fail-on``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("mtasts: error: "), output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("host:abc", "'host' is not an IP address"),
        ("127.0.0.1:abc", "'abc' is not a port number"),
        ("127.0.0.1:70000", "'70000' is not a port number"),
        ("[::1]x", "is not IP[:PORT]"),
        ("dns.example", "not an IP address"),
    ],
)
def test_bad_nameserver_is_one_line_and_exit_2(runner: CliRunner, value: str, says: str) -> None:
    result = runner.invoke(app, ["check", "example.com", "--nameserver", value])
    assert result.exit_code == 2
    line = _one_line_error(result.output)
    assert says in line
    assert "--nameserver" in line


@pytest.mark.parametrize("value", ["[::1]:5353", "::1", "[2001:db8::53]", "127.0.0.1:5353"])
def test_ipv6_in_brackets_is_accepted(value: str) -> None:
    from mtasts.net.settings import parse_nameserver

    address, port = parse_nameserver(value)
    assert address in ("::1", "2001:db8::53", "127.0.0.1")
    assert port in (53, 5353)


def test_output_in_a_missing_folder(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.jsonl"
    result = runner.invoke(app, ["check", "example.com", "--output", str(target)])
    assert result.exit_code == 3
    assert "does not exist" in _one_line_error(result.output)
    assert not (tmp_path / "missing").exists()  # nothing created


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("caf\u00e9.example\nexample.org\n".encode("latin-1"), "is not UTF-8 (byte 0xe9 on line 1)"),
        (b"example.org\n\xff\xfe", "is not UTF-8 (byte 0xff on line 2)"),
    ],
)
def test_domain_file_that_is_not_utf8(runner: CliRunner, tmp_path: Path, content: bytes, says: str) -> None:
    listing = tmp_path / "domains.txt"
    listing.write_bytes(content)
    result = runner.invoke(app, ["check", "-f", str(listing), "--timeout", "0.5"])
    assert result.exit_code == 3
    assert says in _one_line_error(result.output)


def test_domain_file_missing(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "-f", str(tmp_path / "nope.txt")])
    assert result.exit_code == 3
    assert "cannot read" in _one_line_error(result.output)


def test_ca_file_not_pem_is_one_error_before_anything(runner: CliRunner, tmp_path: Path) -> None:
    """A non-PEM --ca-file used to become "Serve ... with a valid certificate" on every host."""
    bad = tmp_path / "ca.der"
    bad.write_bytes(b"\x30\x82\x01\x0a not a PEM file")
    result = runner.invoke(app, ["check", "example.com", "--ca-file", str(bad)])
    assert result.exit_code == 3
    assert "not a PEM file of CA certificates" in _one_line_error(result.output)
    result = runner.invoke(app, ["check", "example.com", "--ca-file", str(tmp_path / "absent.pem")])
    assert result.exit_code == 3
    assert "cannot read it" in _one_line_error(result.output)
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    result = runner.invoke(app, ["check", "example.com", "--ca-file", str(broken)])
    assert result.exit_code == 3
    assert "cannot be loaded" in _one_line_error(result.output)


def test_help_documents_the_exit_codes(runner: CliRunner) -> None:
    result = runner.invoke(app, ["check", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("--fail-on", "--domain-timeout", "--max-mx", "--max-addresses", "2 usage error", "3 could not run"):
        assert words in text, words


@pytest.mark.lab
@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-be-bom", "utf-8-sig"], ids=["utf-16-le-bom", "utf-16-be-bom", "utf-8-bom"]
)
def test_domain_file_with_a_byte_order_mark(
    runner: CliRunner, lab: Any, lab_options: list[str], tmp_path: Path, encoding: str
) -> None:
    text = f"# listing\n{lab.domain('enforce-ok')}\n"
    data = ("\ufeff" + text).encode("utf-16-be") if encoding == "utf-16-be-bom" else text.encode(encoding)
    listing = tmp_path / "domains.txt"
    listing.write_bytes(data)
    result = runner.invoke(app, ["check", "-f", str(listing), "--json", *lab_options])
    assert result.exit_code == 0, result.output
    assert lab.domain("enforce-ok") in result.output


@pytest.mark.lab
@pytest.mark.parametrize(
    ("scenario", "fail_on", "code"),
    [
        ("tlsrpt-missing", "warning", 1),  # warnings only
        ("tlsrpt-missing", "error", 0),
        ("mx-cert-wrong-name", "error", 1),
        ("mx-cert-wrong-name", "never", 0),
        ("testing-ok", "warning", 0),  # information only
    ],
)
def test_fail_on(runner: CliRunner, lab: Any, lab_options: list[str], scenario: str, fail_on: str, code: int) -> None:
    result = runner.invoke(app, ["check", lab.domain(scenario), "--fail-on", fail_on, *lab_options])
    assert result.exit_code == code, result.output
