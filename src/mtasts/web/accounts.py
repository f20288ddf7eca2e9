"""Local accounts of ``mtasts web``: users and their roles, password hashes, sessions, the audit
trail, in the project's database beside the reports (Alembic revision 0005).

Passwords are hashed with scrypt (RFC 7914, :func:`hashlib.scrypt`: OpenSSL's, in the standard
library, so no extra dependency), N = 2^17, r = 8, p = 1 (128 MiB and about half a second per
hash: OWASP's recommended minimum), a 16-byte random salt, stored as a PHC string
``$scrypt$ln=17,r=8,p=1$<salt>$<hash>`` so that a later, costlier setting still verifies the
hashes made before it.

A session's cookie holds a random token; the database keeps only its SHA-256, so a copy of the
database (a backup, a replica) opens no session. Logging out revokes the row; removing a user
deletes its sessions. Every method is one short transaction, synchronous (SQLAlchemy), called by
the web app through :func:`asyncio.to_thread` as the report endpoint calls the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtasts.store.store import ReportStore

__all__ = [
    "DEFAULT_COST",
    "AccountError",
    "Accounts",
    "AuditEntry",
    "Role",
    "ScryptCost",
    "SessionInfo",
    "User",
    "check_name",
    "check_password",
    "hash_password",
    "verify_password",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # longer is not a password but a way to make each login cost more


class Role(StrEnum):
    """``read-only`` sees every page; ``admin`` may also act (publish actions, the audit trail)."""

    ADMIN = "admin"
    READ_ONLY = "read-only"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.READ_ONLY


class AccountError(ValueError):
    """A request the accounts cannot carry out (an invalid name, a user that exists already)."""


@dataclass(frozen=True, slots=True)
class ScryptCost:
    """scrypt's parameters: N = 2^``log_n``, block size ``r``, parallelism ``p``."""

    log_n: int = 17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.log_n <= 20 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise ValueError(f"scrypt parameters out of range: {self}")

    @property
    def memory(self) -> int:
        """Bytes scrypt needs (128·N·r), plus headroom for OpenSSL's bookkeeping."""
        return 128 * (1 << self.log_n) * self.r * (self.p + 1) + 1024 * 1024


DEFAULT_COST = ScryptCost()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, *, cost: ScryptCost = DEFAULT_COST, salt: bytes | None = None) -> str:
    """The PHC string of ``password`` (see the module)."""
    salt = secrets.token_bytes(16) if salt is None else salt
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=1 << cost.log_n, r=cost.r, p=cost.p, maxmem=cost.memory, dklen=32
    )
    return f"$scrypt$ln={cost.log_n},r={cost.r},p={cost.p}${_b64(salt)}${_b64(key)}"


