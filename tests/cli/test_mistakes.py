"""Everyday mistakes, made through the CLI as a new user would: each ends in one line on stderr
(``mtasts: error: ...``), the documented exit status (:mod:`mtasts.cli.exitcodes`), no
traceback, and nothing created on disk or in a database."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from mtasts.cli.exitcodes import EXIT_CODES_HELP, ExitCode, exit_status_help
from mtasts.cli.main import app
from mtasts.cli.report import parse_smtp_server
from mtasts.store.models import Base
from mtasts.store.store import ReportStore
from tests.cli.conftest import pg_tables
from tests.report.test_mail import BODY
from tests.store.conftest import PG_HOST, PG_PORT

READERS = [
    ["report", "summary"],
    ["report", "summary", "--days", "7", "--json"],
    ["report", "export", "--format", "csv"],
    ["report", "digest"],
]
SECRET = "hunter2"


def tree(root: Path) -> list[str]:
    """Everything under ``root``, to show that a command created nothing."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def cli(tmp_path: Path) -> CliRunner:
    """A runner whose user data directory is inside ``tmp_path`` (no $MTASTS_DB)."""
    return CliRunner(env={"XDG_DATA_HOME": str(tmp_path / "xdg"), "MTASTS_DB": "", "COLUMNS": "200", "NO_COLOR": "1"})


