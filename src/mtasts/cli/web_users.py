"""``mtasts web user``: the local accounts of the web interface (``add``, ``list``, ``remove``).

Accounts live in the project's database (``--db``, else ``$MTASTS_DB``, else the default file,
as ``mtasts report``), so ``mtasts web serve`` on the same database knows them at once. The
password is read from a file (or ``-``: standard input), never from the command line, where
other users of the machine could read it in the process list.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import stat
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mtasts.cli.exitcodes import ExitCode, fail
from mtasts.cli.report._common import DbOption
from mtasts.i18n import current
from mtasts.i18n.words import counted

if TYPE_CHECKING:
    from mtasts.web.accounts import Accounts
    from mtasts.web.auth import Auth

__all__ = ["app", "serve_auth"]

app = typer.Typer(help="Local accounts of the web interface: add, list, remove.", no_args_is_help=True)


class RoleChoice(StrEnum):
    ADMIN = "admin"
    READ_ONLY = "read-only"


_MAX_PASSWORD_FILE = 4096


def _actor() -> str:
    """Who ran the command, for the audit trail (``cli:`` + the login name)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"cli:uid {os.getuid()}"


def _read_password(source: Path) -> str:
    """The password in ``source`` (``-``: standard input), without its line end. A file that
    others may read is refused: the password would not be secret."""
    if str(source) == "-":
        text = sys.stdin.read(_MAX_PASSWORD_FILE + 1)
    else:
        try:
            mode = source.stat().st_mode
            if not stat.S_ISREG(mode):
                fail(f"--password-file {source}: not a regular file", ExitCode.USAGE)
            if mode & 0o077:
                fail(
                    f"--password-file {source}: its group or others may read it (mode {stat.S_IMODE(mode):o}); "
                    f"chmod 600 {source}, or pipe the password with --password-file -",
                    ExitCode.USAGE,
                )
            with source.open("r", encoding="utf-8") as stream:
                text = stream.read(_MAX_PASSWORD_FILE + 1)
        except UnicodeDecodeError:
            fail(f"--password-file {source}: not UTF-8 text", ExitCode.USAGE)
        except OSError as exc:
            fail(f"cannot read {source}: {exc.strerror or exc}", ExitCode.CANNOT_RUN)
    if len(text) > _MAX_PASSWORD_FILE:
        fail(f"--password-file {source}: longer than a password can be", ExitCode.USAGE)
    return text.removesuffix("\n").removesuffix("\r")


@contextlib.contextmanager
def _accounts(db: str | None, *, create: bool) -> Iterator[Accounts]:
    """The accounts in the database of ``--db``; a reader creates nothing. Database trouble is
    one line and exit 3."""
    from mtasts.store.errors import StoreError, StoreMissing, UnsupportedDatabase, translate_store_errors
    from mtasts.store.store import ReportStore, default_db_url
    from mtasts.web.accounts import Accounts

    try:
        store = ReportStore(db or default_db_url(os.environ), create=create)
    except UnsupportedDatabase as exc:
        fail(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}", ExitCode.USAGE)
    try:
        with store, translate_store_errors(store.url):
            yield Accounts(store)
    except StoreMissing:
        fail(
            f"no mtasts database at {store.display_url}: add a user first ('mtasts web user add'), or give --db",
            ExitCode.CANNOT_RUN,
        )
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The user name (letters, digits and . _ @ + -; at most 64).")],
    password_file: Annotated[
        Path,
        typer.Option(
            "--password-file",
            help="Read the password from this file (mode 600; its first line end is dropped), or '-' for stdin.",
            metavar="FILE",
        ),
    ],
    role: Annotated[
        RoleChoice, typer.Option("--role", help="admin may act (publish actions); read-only may only look.")
    ] = RoleChoice.READ_ONLY,
    db: DbOption = None,
) -> None:
    """Add a user who can sign in to 'mtasts web serve' on the same database."""
    from mtasts.web.accounts import AccountError, Role, check_name, check_password, hash_password

    try:
        check_name(name)
        password = check_password(_read_password(password_file))
    except AccountError as exc:  # the accounts' own words: translated as the line is written (fail)
        fail(str(exc), ExitCode.USAGE)
    encoded = hash_password(password)
    now = datetime.now(UTC)
    with _accounts(db, create=True) as accounts:
        try:
            user = accounts.add_user(name, encoded, Role(role.value), now=now)
        except AccountError as exc:
            fail(f"{exc}: remove it first ('mtasts web user remove {name}') to replace it", ExitCode.USAGE)
        accounts.audit(_actor(), "user-add", f"{user.name} ({user.role.value})", now=now)
        where = accounts.store.display_url
    said = {"name": user.name, "role": user.role.value, "where": where}
    typer.echo(current().gettext("added %(name)s (%(role)s) to %(where)s") % said)