_PHC = re.compile(r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{8,64})\$([A-Za-z0-9+/]{16,128})")


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` hashes to ``encoded``, compared in constant time. A malformed or
    unknown hash is ``False`` (never an exception: a damaged row must not open the door)."""
    match = _PHC.fullmatch(encoded)
    if match is None or len(password) > MAX_PASSWORD:
        return False
    try:
        cost = ScryptCost(int(match[1]), int(match[2]), int(match[3]))
        salt, expected = _unb64(match[4]), _unb64(match[5])
    except ValueError:
        return False
    key = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=1 << cost.log_n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.memory,
        dklen=len(expected),
    )
    return hmac.compare_digest(key, expected)


def check_name(name: str) -> str:
    """``name`` if it can be a user name (1–64 characters: letters, digits and ``. _ @ + -``,
    not starting with punctuation: an e-mail address fits, as a proxy's user header may give
    one), else :class:`AccountError` saying why."""
    if not _NAME.fullmatch(name):
        raise AccountError(
            f"{name[:80]!r} is not a user name: use 1 to 64 letters, digits and . _ @ + - "
            "(starting with a letter or digit)"
        )
    return name


def check_password(password: str) -> str:
    """``password`` if it is long enough to keep (NIST SP 800-63B: length, not composition
    rules), else :class:`AccountError`."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD} characters")
    return password


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live session: whose, its CSRF token, and when it was last used and ends."""

    id: int
    user: User
    csrf_token: str
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    domain: str | None
    detail: str

    def to_dict(self) -> dict[str, str | None]:
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "actor": self.actor,
            "action": self.action,
            "domain": self.domain,
            "detail": self.detail,
        }


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("account times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


class Accounts:
    """The accounts in a :class:`~mtasts.store.store.ReportStore`'s database (which owns the
    engine and the schema; opening it creates the tables). Times are passed in, timezone-aware."""

    def __init__(self, store: ReportStore) -> None:
        self.store = store

    def open(self) -> None:
        self.store.open()

    def close(self) -> None:
        self.store.close()

    # -- users ------------------------------------------------------------------------------

    def add_user(self, name: str, password_hash: str, role: Role, *, now: datetime) -> User:
        """A new user; :class:`AccountError` when ``name`` is taken (checked by the unique
        constraint too, so two concurrent ``user add`` cannot both win)."""
        from sqlalchemy.exc import IntegrityError  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebUserRow  # noqa: PLC0415

        check_name(name)
        row = WebUserRow(name=name, password_hash=password_hash, role=role.value, created_at=_naive(now))
        try:
            with Session(self.store.engine) as session, session.begin():
                session.add(row)
                session.flush()
                user = _user(row)
        except IntegrityError as exc:
            raise AccountError(f"the user {name!r} exists already") from exc
        return user

    def remove_user(self, name: str) -> bool:
        """Delete ``name`` and its sessions; ``False`` when there was no such user."""
        from sqlalchemy import delete, select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebSessionRow, WebUserRow  # noqa: PLC0415

        with Session(self.store.engine) as session, session.begin():
            user_id = session.scalar(select(WebUserRow.id).where(WebUserRow.name == name))
            if user_id is None:
                return False
            # explicit, not ON DELETE CASCADE alone: SQLite enforces foreign keys only when asked
            session.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
            session.execute(delete(WebUserRow).where(WebUserRow.id == user_id))
        return True

    def users(self) -> list[User]:
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebUserRow  # noqa: PLC0415

        with Session(self.store.engine) as session:
            return [_user(row) for row in session.scalars(select(WebUserRow).order_by(WebUserRow.name))]

    def credentials(self, name: str) -> tuple[User, str] | None:
        """``name``'s user and password hash, or ``None``."""
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebUserRow  # noqa: PLC0415

        with Session(self.store.engine) as session:
            row = session.scalar(select(WebUserRow).where(WebUserRow.name == name))
            return None if row is None else (_user(row), row.password_hash)

    def user(self, name: str) -> User | None:
        found = self.credentials(name)
        return None if found is None else found[0]

    # -- sessions ---------------------------------------------------------------------------

    def create_session(self, user: User, *, now: datetime, lifetime: timedelta) -> tuple[str, SessionInfo]:
        """A new session of ``user``: (the token for its cookie, the session)."""
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebSessionRow  # noqa: PLC0415

        token = secrets.token_urlsafe(32)
        row = WebSessionRow(
            token_sha256=token_sha256(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=_naive(now),
            last_seen_at=_naive(now),
            expires_at=_naive(now + lifetime),
            revoked_at=None,
        )
        with Session(self.store.engine) as session, session.begin():
            session.add(row)
            session.flush()
            info = SessionInfo(row.id, user, row.csrf_token, now, _aware(row.expires_at))
        return token, info

    def session(self, token: str, *, now: datetime, idle: timedelta) -> SessionInfo | None:
        """The live session whose cookie holds ``token``: ``None`` when unknown, revoked,
        expired, unused for longer than ``idle``, or its user is gone."""
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebSessionRow, WebUserRow  # noqa: PLC0415

        moment = _naive(now)
        query = (
            select(WebSessionRow, WebUserRow)
            .join(WebUserRow, WebUserRow.id == WebSessionRow.user_id)
            .where(WebSessionRow.token_sha256 == token_sha256(token))
        )
        with Session(self.store.engine) as session:
            found = session.execute(query).first()
            if found is None:
                return None
            row, user_row = found
            if row.revoked_at is not None or row.expires_at <= moment or row.last_seen_at + idle <= moment:
                return None
            return SessionInfo(
                row.id, _user(user_row), row.csrf_token, _aware(row.last_seen_at), _aware(row.expires_at)
            )

    def touch(self, session_id: int, *, now: datetime) -> None:
        """Record that the session was used (what the idle timeout counts from)."""
        from sqlalchemy import update  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebSessionRow  # noqa: PLC0415

        with Session(self.store.engine) as session, session.begin():
            session.execute(
                update(WebSessionRow).where(WebSessionRow.id == session_id).values(last_seen_at=_naive(now))
            )

    def revoke(self, token: str, *, now: datetime) -> bool:
        """End the session of ``token`` (logout); ``False`` when it was not live."""
        from sqlalchemy import update  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebSessionRow  # noqa: PLC0415

        query = (
            update(WebSessionRow)
            .where(WebSessionRow.token_sha256 == token_sha256(token), WebSessionRow.revoked_at.is_(None))
            .values(revoked_at=_naive(now))
        )
        with Session(self.store.engine) as session, session.begin():
            return bool(session.execute(query).rowcount)  # type: ignore[attr-defined]

    def forget_sessions(self, *, before: datetime) -> int:
        """Delete the rows of sessions that ended (expired or revoked) before ``before``."""
        from sqlalchemy import delete, or_  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebSessionRow  # noqa: PLC0415

        moment = _naive(before)
        query = delete(WebSessionRow).where(or_(WebSessionRow.expires_at < moment, WebSessionRow.revoked_at < moment))
        with Session(self.store.engine) as session, session.begin():
            return int(session.execute(query).rowcount)  # type: ignore[attr-defined]

    # -- the signing key and the audit trail -------------------------------------------------

    def secret(self, name: str, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
        """The secret ``name``, made on first use. Every process sharing the database gets the
        same one (the first writer wins; the others read what it wrote)."""
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.exc import IntegrityError  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebSecretRow  # noqa: PLC0415

        query = select(WebSecretRow.value).where(WebSecretRow.name == name)
        with Session(self.store.engine) as session:
            value = session.scalar(query)
        if value is not None:
            return value
        try:
            with Session(self.store.engine) as session, session.begin():
                session.add(WebSecretRow(name=name, value=make()))
        except IntegrityError:
            pass  # another process made it between our read and our write
        with Session(self.store.engine) as session:
            stored = session.scalar(query)
        assert stored is not None
        return stored

    def audit(self, actor: str, action: str, detail: str, *, now: datetime, domain: str | None = None) -> None:
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebAuditRow  # noqa: PLC0415

        with Session(self.store.engine) as session, session.begin():
            session.add(WebAuditRow(at=_naive(now), actor=actor, action=action, domain=domain, detail=detail))

    def audit_entries(self, *, limit: int = 100, domain: str | None = None) -> list[AuditEntry]:
        """The newest ``limit`` entries (``domain``: about that domain only), newest first."""
        from sqlalchemy import select  # noqa: PLC0415
        from sqlalchemy.orm import Session  # noqa: PLC0415

        from mtasts.store.models import WebAuditRow  # noqa: PLC0415

        query = select(WebAuditRow)
        if domain is not None:
            query = query.where(WebAuditRow.domain == domain)
        query = query.order_by(WebAuditRow.at.desc(), WebAuditRow.id.desc()).limit(limit)
        with Session(self.store.engine) as session:
            return [
                AuditEntry(_aware(row.at), row.actor, row.action, row.domain, row.detail)
                for row in session.scalars(query)
            ]


def _user(row: object) -> User:
    from mtasts.store.models import WebUserRow  # noqa: PLC0415

    assert isinstance(row, WebUserRow)
    return User(row.id, row.name, Role(row.role), _aware(row.created_at))