def assert_one_line(result: Result, code: ExitCode, *fragments: str) -> str:
    """The result of an anticipated failure: ``code``, one ``mtasts: error:`` line, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # nothing escaped the command
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mtasts: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def ingested(tmp_path: Path) -> Path:
    """A real database holding one report (stored by ``report ingest``)."""
    (tmp_path / "a.json").write_bytes(BODY)
    db = tmp_path / "reports.sqlite3"
    result = cli(tmp_path).invoke(app, ["report", "ingest", "--db", str(db), str(tmp_path / "a.json")])
    assert result.exit_code == 0, result.output
    return db


# --- a database that is not there ----------------------------------------------------------------


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reader_creates_no_database_and_no_folder(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "r.db"
    result = cli(tmp_path).invoke(app, [*command, "--db", str(missing)])
    assert_one_line(result, ExitCode.CANNOT_RUN, f"no report database at {missing}", "mtasts report ingest")
    assert tree(tmp_path) == []


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reader_on_the_default_database_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    result = cli(tmp_path).invoke(app, command)
    assert_one_line(result, ExitCode.CANNOT_RUN, str(tmp_path / "xdg" / "mtasts" / "reports.sqlite3"))
    assert tree(tmp_path) == []


def test_a_reader_leaves_a_file_that_is_no_mtasts_database_untouched(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    before = other.read_bytes()
    for path in (empty, other):
        result = cli(tmp_path).invoke(app, ["report", "summary", "--db", str(path)])
        assert_one_line(result, ExitCode.CANNOT_RUN, "holds no mtasts reports")
    assert empty.stat().st_size == 0
    assert other.read_bytes() == before
    assert tree(tmp_path) == ["empty.db", "other.db"]


@pytest.mark.parametrize("command", [*READERS, ["report", "ingest"]], ids=" ".join)
def test_a_file_that_is_not_a_database_is_named_and_left_alone(tmp_path: Path, command: list[str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"these are notes, not a database\n" * 200)
    before = junk.read_bytes()
    (tmp_path / "a.json").write_bytes(BODY)
    extra = [str(tmp_path / "a.json")] if command[-1] == "ingest" else []
    result = cli(tmp_path).invoke(app, [*command, "--db", str(junk), *extra])
    assert_one_line(result, ExitCode.CANNOT_RUN, "file is not a database")  # was: exit 4, "internal error"
    assert junk.read_bytes() == before


def test_a_reader_given_a_folder_says_there_is_no_database(tmp_path: Path) -> None:
    result = cli(tmp_path).invoke(app, ["report", "export", "--format", "json", "--db", str(tmp_path)])
    assert_one_line(result, ExitCode.CANNOT_RUN, f"no report database at {tmp_path}")


def test_a_reader_upgrades_an_older_mtasts_schema(tmp_path: Path) -> None:
    """Documented: a reader never makes a schema, but brings an older mtasts one up to date."""
    db = ingested(tmp_path)
    with ReportStore(str(db)) as store, store.engine.begin() as connection:
        first = {"tlsrpt_report", "tlsrpt_policy", "tlsrpt_failure"}  # every later revision's tables go
        for table in [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in first]:
            connection.exec_driver_sql(f"DROP TABLE {table}")
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    result = cli(tmp_path).invoke(app, ["report", "summary", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    (domain,) = json.loads(result.stdout)["domains"]
    assert (domain["total_successful"], domain["total_failure"]) == (7, 1)


# --- a database URL that cannot work ---------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [*READERS, ["report", "ingest", "a.json"], ["report", "serve", "--no-tls", "--port", "0"]],
    ids=" ".join,
)
def test_an_unsupported_scheme_is_a_usage_error_naming_the_supported_ones(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "a.json").write_bytes(BODY)
    before = tree(tmp_path)
    result = cli(tmp_path).invoke(app, [*command, "--db", f"mysql://root:{SECRET}@127.0.0.1/reports"])
    line = assert_one_line(
        result, ExitCode.USAGE, "unsupported database URL scheme 'mysql'", "sqlite:///", "postgresql://"
    )
    assert SECRET not in line
    assert tree(tmp_path) == before


def test_an_unparseable_url_is_a_usage_error_without_the_password(tmp_path: Path) -> None:
    result = cli(tmp_path).invoke(app, ["report", "summary", "--db", f"postgresql://u:{SECRET}@host:port/db"])
    line = assert_one_line(result, ExitCode.USAGE, "not a database URL")
    assert SECRET not in line


def test_an_unsupported_scheme_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    result = cli(tmp_path).invoke(app, ["report", "summary"], env={"MTASTS_DB": "mysql://root@127.0.0.1/reports"})
    assert_one_line(result, ExitCode.USAGE, "$MTASTS_DB: unsupported database URL scheme 'mysql'")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_postgresql_server_that_is_down(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{closed_port()}/test"
    result = cli(tmp_path).invoke(app, [*command, "--db", url])
    line = assert_one_line(result, ExitCode.CANNOT_RUN, "postgres:***@127.0.0.1", "Connection refused")
    assert SECRET not in line


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_postgresql_database_that_does_not_exist(tmp_path: Path, command: list[str], pg: Any) -> None:
    url = f"postgresql://postgres:{SECRET}@{PG_HOST}:{PG_PORT}/mtasts_no_such_database"
    result = cli(tmp_path).invoke(app, [*command, "--db", url])
    line = assert_one_line(result, ExitCode.CANNOT_RUN, 'database "mtasts_no_such_database" does not exist')
    assert SECRET not in line
    assert "postgres:***@" in line


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_reader_makes_no_tables_in_an_empty_postgresql_database(
    tmp_path: Path, command: list[str], pg: Callable[[], str]
) -> None:
    url = pg()
    result = cli(tmp_path).invoke(app, [*command, "--db", url])
    assert_one_line(result, ExitCode.CANNOT_RUN, "holds no mtasts reports")
    assert pg_tables(url) == []


# --- files and options ---------------------------------------------------------------------------


def test_export_into_a_missing_folder(tmp_path: Path) -> None:
    db = ingested(tmp_path)
    before = tree(tmp_path)
    target = tmp_path / "no" / "such" / "folder" / "out.csv"
    result = cli(tmp_path).invoke(app, ["report", "export", "--format", "csv", "--db", str(db), "-o", str(target)])
    assert_one_line(result, ExitCode.CANNOT_RUN, f"the folder {target.parent} does not exist")
    assert tree(tmp_path) == before


def test_export_onto_a_folder(tmp_path: Path) -> None:
    db = ingested(tmp_path)
    result = cli(tmp_path).invoke(app, ["report", "export", "--format", "csv", "--db", str(db), "-o", str(tmp_path)])
    assert_one_line(result, ExitCode.CANNOT_RUN, "it is a folder")


@pytest.mark.parametrize(
    ("smtp", "says"),
    [
        ("host:abc", "'abc' is not a port number"),
        ("host:0", "'0' is not a port number"),
        ("host:65536", "'65536' is not a port number"),
        ("host:", "'' is not a port number"),
        (":25", "'' is not a host name"),
        ("[::1:25", "IPv6 address in brackets"),
        ("[mail.example.com]:25", "IPv6 address in brackets"),
        ("[::1]25", "IPv6 address in brackets"),
        ("2001:db8::zz", "is not HOST[:PORT]"),
    ],
)
def test_digest_with_a_bad_smtp_server_is_a_usage_error(tmp_path: Path, smtp: str, says: str) -> None:
    db = ingested(tmp_path)
    args = ["report", "digest", "--db", str(db), "--mail-to", "postmaster@example.com", "--smtp", smtp]
    assert_one_line(cli(tmp_path).invoke(app, args), ExitCode.USAGE, says)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail.example.com", ("mail.example.com", 25)),
        ("mail.example.com:587", ("mail.example.com", 587)),
        ("192.0.2.25:2525", ("192.0.2.25", 2525)),
        ("[2001:db8::25]:587", ("2001:db8::25", 587)),
        ("[2001:db8::25]", ("2001:db8::25", 25)),
        ("2001:db8::25", ("2001:db8::25", 25)),
    ],
)
def test_smtp_servers_as_written(text: str, expected: tuple[str, int]) -> None:
    assert parse_smtp_server(text) == expected


def test_digest_is_mailed_through_an_ipv6_server_in_brackets(tmp_path: Path) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message as MessageHandler

    received: list[Any] = []

    class Keep(MessageHandler):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("this machine has no IPv6 loopback address (::1)")
    db = ingested(tmp_path)
    controller = Controller(Keep(), hostname="::1", port=port)
    controller.start()
    try:
        args = ["report", "digest", "--db", str(db), "--mail-to", "postmaster@example.com", "--smtp", f"[::1]:{port}"]
        result = cli(tmp_path).invoke(app, [*args, "--smtp-security", "none"])  # a relay without TLS, as asked
    finally:
        controller.stop()
    assert result.exit_code == 0, result.output
    (mail,) = received
    assert mail["To"] == "postmaster@example.com"


def test_digest_through_a_server_that_is_down(tmp_path: Path) -> None:
    db = ingested(tmp_path)
    args = ["report", "digest", "--db", str(db), "--mail-to", "p@example.com", "--smtp", f"127.0.0.1:{closed_port()}"]
    assert_one_line(cli(tmp_path).invoke(app, args), ExitCode.CANNOT_RUN, "cannot send the digest", "refused")


def test_digest_with_a_bad_until_is_a_usage_error(tmp_path: Path) -> None:
    db = ingested(tmp_path)
    result = cli(tmp_path).invoke(app, ["report", "digest", "--db", str(db), "--until", "yesterday"])
    assert_one_line(result, ExitCode.USAGE, "'yesterday' is not a date")


def test_lint_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    result = cli(tmp_path).invoke(app, ["lint", "policy", str(tmp_path / "missing.txt")])
    assert_one_line(result, ExitCode.CANNOT_RUN, "cannot read", "No such file or directory")


def test_lab_info_into_a_missing_folder_fails_before_the_lab_starts(tmp_path: Path) -> None:
    result = cli(tmp_path).invoke(app, ["lab", "up", "-s", "enforce-ok", "--info", str(tmp_path / "no" / "lab.json")])
    assert_one_line(result, ExitCode.CANNOT_RUN, f"the folder {tmp_path / 'no'} does not exist")
    assert tree(tmp_path) == []


@pytest.mark.parametrize("command", [["demo", "-s", "nope"], ["lab", "up", "-s", "nope"]], ids=" ".join)
def test_an_unknown_scenario_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    assert_one_line(cli(tmp_path).invoke(app, command), ExitCode.USAGE, "unknown scenario(s): nope")


# --- lint --fail-on --------------------------------------------------------------------------------

WARNED = "version: STSv1\nmode: none\nmode: enforce\nmax_age: 1\n"  # valid, with a warning


@pytest.mark.parametrize(
    ("policy", "options", "code"),
    [
        (WARNED, [], ExitCode.OK),
        (WARNED, ["--fail-on", "error"], ExitCode.OK),
        (WARNED, ["--fail-on", "warning"], ExitCode.PROBLEMS),
        ("version: STSv1\n", [], ExitCode.PROBLEMS),
        ("version: STSv1\n", ["--fail-on", "warning"], ExitCode.PROBLEMS),
        ("version: STSv1\n", ["--fail-on", "never"], ExitCode.OK),
    ],
)
def test_lint_fail_on(tmp_path: Path, policy: str, options: list[str], code: ExitCode) -> None:
    result = cli(tmp_path).invoke(app, ["lint", "policy", "-", *options], input=policy)
    assert result.exit_code == code, result.output


def test_lint_a_record_with_fail_on_never(tmp_path: Path) -> None:
    result = cli(tmp_path).invoke(app, ["lint", "record", "v=STSv1; id=2026-11-29", "--fail-on", "never"])
    assert result.exit_code == ExitCode.OK
    assert "invalid _mta-sts record" in result.stdout


def test_a_bad_fail_on_value_is_a_usage_error(tmp_path: Path) -> None:
    result = cli(tmp_path).invoke(app, ["lint", "record", "v=STSv1; id=1", "--fail-on", "sometimes"])
    assert result.exit_code == ExitCode.USAGE


# --- every --help states the scheme ------------------------------------------------------------------


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in getattr(group, "commands", {}).items():  # a group (Typer's own Click)
        yield from _commands(command, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_every_command_is_listed() -> None:
    assert {("check",), ("report", "summary"), ("lint", "policy"), ("lab", "up"), ("demo",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "mtasts")
def test_every_help_ends_with_the_exit_status_scheme(path: tuple[str, ...]) -> None:
    result = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}).invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    group = not path or path in {p[:-1] for p in COMMANDS if p}
    assert (EXIT_CODES_HELP if group else exit_status_help(" ".join(path))) in text


def test_the_readme_states_the_same_scheme() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    assert EXIT_CODES_HELP in " ".join(readme.read_text("utf-8").split())


# --- the real console script: internal errors ------------------------------------------------------


def mtasts_script() -> str:
    script = shutil.which("mtasts", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("the mtasts console script is not installed next to this Python")
    return script


def corrupt_database(tmp_path: Path) -> Path:
    """A valid SQLite mtasts database holding a value mtasts never writes (a roll-up day that is no
    date, as a hand edit or a foreign tool could leave): reading it fails inside mtasts, in a way
    no command anticipates. This is the honest way to reach the internal-error path from outside,
    without a test-only hook in the product."""
    db = ingested(tmp_path)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE tlsrpt_day_total SET day = 'not-a-day'")
    return db


def run_mtasts(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        **env,
    }
    return subprocess.run(
        [mtasts_script(), *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


def test_an_internal_error_is_one_line_and_exit_4(tmp_path: Path) -> None:
    db = corrupt_database(tmp_path)
    result = run_mtasts(tmp_path, "report", "summary", "--db", str(db))
    assert result.returncode == ExitCode.INTERNAL
    assert "Traceback" not in result.stderr
    first, second = result.stderr.splitlines()
    assert first.startswith("mtasts: internal error: ValueError: ")
    assert "rerun with --debug" in second


@pytest.mark.parametrize("how", ["--debug", "MTASTS_DEBUG=1"])
def test_debug_shows_the_traceback(tmp_path: Path, how: str) -> None:
    db = corrupt_database(tmp_path)
    if how == "--debug":
        result = run_mtasts(tmp_path, "--debug", "report", "summary", "--db", str(db))
    else:
        result = run_mtasts(tmp_path, "report", "summary", "--db", str(db), MTASTS_DEBUG="1")
    assert result.returncode == ExitCode.INTERNAL
    assert "Traceback (most recent call last)" in result.stderr
    assert "mtasts: internal error: ValueError" in result.stderr


def test_an_anticipated_failure_through_the_real_script(tmp_path: Path) -> None:
    result = run_mtasts(tmp_path, "report", "summary", "--db", str(tmp_path / "nonexistent" / "dir" / "r.db"))
    assert result.returncode == ExitCode.CANNOT_RUN
    assert result.stderr.startswith("mtasts: error: no report database at ")
    assert len(result.stderr.splitlines()) == 1
    assert tree(tmp_path) == []


def test_python_dash_m_is_the_same_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mtasts", "report", "summary", "--db", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.CANNOT_RUN
    assert result.stderr.startswith("mtasts: error: no report database at ")
