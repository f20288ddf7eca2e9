"""``mtasts publish serve`` and ``reload`` as a user runs them: bad configurations refused with
one line per problem and the exit-code scheme; a real process reloaded by SIGHUP and by
``mtasts publish reload`` while clients hammer it, dropping no request."""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtasts.cli.publish import app
from mtasts.publish.actions import config_stopper, reload_via_admin, write_config_file
from mtasts.publish.apply import StepFailed
from mtasts.publish.config import ListenAddress
from tests.publish.hosting import Client, Domains, canonical_body, config_text, fetch, make_domains

COMMAND = [sys.executable, "-c", "from mtasts.cli.publish import app; app()"]
_PATIENCE = 30.0
_SERVING_RE = re.compile(
    r"serving \d+ domains? on https://127\.0\.0\.1:(\d+), https://\[::1\]:\d+; admin http://127\.0\.0\.1:(\d+)"
)


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> Domains:
    return make_domains(tmp_path_factory.mktemp("certs"), 20)


def test_a_bad_configuration_is_one_line_per_problem_and_exit_2(
    runner: CliRunner, domains: Domains, tmp_path: Path
) -> None:
    path = tmp_path / "publish.toml"
    text = config_text(domains, domains.names[:2]).replace('mode = "testing"', 'mode = "enforced"', 1)
    path.write_text(text.replace("max_age = 86400", "max_age = 99999999999", 1))
    result = runner.invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines == [
        f'mtasts: error: {path}:8: domain[1].mode: \'enforced\' is not a mode; use "testing", "enforce" or "none"',
        f"mtasts: error: {path}:10: domain[1].max_age: 99999999999 is out of range; give 0 to 31557600 seconds "
        "(RFC 8461 §3.2)",
    ]


def test_from_dns_is_refused_at_serve_time(runner: CliRunner, domains: Domains, tmp_path: Path) -> None:
    path = tmp_path / "publish.toml"
    name = domains.names[0]
    path.write_text(config_text(domains, [name]).replace(f'["mx1.{name}", "*.mx.{name}"]', '"from-dns"'))
    result = runner.invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f'mtasts: error: {path}:6: domain[1].mx: {name}: mx = "from-dns" is not resolved')
    assert "`mtasts publish plan`, not yet available" in line


@pytest.mark.parametrize("what", ["config", "cert"])
def test_a_file_that_cannot_be_read_is_exit_3(runner: CliRunner, domains: Domains, tmp_path: Path, what: str) -> None:
    path = tmp_path / "publish.toml"
    if what == "cert":
        name = domains.names[0]
        path.write_text(config_text(domains, [name]).replace(str(domains.cert(name)), str(tmp_path / "gone.pem")))
    result = runner.invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 3
    [line] = result.stderr.splitlines()
    assert line.startswith("mtasts: error: ")
    assert ("cannot read the configuration" if what == "config" else f"cannot read {tmp_path / 'gone.pem'}") in line


def test_a_bad_listen_option_is_a_usage_error(runner: CliRunner, domains: Domains, tmp_path: Path) -> None:
    path = tmp_path / "publish.toml"
    path.write_text(config_text(domains, domains.names[:1]))
    result = runner.invoke(app, ["serve", "--config", str(path), "--listen", "::1:443"])
    assert result.exit_code == 2
    assert result.stderr.startswith("mtasts: error: --listen ::1:443: ")


def _acme_section(tmp_path: Path, listen: str = "127.0.0.1:0") -> str:
    """An [acme] section whose CA is not reachable (nothing here needs it to answer)."""
    return f'\n[acme]\ndirectory = "https://127.0.0.1:9/dir"\nstorage = "{tmp_path / "acme"}"\nlisten = ["{listen}"]\n'


