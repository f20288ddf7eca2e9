"""The accounts: scrypt hashes, users, sessions and the audit trail on SQLite and the real
PostgreSQL; and ``mtasts web user`` as an administrator runs it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mtasts.cli.web import app as web_app
from mtasts.store.store import ReportStore
from mtasts.web.accounts import (
    AccountError,
    Accounts,
    Role,
    ScryptCost,
    check_name,
    check_password,
    hash_password,
    verify_password,
)

FAST = ScryptCost(log_n=10)
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
PG = (os.environ.get("MTASTS_TEST_PGHOST", "127.0.0.1"), int(os.environ.get("MTASTS_TEST_PGPORT", "5432")))


def test_a_hash_verifies_its_password_only() -> None:
    encoded = hash_password("a long enough password", cost=FAST)
    assert encoded.startswith("$scrypt$ln=10,r=8,p=1$")
    assert verify_password("a long enough password", encoded)
    assert not verify_password("a long enough passwore", encoded)
    assert hash_password("a long enough password", cost=FAST) != encoded  # a new salt each time


def test_the_default_cost_is_owasps_minimum() -> None:
    encoded = hash_password("a long enough password")
    assert encoded.startswith("$scrypt$ln=17,r=8,p=1$")
    assert verify_password("a long enough password", encoded)


@pytest.mark.parametrize(
    "damaged",
    [
        "",
        "plain text",
        "$scrypt$ln=99,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=65536,t=3,p=4$x$y",
    ],
)
def test_a_damaged_hash_opens_nothing(damaged: str) -> None:
    assert not verify_password("anything at all", damaged)


def test_names_and_passwords() -> None:
    assert check_name("ops.team@example.com") == "ops.team@example.com"
    for bad in ("", "-x", "has space", "a" * 65, "ユーザー"):
        with pytest.raises(AccountError):
            check_name(bad)
    with pytest.raises(AccountError, match="at least 10"):
        check_password("short")


def _postgres_url() -> Iterator[tuple[str, dict[str, str]]]:
    try:
        socket.create_connection(PG, timeout=1).close()
    except OSError:
        pytest.skip(f"PostgreSQL is not reachable at {PG[0]}:{PG[1]}")
    import psycopg

    schema = f"mtasts_web_{uuid.uuid4().hex[:12]}"
    dsn = f"host={PG[0]} port={PG[1]} user=postgres dbname=test"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG[0]}:{PG[1]}/test", {"options": f"-csearch_path={schema}"}
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'web.sqlite3'}", {}
    else:
        yield from _postgres_url()


@pytest.fixture
def accounts(database: tuple[str, dict[str, str]]) -> Iterator[Accounts]:
    url, connect_args = database
    found = Accounts(ReportStore(url, connect_args=connect_args))
    found.open()
    yield found
    found.close()


def test_users(accounts: Accounts) -> None:
    alice = accounts.add_user("alice", hash_password("x" * 12, cost=FAST), Role.ADMIN, now=NOW)
    accounts.add_user("bob", hash_password("y" * 12, cost=FAST), Role.READ_ONLY, now=NOW)
    assert [(u.name, u.role) for u in accounts.users()] == [("alice", Role.ADMIN), ("bob", Role.READ_ONLY)]
    assert accounts.user("alice") == alice
    assert alice.created_at == NOW
    with pytest.raises(AccountError, match="exists already"):
        accounts.add_user("alice", "", Role.READ_ONLY, now=NOW)
    assert accounts.remove_user("bob")
    assert not accounts.remove_user("bob")
    assert accounts.user("bob") is None


def test_sessions(accounts: Accounts) -> None:
    alice = accounts.add_user("alice", "h", Role.ADMIN, now=NOW)
    idle = timedelta(hours=1)
    token, made = accounts.create_session(alice, now=NOW, lifetime=timedelta(hours=12))
    found = accounts.session(token, now=NOW + timedelta(minutes=30), idle=idle)
    assert found is not None
    assert (found.user, found.csrf_token) == (alice, made.csrf_token)
    assert accounts.session(token + "x", now=NOW, idle=idle) is None
    assert accounts.session(token, now=NOW + timedelta(minutes=61), idle=idle) is None  # idle
    accounts.touch(made.id, now=NOW + timedelta(minutes=50))
    assert accounts.session(token, now=NOW + timedelta(minutes=100), idle=idle) is not None
    assert accounts.session(token, now=NOW + timedelta(hours=12), idle=timedelta(days=1)) is None  # expired
    assert accounts.revoke(token, now=NOW + timedelta(minutes=101))
    assert not accounts.revoke(token, now=NOW + timedelta(minutes=102))
    assert accounts.session(token, now=NOW + timedelta(minutes=103), idle=idle) is None
    assert accounts.forget_sessions(before=NOW + timedelta(days=1)) == 1


def test_the_database_holds_no_usable_token(accounts: Accounts) -> None:
    """Only the token's SHA-256 is stored: reading the table opens no session."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from mtasts.store.models import WebSessionRow

    alice = accounts.add_user("alice", "h", Role.ADMIN, now=NOW)
    token, _ = accounts.create_session(alice, now=NOW, lifetime=timedelta(hours=1))
    with Session(accounts.store.engine) as session:
        stored = session.scalars(select(WebSessionRow.token_sha256)).one()
    assert token not in stored
    assert accounts.session(stored, now=NOW, idle=timedelta(hours=1)) is None


