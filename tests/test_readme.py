"""The README's console examples are what the real commands do.

Every ``console`` block of README.md is read as a shell session: ``$ command`` lines (with ``\\``
continuations), each followed by the output it shows. Each ``mtasts`` command (alone or at the
end of a pipe) runs in a real shell, as a user would paste it, against the lab and a scratch
home folder; its output, piped as in a script, must contain the lines the README shows, in
order, with the same shape: ``...`` stands for anything and every number for any number
(ports, ids, dates and counts differ from run to run). Commands of other tools (``dig``,
``openssl``) document how to look at the lab with ordinary tools; they are not run here. A
command that runs until Ctrl-C (``lab up``, ``report serve``) is started, its first lines are
compared, and it is interrupted. A block can opt out with ``<!-- readme-test: skip: REASON -->``
on the line before it (and ``test_skipped_blocks_say_why`` holds it to giving a reason).

The README's example values (the lab's nameserver, CA file and ports, as one run of
``mtasts lab up`` printed them) are replaced by the test lab's before a command runs.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TLSRPT_SAMPLES, require_shared

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent
FOREGROUND = ("until Ctrl-C", "runs in the foreground")

_BLOCK = re.compile(r"(?:^(?P<marker><!-- readme-test:[^\n]*-->)\n)?^```console\n(?P<body>.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Example:
    """One ``$ command`` of the README and the output lines shown under it."""

    line: int
    command: str
    expected: tuple[str, ...]

    @property
    def runs_mtasts(self) -> bool:
        last = self.command.split("|")[-1].split()
        return bool(last) and last[0] == "mtasts"

    @property
    def foreground(self) -> bool:
        return any(words in self.command for words in FOREGROUND)


def examples() -> list[Any]:
    text = README.read_text("utf-8")
    found: list[Any] = []
    for block in _BLOCK.finditer(text):
        start = text.count("\n", 0, block.start("body")) + 1
        marker = block.group("marker")
        for example in _session(block.group("body"), start):
            if not example.runs_mtasts:
                continue
            if marker is not None:  # not collected: CI counts a skip as a failure; the reason is in the README
                continue
            found.append(pytest.param(example, id=f"README.md:{example.line}"))
    return found


def _session(body: str, first_line: int) -> list[Example]:
    found: list[Example] = []
    command: list[str] = []
    expected: list[str] = []
    line_of = first_line
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("$ "):
            if command:
                found.append(Example(line_of, " ".join(command), tuple(expected)))
            line_of, command, expected = first_line + index, [], []
            part = line[2:]
            while part.endswith("\\") and index + 1 < len(lines):
                command.append(part[:-1].strip())
                index += 1
                part = lines[index]
            command.append(part.strip())
        elif command:
            expected.append(line)
        index += 1
    if command:
        found.append(Example(line_of, " ".join(command), tuple(expected)))
    return found


def shape(line: str) -> re.Pattern[str]:
    """The pattern a shown output line stands for: ``...`` is anything, a number any number."""
    parts = [re.sub(r"\\?\d+", r"\\d+", re.escape(part)) for part in line.rstrip().split("...")]
    return re.compile(".*?".join(parts))


def assert_shows(output: str, expected: tuple[str, ...], where: str) -> None:
    lines = [line.rstrip() for line in output.splitlines()]
    position = 0
    for wanted in (line for line in expected if line.strip()):
        pattern = shape(wanted)
        for offset, line in enumerate(lines[position:]):
            if pattern.fullmatch(line):
                position += offset + 1
                break
        else:
            raise AssertionError(f"{where}: the README shows\n  {wanted}\nbut the command printed:\n{output}")


@pytest.fixture(scope="module")
def world(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A scratch home (with a Maildir of reports and a certificate for ``report serve``), its
    environment, and the README's example values mapped to the test lab's."""
    require_shared(TLSRPT_SAMPLES)
    import trustme

    home = tmp_path_factory.mktemp("readme-home")
    maildir = home / "Maildir" / ".tlsrpt"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    for index, sample in enumerate(sorted(TLSRPT_SAMPLES.glob("*.json"))[:3]):
        shutil.copy(sample, maildir / "new" / f"{index}.report")
    ca = trustme.CA()
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(home / "both.pem"))
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(home / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(home / "key.pem"))
    info = lab.info()
    address, port = lab.nameserver
    values = {
        "127.188.0.1:49399": f"{address}:{port}",
        "/tmp/mtasts-lab-.../ca.pem": info["ca_file"],
        "--https-port 34143": f"--https-port {lab.https_port}",
        "--smtp-port 38175": f"--smtp-port {lab.smtp_port}",
        "--port 8443": "--port 0",  # any free port: the test must not depend on 8443 being free
        ".mtasts.test": f".{info['zone']}",
    }
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "MTASTS_DB": str(home / "reports.sqlite3"),
        "LANG": "C.UTF-8",
    }
    return {"home": home, "env": env, "values": values}


@pytest.mark.lab
@pytest.mark.parametrize("example", examples())
def test_readme_example(example: Example, world: dict[str, Any]) -> None:
    command = example.command
    for shown, real in world["values"].items():
        command = command.replace(shown, real)
    where = f"README.md:{example.line}: $ {example.command}"
    if example.foreground:
        output = _first_lines(command, world, len([line for line in example.expected if line.strip()]))
        assert_shows(output, example.expected, where)
        return
    result = subprocess.run(
        ["/bin/bash", "-o", "pipefail", "-c", command],
        cwd=world["home"],
        env=world["env"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stdout, f"{where}\n{result.stdout}"
    assert result.returncode in (0, 1), f"{where}: exit status {result.returncode}\n{result.stdout}"
    assert_shows(result.stdout, example.expected, where)


def _first_lines(command: str, world: dict[str, Any], wanted: int) -> str:
    """The first output of a command that runs until Ctrl-C, then Ctrl-C (SIGINT)."""
    process = subprocess.Popen(
        ["/bin/bash", "-c", f"exec {command}"],
        cwd=world["home"],
        env=world["env"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if len([line for line in lines if line.strip()]) >= max(wanted, 1):
                break
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=5)
        process.stdout.close()
    return "".join(lines)


def test_skipped_blocks_say_why() -> None:
    text = README.read_text("utf-8")
    markers = re.findall(r"^<!-- readme-test:(.*)-->$", text, re.M)
    for marker in markers:
        assert marker.strip().startswith("skip:"), marker
        assert marker.strip().removeprefix("skip:").strip(), "a skipped README block must say why"
    assert len(examples()) >= 8  # most examples run: a marker on every block would make this test empty
