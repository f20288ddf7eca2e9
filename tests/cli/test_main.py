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


def test_a_store_error_a_command_let_through_is_still_one_line_with_its_code() -> None:
    """run()'s safety net: a StoreError is anticipated (a database problem, or a bad --db URL),
    so it is never reported as an internal error, whichever command raised it."""
    from mtasts.cli.exitcodes import ExitCode
    from mtasts.cli.main import _store_error
    from mtasts.store.errors import StoreMissing, StoreUnavailable, UnsupportedDatabase

    assert _store_error(StoreUnavailable("database x: down")) == ("database x: down", ExitCode.CANNOT_RUN)
    assert _store_error(StoreMissing("no report database at /x")) == ("no report database at /x", ExitCode.CANNOT_RUN)
    assert _store_error(UnsupportedDatabase("unsupported")) == ("unsupported", ExitCode.USAGE)
    assert _store_error(ValueError("a bug")) is None


def test_commands_that_need_no_database_do_not_load_it() -> None:
    """``mtasts --help``, ``check``, ``lint`` start without SQLAlchemy (about 0.3 s of imports):
    only the commands that open the store load it."""
    import subprocess
    import sys

    code = "import sys, mtasts.cli.main; print(sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