def test_the_cookie_key_is_shared_by_every_process(database: tuple[str, dict[str, str]]) -> None:
    url, connect_args = database
    first, second = (Accounts(ReportStore(url, connect_args=connect_args)) for _ in range(2))
    first.open()
    second.open()
    try:
        key = first.secret("cookie-key")
        assert len(key) >= 40
        assert second.secret("cookie-key") == key
        assert second.secret("cookie-key", make=lambda: "other") == key
    finally:
        first.close()
        second.close()


def test_the_audit_trail_is_newest_first(accounts: Accounts) -> None:
    accounts.audit("alice", "login", "from 192.0.2.1", now=NOW)
    accounts.audit("alice", "publish-apply", "mode testing → enforce", now=NOW + timedelta(seconds=1), domain="a.test")
    entries = accounts.audit_entries()
    assert [(e.action, e.domain) for e in entries] == [("publish-apply", "a.test"), ("login", None)]
    assert entries[0].to_dict()["at"] == "2026-12-02T09:00:01Z"


# --- mtasts web user ---------------------------------------------------------------------------


def _cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(web_app, name="web")
    return root


def _run(*arguments: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(_cli(), ["web", "user", *arguments], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_the_user_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    secret = tmp_path / "alice.pw"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    code, out, err = _run("add", "alice", "--password-file", str(secret), "--role", "admin", "--db", db)
    assert (code, err) == (0, "")
    assert out == f"added alice (admin) to {db}\n"
    code, out, _ = _run("add", "bob", "--password-file", "-", "--db", db, stdin="bob's password here\n")
    assert (code, out) == (0, f"added bob (read-only) to {db}\n")

    code, out, _ = _run("list", "--db", db)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("alice  admin      added ")
    assert lines[1].startswith("bob    read-only  added ")
    assert lines[2] == "2 users"

    store = ReportStore(db)
    found = Accounts(store)
    found.open()
    try:
        credentials = found.credentials("alice")
        assert credentials is not None
        assert verify_password("correct horse battery staple", credentials[1])  # the line end is not part of it
        assert [e.action for e in found.audit_entries()] == ["user-add", "user-add"]
        assert found.audit_entries()[0].actor.startswith("cli:")
    finally:
        found.close()

    code, out, _ = _run("remove", "bob", "--db", db)
    assert (code, out) == (0, "removed bob; their sessions have ended\n")
    code, out, _ = _run("list", "--json", "--db", db)
    assert code == 0
    assert '"name": "alice", "role": "admin"' in out


@pytest.mark.parametrize(
    ("arguments", "stdin", "mode", "message", "code"),
    [
        (["add", "x y", "--password-file", "-"], "long enough pass", None, "'x y' is not a user name", 2),
        (["add", "carol", "--password-file", "-"], "short", None, "the password is too short", 2),
        (["add", "carol", "--password-file", "PW"], None, 0o644, "its group or others may read it (mode 644)", 2),
        (["add", "carol", "--password-file", "MISSING"], None, None, "cannot read", 3),
        (["remove", "nobody"], None, None, "no mtasts database at", 3),
    ],
)
def test_user_command_mistakes(
    tmp_path: Path, arguments: list[str], stdin: str | None, mode: int | None, message: str, code: int
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("long enough password\n")
    secret.chmod(mode or 0o600)
    arguments = [str(secret) if a == "PW" else str(tmp_path / "missing") if a == "MISSING" else a for a in arguments]
    exit_code, _, err = _run(*arguments, "--db", f"sqlite:///{tmp_path / 'web.sqlite3'}", stdin=stdin)
    assert exit_code == code, err
    assert err.startswith("mtasts: error: "), err
    assert message in err, err
    assert err.count("\n") == 1


def test_adding_a_user_twice_says_how_to_replace_them(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'web.sqlite3'}"
    assert _run("add", "alice", "--password-file", "-", "--db", db, stdin="long enough password")[0] == 0
    code, _, err = _run("add", "alice", "--password-file", "-", "--db", db, stdin="long enough password")
    assert code == 2
    assert err == (
        "mtasts: error: the user 'alice' exists already: remove it first ('mtasts web user remove alice') "
        "to replace it\n"
    )
