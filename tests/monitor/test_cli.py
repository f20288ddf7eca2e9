"""``mtasts monitor run`` as cron runs it and ``mtasts monitor serve`` as a daemon, against lab
domains, with a real database; the everyday mistakes, each one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.exitcodes import ExitCode
from mtasts.cli.main import app
from mtasts.lab.testing import LabController
from tests.cli.test_mistakes import assert_one_line


def lab_options(world: LabController) -> list[str]:
    address, port = world.nameserver
    return [
        "--nameserver", f"{address}:{port}",
        "--ca-file", str(world.lab.ca_file),
        "--https-port", str(world.https_port),
        "--smtp-port", str(world.smtp_port),
        "--timeout", "2",
    ]  # fmt: skip


def monitor(runner: CliRunner, world: LabController, db: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["monitor", "run", "--db", str(db), *lab_options(world), *args])
    return result.exit_code, result.stdout, result.stderr


def test_run_for_cron_reports_what_changed_since_the_last_run(
    runner: CliRunner, world: LabController, tmp_path: Path
) -> None:
    db, domain = tmp_path / "monitor.sqlite3", world.domain("two-mx")
    code, out, err = monitor(runner, world, db, domain)
    assert (code, err) == (0, "")
    assert out == f"{domain}: check ok; 0 open events\n"
    code, out, _ = monitor(runner, world, db, domain)
    assert out == "nothing due: 1 domain checked within their interval (--all checks them now)\n"
    world.call(lambda: world.lab.set_records(f"_smtp._tls.{domain}", "TXT", ['"v=TLSRPTv1; rua=ftp://x"']))
    code, out, _ = monitor(runner, world, db, domain, "--all", "--exit-status")
    assert code == 1  # an event opened
    lines = out.splitlines()
    assert lines[0] == f"{domain}: check warning; 1 open event (1 new, 0 cleared)"
    assert lines[1].startswith(f"  NEW warning {domain}: finding [tlsrpt-syntax _smtp._tls.{domain}]: ")
    code, out, _ = monitor(runner, world, db, domain, "--all", "--json", "--exit-status")
    assert code == 0  # still open, nothing new
    document = json.loads(out)
    (run,) = document["runs"]
    assert (run["domain"], run["status"], run["transitions"]) == (domain, "warning", [])
    assert [e["code"] for e in run["open_events"]] == ["finding"]


def test_domains_from_a_file_with_intervals_and_a_publish_configuration(
    runner: CliRunner, world: LabController, tmp_path: Path
) -> None:
    listed, configured = world.domain("two-mx"), world.domain("enforce-ok")
    (tmp_path / "domains.txt").write_text(f"# watched\n{listed.upper()}.  15m\n{configured}\n")
    (tmp_path / "publish.toml").write_text(
        f'[[domain]]\nname = "{configured}"\nmode = "enforce"\nmx = ["mx1.{configured}"]\nmax_age = 604800\n'
    )
    code, out, err = monitor(
        runner,
        world,
        tmp_path / "m.sqlite3",
        "-f",
        str(tmp_path / "domains.txt"),
        "--config",
        str(tmp_path / "publish.toml"),
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{listed}: check ok; 0 open events", f"{configured}: check ok; 0 open events"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give at least one domain (arguments, --file or --config)"),
        (["exa mple.com"], "'exa mple.com' is not a valid domain name"),
        (["example.com", "--interval", "10s"], "--interval: '10s' is out of range: give 1m to 7d"),
        (["example.com", "--webhook", "ftp://x/y"], "--webhook: 'ftp://x/y' is not an http:// or https:// URL"),
        (
            ["example.com", "--mail-to", "a@example.com", "--smtp-user", "u", "--smtp-security", "none"],
            "--smtp-user needs TLS",
        ),
        (["example.com", "--db", "mysql://x/y"], "--db: unsupported database URL scheme"),
    ],
)
def test_mistakes_are_one_line_each(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    if "--db" not in args:
        args = [*args, "--db", str(tmp_path / "m.sqlite3")]
    result = runner.invoke(app, ["monitor", "run", *args])
    assert_one_line(result, ExitCode.USAGE, message)


def test_a_bad_line_in_the_file_names_it(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("example.com\nexample.org every hour\n")
    result = runner.invoke(app, ["monitor", "run", "-f", str(tmp_path / "d.txt"), "--db", str(tmp_path / "m.sqlite3")])
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"mtasts: error: {tmp_path / 'd.txt'}:2: write DOMAIN [INTERVAL], not 'example.org every hour'\n"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_runs_as_a_daemon_with_metrics_and_stops_on_sigterm(world: LabController, tmp_path: Path) -> None:
    port, domain = free_port(), world.domain("two-mx")
    command = [
        sys.executable, "-m", "mtasts", "monitor", "serve", domain, "--db", str(tmp_path / "m.sqlite3"),
        "--admin", f"127.0.0.1:{port}", "--interval", "1m", "--jitter", "0", *lab_options(world),
    ]  # fmt: skip
    daemon = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    try:
        page = ""
        deadline = time.monotonic() + 30
        while f'mtasts_monitor_domain_status{{domain="{domain}"}} 0' not in page:
            assert time.monotonic() < deadline, page
            assert daemon.poll() is None
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    page = answer.read().decode()
            except OSError:
                continue
        assert f'mtasts_monitor_open_events{{domain="{domain}",severity="error"}} 0' in page
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert f"mtasts: monitor metrics on http://127.0.0.1:{port}/metrics\n" in err
    assert "mtasts: monitoring 1 domain\n" in err