@app.command("list")
def list_users(
    as_json: Annotated[bool, typer.Option("--json", help="Print the users as one JSON document.")] = False,
    db: DbOption = None,
) -> None:
    """List the users, their roles and when they were added."""
    with _accounts(db, create=False) as accounts:
        users = accounts.users()
    if as_json:
        rows = [
            {"name": u.name, "role": u.role.value, "created_at": u.created_at.isoformat().replace("+00:00", "Z")}
            for u in users
        ]
        typer.echo(json.dumps({"users": rows}, ensure_ascii=False))
        return
    tr = current()
    if not users:
        typer.echo(
            tr.gettext("no users yet: add one with 'mtasts web user add NAME --password-file FILE --role admin'")
        )
        return
    width = max(len(u.name) for u in users)
    for user in users:
        added = tr.gettext("added %(when)s UTC") % {"when": f"{user.created_at:%Y-%m-%d %H:%M}"}
        typer.echo(f"{user.name:<{width}}  {user.role.value:<9}  {added}")
    typer.echo(counted(len(users), "user"))


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The user to remove.")],
    db: DbOption = None,
) -> None:
    """Remove a user; their sessions end at once (every signed-in browser is signed out)."""
    with _accounts(db, create=False) as accounts:
        if not accounts.remove_user(name):
            fail(f"no user {name!r} (see 'mtasts web user list')", ExitCode.USAGE)
        accounts.audit(_actor(), "user-remove", name, now=datetime.now(UTC))
    typer.echo(current().gettext("removed %(name)s; their sessions have ended") % {"name": name})


def serve_auth(db: str | None, *, public: bool, proxy_user_header: str | None, trusted_proxies: list[str]) -> Auth:
    """The accounts ``mtasts web serve`` signs people in with: the database of ``--db`` (else
    ``$MTASTS_DB``, else the default file; made when missing, so that ``web user add`` can fill
    it later), and the proxy settings of ``--trust-proxy-user`` and ``--trusted-proxy``.
    Mistakes are one line and exit 2; a database that cannot be used, exit 3."""
    from mtasts.store.errors import StoreError, UnsupportedDatabase
    from mtasts.store.store import ReportStore, default_db_url
    from mtasts.web.accounts import Accounts
    from mtasts.web.auth import Auth, AuthSettings

    if trusted_proxies and proxy_user_header is None:
        fail("--trusted-proxy is only used with --trust-proxy-user HEADER", ExitCode.USAGE)
    try:
        settings = AuthSettings(
            proxy_user_header=proxy_user_header,
            trusted_proxies=AuthSettings.parse_networks(trusted_proxies),
            public=public,
        )
    except ValueError as exc:
        if proxy_user_header is not None and not trusted_proxies:
            fail(f"--trust-proxy-user {proxy_user_header} needs --trusted-proxy ADDRESS (the proxy's)", ExitCode.USAGE)
        fail(f"--trust-proxy-user/--trusted-proxy: {exc}", ExitCode.USAGE)
    try:
        store = ReportStore(db or default_db_url(os.environ), create=True)
    except UnsupportedDatabase as exc:
        fail(f"--db: {exc.message}" if db else f"$MTASTS_DB: {exc.message}", ExitCode.USAGE)
    accounts = Accounts(store)
    try:
        accounts.open()
        if not accounts.users():
            none = (
                "no accounts yet in %(url)s: add one with 'mtasts web user add NAME --password-file FILE --role admin'"
            )
            sys.stderr.write(f"mtasts web: {current().gettext(none) % {'url': store.display_url}}\n")
    except StoreError as exc:
        fail(exc.message, ExitCode.CANNOT_RUN)
    return Auth(accounts, settings)
