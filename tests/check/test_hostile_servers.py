"""Whoever runs a checked domain writes its servers' replies, and ``mtasts check`` quotes them in
its findings: an SMTP greeting or STARTTLS reply carrying an ESC sequence or a BiDi override
must reach the terminal as text, the character written as its escape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.main import app
from mtasts.lab.world import check_options
from tests.servers import serving_in_thread

pytestmark = pytest.mark.lab

GREETING = b"554 mx\x1b]8;;http://evil.example/\x1b\\ go away\x1b[2J \xe2\x80\xaeevil\r\n"


@contextmanager
def greeting_server(address: str, greeting: bytes) -> Iterator[int]:
    """An SMTP server on ``address`` (a free port) that greets every client with ``greeting``
    and hangs up; yields its port."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        writer.close()

    with serving_in_thread(address, greet) as port:
        yield port


def options_with_smtp_port(lab: Any, port: int) -> list[str]:
    options = check_options(lab.info(), timeout=2)
    options[options.index("--smtp-port") + 1] = str(port)
    return options


def test_a_hostile_smtp_greeting_is_shown_as_text(runner: CliRunner, lab: Any) -> None:
    domain = lab.domain("enforce-ok")
    with greeting_server(lab.address(f"mx1.{domain}"), GREETING) as port:
        result = runner.invoke(app, ["check", domain, *options_with_smtp_port(lab, port)])
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.stdout, repr(result.stdout)
    assert "\u202e" not in result.stdout
    assert "554 mx\\x1b]8;;http://evil.example/\\x1b\\ go away\\x1b[2J \\u202eevil" in result.stdout


@pytest.mark.parametrize(
    "greeting",
    [
        b"554 [link=http://evil.example/]click[/link] [red]red[/red]\r\n",  # a hyperlink, a colour
        b"554 [/bold] closing\r\n",  # a closing tag nothing opened: Rich raised, and nothing was printed
    ],
)
def test_a_greeting_with_rich_markup_is_shown_as_written(runner: CliRunner, lab: Any, greeting: bytes) -> None:
    domain = lab.domain("enforce-ok")
    with greeting_server(lab.address(f"mx1.{domain}"), greeting) as port:
        result = runner.invoke(app, ["check", domain, *options_with_smtp_port(lab, port)])
    assert result.exit_code == 1, result.output
    said = greeting.decode().rstrip("\r\n")
    facts = [line for line in result.stdout.splitlines() if line.startswith(f"  MX mx1.{domain}")]
    assert facts == [f"  MX mx1.{domain}  {lab.address(f'mx1.{domain}')}: the server greeted with {said}"]