@pytest.fixture
def taken() -> Iterator[str]:
    """A loopback address another program listens on (SO_REUSEADDR as the host's own sockets)."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield f"127.0.0.1:{other.getsockname()[1]}"


@pytest.mark.parametrize(
    ("listener", "setting"),
    [
        ("policy", "[server] listen"),
        ("policy", "--listen"),
        ("admin", "[server] admin"),
        ("admin", "--admin"),
        ("acme", "[acme] listen"),
    ],
)
def test_an_address_in_use_is_named_with_its_listener(
    runner: CliRunner, domains: Domains, tmp_path: Path, taken: str, listener: str, setting: str
) -> None:
    """Only the address that is taken is named, with the listener it is for and the setting
    that gives it; the free listeners (port 0, or the same port on another address) are not
    blamed. Exit 3, one line."""
    path = tmp_path / "publish.toml"
    args = ["serve", "--config", str(path)]
    listen, admin, extra = ["127.0.0.1:0"], "127.0.0.1:0", ""
    if setting == "[server] listen":  # the same port on [::1] is free: only 127.0.0.1's is named
        listen = [f"[::1]:{taken.rsplit(':', 1)[1]}", taken]
    elif setting == "--listen":
        args += ["--listen", "127.0.0.1:0", "--listen", taken]
    elif setting == "[server] admin":
        admin = taken
    elif setting == "--admin":
        args += ["--admin", taken]
    else:
        extra = _acme_section(tmp_path, taken)
    path.write_text(config_text(domains, domains.names[:1], listen=listen, admin=admin, extra=extra))
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    what = {"policy": "policy listener", "admin": "admin listener", "acme": "ACME HTTP-01 challenge listener"}[listener]
    off = ' or "off"' if listener == "admin" else ""
    assert result.stderr.splitlines() == [
        f"mtasts: error: cannot listen on {taken} (the {what}, {setting}): Address already in use; "
        f"another program listens there: stop it, or give {setting} another address{off}"
    ]


def test_reload_without_a_running_host_is_exit_3(runner: CliRunner) -> None:
    result = runner.invoke(app, ["reload", "--admin", "127.0.0.1:9"])
    assert result.exit_code == 3
    assert result.stderr.startswith("mtasts: error: cannot reach the admin listener at http://127.0.0.1:9: ")


class Served:
    """A running ``mtasts publish serve`` process; its stderr drained into ``lines``."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [*COMMAND, "serve", "--config", str(config)], stderr=subprocess.PIPE, text=True, env=_env()
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.port = self.admin = 0
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        if not self._ready.wait(_PATIENCE):
            self.process.kill()
            raise AssertionError("serve did not start: " + "\n".join(self.lines))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if match := _SERVING_RE.search(line):
                self.port, self.admin = int(match.group(1)), int(match.group(2))
                self._ready.set()
        self._ready.set()

    def close(self) -> None:
        self._reader.join(_PATIENCE)
        if self.process.stderr is not None:
            self.process.stderr.close()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(_PATIENCE)
        self._reader.join(_PATIENCE)
        return code


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


@contextmanager
def serving(config: Path) -> Iterator[Served]:
    """A :class:`Served` process, killed if the test left it running, its stderr reader ended."""
    process = Served(config)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()
        process.close()


@pytest.fixture
def served(domains: Domains, tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    path = tmp_path / "publish.toml"
    path.write_text(config_text(domains, server_extra="requests_per_second = 100000\nburst = 100000"))
    with serving(path) as process:
        yield process, path


def _reload(admin: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 (the caller checks the exit status: it is the point)
        [*COMMAND, "reload", "--admin", f"127.0.0.1:{admin}"],
        capture_output=True,
        text=True,
        timeout=_PATIENCE,
        env=_env(),
    )


def test_sighup_and_reload_swap_bodies_under_load_without_dropping_a_request(
    served: tuple[Served, Path], domains: Domains
) -> None:
    process, path = served
    names = domains.names
    extra = "requests_per_second = 100000\nburst = 100000"
    context = domains.client_context()
    stop = threading.Event()
    failures: list[str] = []
    seen: dict[str, set[bytes]] = {name: set() for name in names}

    def hammer(worker: int) -> int:
        count = 0
        while not stop.is_set():
            name = names[(worker + count) % len(names)]
            try:
                with Client(process.port, f"mta-sts.{name}", context) as client:
                    for _ in range(4):
                        status, _, body = client.request()
                        count += 1
                        if status != 200:
                            failures.append(f"{name}: HTTP {status}")
                        seen[name].add(body)
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{name}: {exc!r}")
        return count

    def newest(generation: int) -> bool:
        return fetch(process.port, f"mta-sts.{names[0]}", context)[2] == canonical_body(names[0], generation)

    with ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(hammer, i) for i in range(4)]
        try:
            path.write_text(config_text(domains, generation=2, server_extra=extra))
            process.process.send_signal(signal.SIGHUP)
            deadline = threading.Event()
            for _ in range(int(_PATIENCE * 20)):
                if newest(2):
                    break
                deadline.wait(0.05)
            assert newest(2)
            path.write_text(config_text(domains, generation=3, server_extra=extra))
            reloaded = _reload(process.admin)
            assert (reloaded.returncode, reloaded.stdout) == (0, "reloaded: generation 3, 20 domains served\n")
            assert newest(3)
            # a configuration with a problem: refused, generation 3 still served
            path.write_text(
                config_text(domains, generation=4, server_extra=extra).replace("max_age = ", "max_age = -", 1)
            )
            refused = _reload(process.admin)
            assert refused.returncode == 2
            assert refused.stderr.splitlines()[-1] == "mtasts: error: reload refused: still serving generation 3"
            assert "domain[1].max_age: -" in refused.stderr
            assert newest(3)
        finally:
            stop.set()
            counts = [worker.result() for worker in workers]
    assert failures == []
    assert sum(counts) > 50
    for name in names:
        assert seen[name] <= {canonical_body(name, g) for g in (1, 2, 3)}, name
    assert process.stop() == 0
    access = "\n".join(line for line in process.lines if "mtasts.publish.access" in line)
    host = re.escape(f"mta-sts.{names[0]}")
    assert re.search(rf'127\.0\.0\.1 {host} {host}:\d+ "GET /\.well-known/mta-sts\.txt" 200 \d+$', access, re.MULTILINE)
    assert any("reloaded: generation 2" in line for line in process.lines)
    assert any("reload refused, still serving generation 3" in line for line in process.lines)


