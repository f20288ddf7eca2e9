"""``mtasts resolver query`` and ``serve`` as a user runs them, against the lab."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mtasts.cli.resolver import app, default_db_path
from tests.commands import MTASTS
from tests.resolver.helpers import REDIS_URL, SocketmapClient
from tests.resolver.postfix import free_port

pytestmark = pytest.mark.lab


def test_query_json_for_an_enforce_domain(runner: CliRunner, lab: Any, resolver_options: list[str]) -> None:
    domain = lab.domain("enforce-ok")
    result = runner.invoke(app, ["query", domain.upper(), "--json", *resolver_options])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["domain"] == domain
    assert document["answer"] == f"OK secure match=mx1.{domain} servername=hostname"
    assert document["source"] == "fetched"
    assert document["policy"] == {
        "mode": "enforce",
        "max_age": document["policy"]["max_age"],
        "mx": [f"mx1.{domain}"],
        "id": document["id"],
    }
    assert document["id"]
    assert document["expires"].endswith("Z")


def test_query_tlsrpt_profile_human_output(runner: CliRunner, lab: Any, resolver_options: list[str]) -> None:
    domain = lab.domain("enforce-ok")
    result = runner.invoke(app, ["query", domain, "--profile", "postfix-tlsrpt", *resolver_options])
    assert result.exit_code == 0, result.output
    first, *rest = result.output.splitlines()
    assert first.startswith(f"{domain}: OK secure match=mx1.{domain} servername=hostname policy_type=sts")
    assert "  source      fetched" in rest


@pytest.mark.parametrize(("scenario", "reason"), [("testing-ok", "mode-testing"), ("no-sts-record", None)])
def test_query_notfound_says_why(
    runner: CliRunner, lab: Any, resolver_options: list[str], scenario: str, reason: str | None
) -> None:
    result = runner.invoke(app, ["query", lab.domain(scenario), "--json", *resolver_options])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["answer"] == "NOTFOUND"
    assert document["reason"] == reason
    if reason is None:
        assert document["policy"] is None
        assert document["source"] == "negative"


def test_query_of_a_non_domain_key_needs_no_network(runner: CliRunner) -> None:
    result = runner.invoke(app, ["query", "[mx.example.com]:25", "--json", "--nameserver", "127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["source"] == "not-a-domain"


def test_query_with_dns_down_is_fail_open_exit_1(runner: CliRunner, lab: Any) -> None:
    result = runner.invoke(
        app, ["query", lab.domain("enforce-ok"), "--json", "--nameserver", "127.0.0.1:9", "--timeout", "0.5"]
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    assert document["source"] == "fail-open"
    assert document["answer"] == "NOTFOUND"
    assert document["last_error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "example.com", "--profile", "exim"], "--profile: 'exim' is not one of postfix"),
        (["query", "example.com", "--nameserver", "dns.example"], "--nameserver:"),
        (["serve", "--listen", "tcp:1.2.3.4:5"], "--listen: 'tcp:1.2.3.4:5' is not inet:HOST:PORT or unix:PATH"),
        (["serve", "--listen", "inet:localhost:8461"], "--listen: 'localhost' is not an IP address"),
        (["serve", "--unix-mode", "rw"], "--unix-mode: 'rw' is not an octal mode"),
        (
            ["serve", "--memory-only", "--redis", "redis://127.0.0.1"],
            "--redis: choose one of --store, --db, --redis and --memory-only",
        ),
        (["serve", "--store", "mysql://db"], "--store: 'mysql://db': not memory, sqlite:PATH, redis://"),
        (["serve", "--admin", "localhost:1"], "--admin: 'localhost' is not an IP address"),
        (["cache", "list", "--store", "memory", "--db", "x"], "--db: choose one of --store, --db and --redis"),
    ],
)
def test_usage_errors_are_one_line(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"mtasts: error: {message}" in result.output
    assert "Traceback" not in result.output


def test_default_db_is_in_the_user_data_directory() -> None:
    assert default_db_path({"XDG_DATA_HOME": "/data"}) == Path("/data/mtasts/resolver-cache.sqlite3")


async def test_serve_answers_postfix_and_stops_on_sigterm(
    lab: Any, resolver_options: list[str], tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from mtasts.cli.resolver import app; app()",
        "serve",
        "--listen",
        "inet:127.0.0.1:0",
        "--listen",
        f"unix:{tmp_path / 'sock'}",
        "--db",
        str(tmp_path / "cache.sqlite3"),
        *resolver_options,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
    )
    assert process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        found = re.search(r"listening on inet:127\.0\.0\.1:(\d+), unix:(\S+) \(cache: (\S+), 0 cached domains\)", line)
        assert found, line
        client = await SocketmapClient.connect("127.0.0.1", int(found[1]))
        domain = lab.domain("enforce-ok")
        assert await client.query("postfix", domain) == f"OK secure match=mx1.{domain} servername=hostname"
        await client.close()
        unix = await SocketmapClient.connect_unix(Path(found[2]))
        assert await unix.query("postfix", domain) == f"OK secure match=mx1.{domain} servername=hostname"
        await unix.close()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
    assert process.returncode == 0
    assert (tmp_path / "cache.sqlite3").is_file()


async def test_serve_with_redis_shares_what_it_fetched(lab: Any, resolver_options: list[str]) -> None:
    redis = pytest.importorskip("redis.asyncio", reason="the Redis store tests need redis-py (pip install redis)")
    prefix = f"mtasts-test:{uuid.uuid4().hex}:"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from mtasts.cli.resolver import app; app()",
        "serve",
        "--listen",
        "inet:127.0.0.1:0",
        "--redis",
        REDIS_URL,
        "--redis-prefix",
        prefix,
        *resolver_options,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    client = redis.Redis.from_url(REDIS_URL)
    domain = lab.domain("enforce-ok")
    try:
        line = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        found = re.search(r"listening on inet:127\.0\.0\.1:(\d+) \(cache: Redis (\S+), prefix (\S+), 0 cached", line)
        assert found, line
        assert found[3] == prefix
        socketmap = await SocketmapClient.connect("127.0.0.1", int(found[1]))
        assert await socketmap.query("postfix", domain) == f"OK secure match=mx1.{domain} servername=hostname"
        await socketmap.close()
        # what another daemon of the fleet would find: the entry, expiring with the policy (max_age 604800)
        assert 604_000 < await client.ttl(prefix + domain) <= 604_800
        assert json.loads(await client.get(prefix + domain))["policy_id"] == "20261129T081500"
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    assert process.returncode == 0


# --- systemd socket activation --------------------------------------------------------------

needs_socket_activate = pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None,
    reason="socket activation tests need systemd-socket-activate (the systemd package)",
)


@needs_socket_activate
def test_inherited_sockets_are_taken_only_by_the_process_they_were_passed_to() -> None:
    """systemd-socket-activate passes fd 3 with LISTEN_FDS=1 and LISTEN_PID set, as systemd does."""
    port = free_port()
    probe = (
        "import os; from mtasts.cli.resolver.serve import inherited_sockets as got; "
        "print([s.getsockname() for s in got(os.environ, os.getpid())], got(os.environ, os.getpid() + 1))"
    )
    process = subprocess.Popen(
        ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", sys.executable, "-c", probe],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    assert process.stderr.readline() == f"Listening on 127.0.0.1:{port} as 3.\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10):  # the launch trigger, as systemd's
        pass
    out, err = process.communicate(timeout=30)
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    assert done.stdout.strip() == f"[('127.0.0.1', {port})] []", done.stderr


@needs_socket_activate
async def test_serve_under_socket_activation(tmp_path: Path) -> None:
    """The daemon serves the socket systemd passed, not the configured address (which is left
    unbound)."""
    port, unused = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        "systemd-socket-activate",
        "-l",
        f"127.0.0.1:{port}",
        *MTASTS,
        "resolver",
        "serve",
        "--listen",
        f"inet:127.0.0.1:{unused}",
        "--memory-only",
        "--nameserver",
        "127.0.0.1:9",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
    )
    assert process.stderr is not None
    try:
        banner = (await asyncio.wait_for(process.stderr.readline(), 20)).decode()
        assert banner == f"Listening on 127.0.0.1:{port} as 3.\n"
        # systemd-socket-activate execs the daemon on the first connection, as systemd does
        client = await SocketmapClient.connect("127.0.0.1", port)
        assert await client.query("postfix", "[mx.example.com]:25") == "NOTFOUND "
        await client.close()
        with pytest.raises(ConnectionRefusedError):
            await SocketmapClient.connect("127.0.0.1", unused)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)
