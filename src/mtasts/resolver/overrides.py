"""Per-domain overrides: what an operator decides when a remote domain's MTA-STS is broken (pure).

Three kinds, each for one domain, with an expiry and a reason (both required: an override
nobody remembers is worse than the breakage it papered over):

* ``force-none``: answer ``NOTFOUND`` whatever the domain publishes (mail flows, opportunistic
  TLS or DANE as Postfix decides), e.g. an enforce policy whose MX certificates expired.
* ``force-enforce``: answer as an ``enforce`` policy with the given ``mx`` patterns, e.g. a
  domain that must not receive mail over unverified TLS while it fixes its policy host.
* ``pin``: answer from the given policy file (``policy``, the text of a policy), whatever is
  fetched, e.g. to hold a known-good policy while the domain publishes a broken one.

They are read from one small TOML file (``mtasts resolver serve --overrides FILE``), the
simplest thing a fleet can share (config management, a shared mount): no store schema, and the
file is the audit trail. An override is applied before the cache in answering; one past its
``expires`` is ignored (answers go back to the cache at that second, without a reload).
Nothing here reads the clock or the file system: :func:`parse_overrides` takes the text and
:func:`active` takes ``now``.

.. code-block:: toml

    [[override]]
    domain = "example.com"
    action = "force-none"
    expires = 2026-12-31T00:00:00Z
    reason = "their MX certificates expired; ticket 4711"
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mtasts.core.policy import Mode, Policy, parse_policy
from mtasts.core.problems import ParseError
from mtasts.resolver.keys import classify_key

__all__ = ["Override", "OverrideError", "OverrideKind", "active", "parse_overrides"]

# the max_age a force-enforce override's policy carries: it only matters for the answer
# (Postfix ignores it), so it is the RFC's largest, as a long-lived operator decision
_FORCED_MAX_AGE = 31_557_600


class OverrideError(ValueError):
    """The overrides file is not valid (the message names the entry and field)."""


class OverrideKind(StrEnum):
    FORCE_NONE = "force-none"
    FORCE_ENFORCE = "force-enforce"
    PIN = "pin"


@dataclass(frozen=True, slots=True)
class Override:
    """One operator decision. ``policy`` is what is answered from (``None`` for force-none);
    ``body`` the pinned policy text (for ``policy_string`` in the ``postfix-tlsrpt`` profile)."""

    domain: str
    kind: OverrideKind
    expires: float  # wall-clock seconds
    reason: str
    policy: Policy | None = None
    body: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape (``mtasts resolver query --json`` key ``override``)."""
        expires = dt.datetime.fromtimestamp(self.expires, dt.UTC).isoformat(timespec="seconds")
        return {
            "action": self.kind.value,
            "expires": expires.replace("+00:00", "Z"),
            "reason": self.reason,
            "mx": None if self.policy is None else list(self.policy.mx),
        }


def active(overrides: Mapping[str, Override], domain: str, now: float) -> Override | None:
    """The override in force for ``domain`` (canonical) at ``now``, or ``None`` (none, or expired)."""
    override = overrides.get(domain)
    return override if override is not None and now < override.expires else None


def parse_overrides(text: str) -> dict[str, Override]:
    """The overrides of a TOML document (``[[override]]`` tables), by canonical domain.

    Raises :class:`OverrideError` on anything wrong: a daemon must not start (or reload) with
    half of an operator's decisions silently dropped."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OverrideError(f"not valid TOML: {exc}") from exc
    unknown = set(document) - {"override"}
    if unknown:
        raise OverrideError(f"unknown top-level key {sorted(unknown)[0]!r} (expected [[override]] tables)")
    tables = document.get("override", [])
    if not isinstance(tables, list):
        raise OverrideError("'override' must be an array of tables ([[override]])")
    found: dict[str, Override] = {}
    for number, table in enumerate(tables, 1):
        override = _one(table, f"override #{number}")
        if override.domain in found:
            raise OverrideError(f"override #{number}: {override.domain} has two overrides")
        found[override.domain] = override
    return found


def _one(table: Any, where: str) -> Override:
    if not isinstance(table, dict):
        raise OverrideError(f"{where}: not a table")
    allowed = {"domain", "action", "expires", "reason", "mx", "policy"}
    extra = set(table) - allowed
    if extra:
        raise OverrideError(f"{where}: unknown key {sorted(extra)[0]!r}")
    raw_domain = table.get("domain")
    if not isinstance(raw_domain, str):
        raise OverrideError(f"{where}: 'domain' is required (a mail domain)")
    domain = classify_key(raw_domain).domain
    if domain is None:
        raise OverrideError(f"{where}: {raw_domain!r} is not a mail domain")
    where = f"{where} ({domain})"
    try:
        kind = OverrideKind(str(table.get("action")))
    except ValueError:
        choices = ", ".join(k.value for k in OverrideKind)
        raise OverrideError(f"{where}: 'action' must be one of {choices}") from None
    expires = table.get("expires")
    if not isinstance(expires, dt.datetime):
        raise OverrideError(f"{where}: 'expires' is required, a TOML date-time such as 2026-12-31T00:00:00Z")
    if expires.tzinfo is None:
        raise OverrideError(f"{where}: 'expires' needs a time zone (e.g. 2026-12-31T00:00:00Z)")
    reason = table.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise OverrideError(f"{where}: 'reason' is required (why, and who decided)")
    policy: Policy | None = None
    body: bytes | None = None
    mx = table.get("mx")
    text = table.get("policy")
    if kind is OverrideKind.FORCE_ENFORCE:
        if not isinstance(mx, list) or not mx or not all(isinstance(p, str) for p in mx):
            raise OverrideError(f"{where}: force-enforce needs 'mx', a non-empty list of patterns")
        try:
            policy = Policy(Mode.ENFORCE, _FORCED_MAX_AGE, tuple(mx))
        except ParseError as exc:
            raise OverrideError(f"{where}: 'mx': {exc}") from exc
    elif mx is not None:
        raise OverrideError(f"{where}: 'mx' is only for force-enforce")
    if kind is OverrideKind.PIN:
        if not isinstance(text, str):
            raise OverrideError(f"{where}: pin needs 'policy', the text of a policy file")
        try:
            policy = parse_policy(text)
        except ParseError as exc:
            raise OverrideError(f"{where}: 'policy' is not a valid policy: {exc}") from exc
        body = text.encode()
    elif text is not None:
        raise OverrideError(f"{where}: 'policy' is only for pin")
    return Override(domain, kind, expires.timestamp(), reason.strip(), policy, body)
