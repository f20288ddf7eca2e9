"""The installed ``mtasts`` command itself."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import mtasts


def _mtasts() -> list[str]:
    script = shutil.which("mtasts", path=str(__import__("pathlib").Path(sys.executable).parent))
    if script is None:
        pytest.fail("the mtasts console script is not installed next to this Python")
    return [script]


def test_version() -> None:
    result = subprocess.run([*_mtasts(), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"mtasts {mtasts.__version__}"


def test_help_lists_commands() -> None:
    result = subprocess.run(
        [*_mtasts(), "--help"], capture_output=True, text=True, check=True, env={"COLUMNS": "120", "PATH": ""}
    )
    for command in ("lint", "generate"):
        assert command in result.stdout
