"""``mtasts resolver cache ...`` on a real SQLite cache, and ``serve --overrides`` with
``query --listen`` against the running daemon (a subprocess: signals and a real socket matter).

The cache file is written by the store itself (the same code a daemon uses), so the commands
read exactly what a daemon left behind. No lab: overrides and cached answers need no network.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from typer.testing import CliRunner

from mtasts.core.policy import parse_policy
from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.store import SqliteStore
from tests.commands import MTASTS

BODY = b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 86400\n"
TESTING = b"version: STSv1\nmode: testing\nmx: mx.testing.example\nmax_age: 86400\n"


def fill(path: Path) -> None:
    now = time.time()

    def entry(domain: str, body: bytes) -> CacheEntry:
        return CacheEntry(
            domain,
            parse_policy(body),
            "id1",
            body,
            fetched_at=now,
            expires_at=now + 86400,
            txt_next_check=now + 300,
        )

    async def put() -> None:
        store = SqliteStore(path)
        await store.put(entry("example.com", BODY))
        await store.put(entry("testing.example", TESTING))
        await store.put(CacheEntry("nopolicy.example", negative_until=now + 300))
        await store.close()

    asyncio.run(put())


def cli(runner: CliRunner, *args: str) -> tuple[int, str]:
    from mtasts.cli.main import app

    result = runner.invoke(app, ["resolver", *args])
    return result.exit_code, result.output


def test_cache_list_show_export_flush(runner: CliRunner, tmp_path: Path) -> None:
    db = str(tmp_path / "cache.sqlite3")
    fill(Path(db))
    code, out = cli(runner, "cache", "list", "--db", db)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["domain", "state", "mode", "id", "expires"]
    assert lines[1].split()[:4] == ["example.com", "policy", "enforce", "id1"]
    assert lines[2].split()[:4] == ["nopolicy.example", "no-policy", "-", "-"]
    assert lines[-1] == "3 cached domains"

    code, out = cli(runner, "cache", "show", "EXAMPLE.com.", "--db", db, "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["domain"], shown["state"], shown["mode"], shown["mx"]) == (
        "example.com",
        "policy",
        "enforce",
        ["mx1.example.com"],
    )

    code, out = cli(runner, "cache", "export", "--postfix", "--db", db)
    assert code == 0, out
    assert out == "example.com\tsecure match=mx1.example.com servername=hostname\n"  # testing, none: NOTFOUND
    code, out = cli(
        runner, "cache", "export", "--postfix", "--strict-testing", "--profile", "postfix-legacy", "--db", db
    )
    assert out.splitlines()[1] == "testing.example\tsecure match=mx.testing.example"

    code, out = cli(runner, "cache", "flush", "example.com", "--db", db)
    assert (code, out.splitlines()) == (
        0,
        [
            f"flushed 1 cached domain from the store ({db})",
            "daemon: not asked (no --admin, and no admin address in the configuration): a running daemon keeps "
            "its copy in memory until it expires or the daemon restarts",
        ],
    )
    code, out = cli(runner, "cache", "show", "example.com", "--db", db)
    assert (code, out.strip()) == (1, "mtasts: error: example.com is not cached")
    code, out = cli(runner, "cache", "flush", "--db", db)
    assert (code, out.splitlines()[0]) == (0, f"flushed 2 cached domains from the store ({db})")
    assert cli(runner, "cache", "list", "--db", db)[1].splitlines()[-1] == "0 cached domains"


def test_cache_commands_say_what_is_wrong(runner: CliRunner, tmp_path: Path) -> None:
    code, out = cli(runner, "cache", "list", "--db", str(tmp_path / "none.sqlite3"))
    assert code == 3
    assert "mtasts: error: --db:" in out
    assert "does not exist" in out
    code, out = cli(runner, "cache", "export", "--db", str(tmp_path / "none.sqlite3"))
    assert code == 2
    assert "mtasts: error: export: choose the format: --postfix" in out
    code, out = cli(runner, "cache", "list", "--redis", "redis://127.0.0.1:9/0")
    assert code == 3
    assert out.startswith("mtasts: error: Redis redis://127.0.0.1:9/0:")
    assert "Traceback" not in out


def test_serve_with_overrides_reloads_on_sighup_and_query_asks_it(runner: CliRunner, tmp_path: Path) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    overrides = tmp_path / "overrides.toml"
    overrides.write_text(
        f'[[override]]\ndomain = "example.com"\naction = "force-enforce"\nmx = ["mx9.example.com"]\n'
        f'expires = {later}\nreason = "ticket 1"\n'
    )
    process = subprocess.Popen(
        [
            *MTASTS,
            "resolver",
            "serve",
            "--listen",
            "inet:127.0.0.1:0",
            "--memory-only",
            "--overrides",
            str(overrides),
            "--nameserver",
            "127.0.0.1:9",
            "--timeout",
            "0.5",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
    )
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        found = re.search(r"listening on (inet:127\.0\.0\.1:\d+)", line)
        assert found, line
        code, out = cli(runner, "query", "example.com", "--listen", found[1], "--json")
        assert code == 0, out
        assert json.loads(out) == {
            "domain": "example.com",
            "profile": "postfix",
            "answer": "OK secure match=mx9.example.com servername=hostname",
            "source": "daemon",
            "policy": None,
        }
        overrides.write_text(overrides.read_text().replace('"force-enforce"\nmx = ["mx9.example.com"]', '"force-none"'))
        process.send_signal(signal.SIGHUP)
        assert "overrides reloaded" in process.stderr.readline()
        code, out = cli(runner, "query", "example.com", "--listen", found[1])
        assert (code, out.splitlines()[0]) == (0, "example.com: NOTFOUND")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        process.stderr.close()
    assert process.returncode == 0


def test_query_honours_an_overrides_file_without_network(runner: CliRunner, tmp_path: Path) -> None:
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    overrides = tmp_path / "overrides.toml"
    overrides.write_text(
        f'[[override]]\ndomain = "example.com"\naction = "force-none"\nexpires = {later}\nreason = "r"\n'
    )
    code, out = cli(
        runner, "query", "example.com", "--overrides", str(overrides), "--nameserver", "127.0.0.1:9", "--json"
    )
    assert code == 0, out
    document = json.loads(out)
    assert (document["answer"], document["source"]) == ("NOTFOUND", "override")
    assert document["override"] == {"action": "force-none", "expires": later, "reason": "r", "mx": None}
    overrides.write_text("[[override]]\n")
    code, out = cli(runner, "query", "example.com", "--overrides", str(overrides))
    assert code == 2
    assert "mtasts: error: --overrides:" in out
    assert "'domain' is required" in out


def test_query_listen_with_no_daemon_is_one_line(runner: CliRunner) -> None:
    code, out = cli(runner, "query", "example.com", "--listen", "inet:127.0.0.1:9")
    assert code == 3
    assert out.startswith("mtasts: error: cannot ask the daemon on inet:127.0.0.1:9:")


def _daemon_config(tmp_path: Path, port: int) -> Path:
    """A configuration file as an operator writes it: where the daemon listens, an override
    (an answer that needs no network), no DNS at all (a direct lookup fails open)."""
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    (tmp_path / "overrides.toml").write_text(
        f'[[override]]\ndomain = "example.com"\naction = "force-enforce"\nmx = ["mx9.example.com"]\n'
        f'expires = {later}\nreason = "ticket 2"\n'
    )
    config = tmp_path / "xdg" / "mtasts" / "resolver.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'listen = ["inet:127.0.0.1:{port}"]\noverrides = "{tmp_path / "overrides.toml"}"\n'
        '[network]\nnameserver = "127.0.0.1:9"\ntimeout = 0.5\n[store]\nurl = "memory"\n'
    )
    return config


def test_query_asks_the_daemon_the_configuration_file_names(runner: CliRunner, tmp_path: Path) -> None:
    from mtasts.cli.main import app as main_app
    from tests.resolver.helpers import ServeProcess
    from tests.resolver.postfix import free_port

    port = free_port()
    config = _daemon_config(tmp_path, port)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path)}
    with ServeProcess([], env=env) as daemon:
        daemon.wait_line(rf"listening on inet:127\.0\.0\.1:{port} .*; configuration: {re.escape(str(config))}; pid ")
        # the default configuration file, as the daemon found it
        result = runner.invoke(main_app, ["resolver", "query", "example.com"], env=env)
        assert (result.exit_code, result.output) == (
            0,
            "example.com: OK secure match=mx9.example.com servername=hostname\n"
            "  profile     postfix\n"
            f"  source      daemon on inet:127.0.0.1:{port}\n",
        )
        code, out = cli(runner, "query", "example.com", "--config", str(config), "--json")
        assert (code, json.loads(out)["answer"], json.loads(out)["source"]) == (
            0,
            "OK secure match=mx9.example.com servername=hostname",
            "daemon",
        )
        # --direct resolves here, without the daemon's overrides: no DNS, so fail-open
        code, out = cli(runner, "query", "example.com", "--direct", "--nameserver", "127.0.0.1:9", "--timeout", "0.5")
        assert code == 1, out
        assert out.splitlines()[:3] == ["example.com: NOTFOUND", "  profile     postfix", "  source      fail-open"]
        assert daemon.stop() == 0


def test_query_with_no_daemon_running_says_so_in_one_line(runner: CliRunner, tmp_path: Path) -> None:
    from tests.resolver.postfix import free_port

    port = free_port()
    config = _daemon_config(tmp_path, port)
    code, out = cli(runner, "query", "example.com", "--config", str(config))
    assert (code, out) == (
        3,
        f"mtasts: error: no daemon is running on the listen address of {config} (inet:127.0.0.1:{port}: "
        "Connection refused): start mtasts resolver serve, or resolve here with --direct\n",
    )
    code, out = cli(runner, "query", "example.com", "--listen", f"inet:127.0.0.1:{port}", "--direct")
    assert (code, out) == (2, "mtasts: error: --direct: resolves here, not with --listen (choose one)\n")


def test_serve_says_when_it_read_no_configuration_file(tmp_path: Path) -> None:
    from tests.resolver.helpers import ServeProcess

    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path)}
    with ServeProcess(["--listen", "inet:127.0.0.1:0", "--memory-only"], env=env) as daemon:
        missing = re.escape(str(tmp_path / "xdg" / "mtasts" / "resolver.toml"))
        daemon.wait_line(
            rf"\(cache: memory only\); configuration: none \({missing} does not exist: defaults and the "
            r"command line\); pid \d+$"
        )
        assert daemon.stop() == 0