def test_with_acme_and_no_domain_serve_starts_and_a_reload_adds_one(domains: Domains, tmp_path: Path) -> None:
    """[acme] and no [[domain]] yet: not a demand for cert and key but a host that starts,
    says it serves nothing, and serves a domain a reload adds."""
    path = tmp_path / "publish.toml"
    path.write_text(config_text(domains, [], extra=_acme_section(tmp_path)))
    with serving(path) as process:
        assert process.lines[0] == (
            "mtasts: warning: no [[domain]] is configured: nothing is served until a reload adds one "
            "(its certificate then comes from ACME)"
        )
        assert any("serving 0 domains on https://127.0.0.1:" in line for line in process.lines)
        assert not any("error" in line for line in process.lines), process.lines
        health = http.client.HTTPConnection("127.0.0.1", process.admin, timeout=_PATIENCE)
        health.request("GET", "/healthz")
        assert health.getresponse().read() == b"ok: generation 1, 0 served\n"
        health.close()

        name = domains.names[0]
        path.write_text(config_text(domains, [name], extra=_acme_section(tmp_path)))
        reloaded = _reload(process.admin)
        assert (reloaded.returncode, reloaded.stdout) == (0, "reloaded: generation 2, 1 domain served\n")
        assert fetch(process.port, f"mta-sts.{name}", domains.client_context())[2] == canonical_body(name)
        assert process.stop() == 0


@pytest.mark.parametrize("acme", [True, False], ids=["acme", "no-acme"])
async def test_retiring_the_last_domain_reloads_only_a_host_that_can_run_without_one(
    domains: Domains, tmp_path: Path, acme: bool
) -> None:
    """retire's stop-serving step on the last configured domain: with [acme] the host reloads
    into a configuration without domains and the name serves nothing any more; without it the
    host could not reload, so the step says to stop the service and leaves it serving."""
    path = tmp_path / "publish.toml"
    name = domains.names[0]
    extra = _acme_section(tmp_path) if acme else ""
    path.write_text(config_text(domains, [name], extra=extra))
    context = domains.client_context()

    async def reload() -> str:
        return await asyncio.to_thread(reload_via_admin, ListenAddress("127.0.0.1", process.admin), _PATIENCE)

    async def sender_fetch(host_of: str) -> bytes:  # as a sender fetches: verified TLS, 200 only
        try:
            status, _, body = await asyncio.to_thread(fetch, process.port, f"mta-sts.{host_of}", context)
        except OSError as exc:  # a certificate for another name, a closed connection
            raise StepFailed(str(exc)) from None
        if status != 200:
            raise StepFailed(f"HTTP {status}")
        return body

    with serving(path) as process:
        stop_serving = config_stopper(path, datetime.now(UTC), write_config_file)(reload, sender_fetch)
        if acme:
            said = await stop_serving(name)
            assert said == (
                f"mta-sts.{name} serves no policy any more (reloaded the policy host: generation 2, 0 domains "
                f"served; its entry in {path} is commented out)"
            )
            assert f'[[domain]]\nname = "{name}"' not in path.read_text()
        else:
            with pytest.raises(StepFailed, match="has no other domain, so the host cannot reload without it"):
                await stop_serving(name)
            assert (await sender_fetch(name)) == canonical_body(name)  # still served: nothing reloaded
        assert process.stop() == 0


def test_without_acme_no_domain_is_refused(runner: CliRunner, domains: Domains, tmp_path: Path) -> None:
    path = tmp_path / "publish.toml"
    path.write_text(config_text(domains, []))
    result = runner.invoke(app, ["serve", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"mtasts: error: {path}: domain: no domain can be served (none is configured); "
        "add [[domain]] entries with name, mode, mx, max_age, cert and key"
    ]
