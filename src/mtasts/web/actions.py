"""The publish actions of the domain page: apply the configuration, advance to enforce, retire.

Each action is ``mtasts publish``'s, with the same guards and the same steps: the plan is
:func:`mtasts.publish.actions.plan_of` (the pure planner with its guards) on what
:func:`~mtasts.publish.actions.read_histories` and :func:`~mtasts.publish.actions.gather_live`
found, and it is carried out by :func:`~mtasts.publish.actions.carry_out` (reload the running
``publish serve`` through its admin listener, verify from outside, record, publish the id by
RFC 2136, confirm), exactly as ``apply`` and ``retire`` do. Nothing is decided here but which
configuration entry an action plans with:

- **apply**: the entry as configured (what ``mtasts publish apply DOMAIN`` does);
- **enforce**: the entry with ``mode = "enforce"`` (:func:`~mtasts.publish.actions.enforce_entry`);
  the configuration file is edited only once the guards let the change through, and put back
  when the run then did nothing;
- **retire**: ``mtasts publish retire DOMAIN``: ``mode = "none"`` with a short ``max_age`` first,
  then, run again once no sender can hold an earlier policy, the record deleted and the name
  no longer served (the entry commented out of the file). The short ``max_age`` is ``mtasts web
  serve --retire-max-age`` (``publish retire --max-age``'s default, a day), or the confirmation
  form's field (``?max_age=``; the JSON's ``max_age``), checked here with the CLI's bounds.

Two steps, as a confirmation: ``GET /domains/D/actions/A`` shows the plan (steps, guards,
refusals, notes, the configuration edit it makes) to anyone who may see the domain page, with
the button for admins only; the ``POST`` (CSRF token, admin role: :func:`require_role`) plans
again and carries it out only if the plan is still the one shown (:attr:`Preview.fingerprint`:
the target, the body and the kinds of steps and of refusing guards), else it shows the new
plan. A refusing guard is overridden only with a reason (``--force --reason``), which the
history keeps. One action runs at a time per app. Every POST that reaches an action is written
to the audit trail (``web_audit``: who, when, what, the outcome), shown to admins on the domain
page and by ``GET /api/audit``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mtasts.web.accounts import AuditEntry, Role
from mtasts.web.auth import Auth, identity_of, require_role
from mtasts.web.i18n import N_, Reason

if TYPE_CHECKING:
    from mtasts.i18n import Translated, Translator
    from mtasts.publish.actions import Known
    from mtasts.publish.apply import Applied
    from mtasts.publish.config import Config, DomainConfig
    from mtasts.publish.rollout import LiveState, Plan, Rules
    from mtasts.store.store import ReportStore
    from mtasts.web.reports import Page, ReportService
    from mtasts.web.settings import WebSettings

__all__ = [
    "ACTION_TITLES",
    "ActionKind",
    "ActionService",
    "Performed",
    "Preview",
    "action_routes",
    "domain_audit",
    "translate_list",
]

_MAX_BODY = 16 * 1024  # the forms and JSON of this module are a few hundred bytes
_AUDIT_SHOWN = 50
_LIST_SPAN = 4  # the most "; "-separated pieces one sentence of a list is made of ("refused: guard; needs N")


class ActionKind(StrEnum):
    """The actions; the values are in the URLs and the audit trail (``publish-<value>``)."""

    APPLY = "apply"
    ENFORCE = "enforce"
    RETIRE = "retire"


ACTION_TITLES: Final = {
    ActionKind.APPLY: N_("Apply the configuration"),
    ActionKind.ENFORCE: N_("Advance to enforce"),
    ActionKind.RETIRE: N_("Retire"),
}
ACTION_EXPLANATIONS: Final = {
    ActionKind.APPLY: N_(
        "Serve what the publish configuration says for this domain, as mtasts publish apply does: reload the "
        "policy host, verify the body from outside, record it, then publish its id."
    ),
    ActionKind.ENFORCE: N_(
        'Set mode = "enforce" in the publish configuration and apply it, once the guards allow it: enough days in '
        "testing, reports from enough organisations, no failures, and the live check of every MX."
    ),
    ActionKind.RETIRE: N_(
        'Take the domain out of MTA-STS in the safe order, as mtasts publish retire does: serve mode "none" with a '
        "new id, wait until no sender can hold the earlier policy, then delete the record and stop serving."
    ),
}
OUTCOME_TITLES: Final = {
    "done": N_("Done"),
    "set-record": N_("Stopped: a DNS record waits for you"),
    "waiting": N_("Waiting"),
    "refused": N_("Refused: nothing was changed"),
    "failed": N_("A step failed: nothing after it was done"),
    "changed": N_("The plan changed since it was shown: nothing was done"),
    "stopped": N_("Not possible: nothing was done"),
}
_NOT_ATTEMPTED: Final = frozenset({"refused", "changed", "stopped"})


class Unavailable(Exception):
    """The actions cannot be planned at all here (no publish configuration, no SQL store)."""


@dataclass(frozen=True, slots=True)
class Preview:
    """What an action would do now: its plan, or why it cannot be planned (``stop``, English)."""

    domain: str
    action: ActionKind
    plan: Plan | None = None
    stop: str | None = None
    edit: str | None = None  # the configuration edit made before the plan is carried out
    max_age: int | None = None  # retire: the max_age of the mode none policy it plans with
    config_path: Path | None = None
    known: Known | None = field(default=None, repr=False)  # what the plan was made from
    live: LiveState | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """What the confirmation confirms: the target, the body, the kinds of steps and of
        refusing guards (not the id minted from the clock, nor the wording of the guards)."""
        plan = self.plan
        facts: list[object] = [self.action.value, self.domain, self.stop, self.edit]
        if plan is not None:
            failing = sorted(g.guard.value for g in plan.guards if not g.passed)
            facts += [
                None if plan.target is None else plan.target.value,
                plan.sha256,
                [s.action.value for s in plan.steps],
                failing,
                bool(plan.refusals),
            ]
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /api/domains/{domain}/actions/{action}`` (in /openapi.json)."""
        return {
            "domain": self.domain,
            "action": self.action.value,
            "stop": self.stop,
            "edit": self.edit,
            "max_age": self.max_age,
            "plan": None if self.plan is None else self.plan.to_dict(),
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class Performed:
    """How an action's POST ended: ``outcome`` is :class:`~mtasts.publish.apply.Outcome`'s value,
    or ``changed`` (the plan is not the one shown) or ``stopped`` (it cannot be planned)."""

    domain: str
    action: ActionKind
    outcome: str
    message: str
    done: tuple[str, ...] = ()
    next: tuple[ActionKind, datetime | None] | None = None  # the action to run again, not before when
    forced_reason: str | None = None

    @property
    def attempted(self) -> bool:
        """Whether anything was tried (else nothing changed, by construction)."""
        return self.outcome not in _NOT_ATTEMPTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "action": self.action.value,
            "outcome": self.outcome,
            "message": self.message,
            "done": list(self.done),
            "next": None
            if self.next is None
            else {
                "action": self.next[0].value,
                "not_before": None if self.next[1] is None else self.next[1].isoformat(),
            },
            "forced_reason": self.forced_reason,
        }

    def _not_before(self) -> str | None:
        return None if self.next is None or self.next[1] is None else self.next[1].isoformat()

    def audit_detail(self) -> str:
        """The audit trail's line: the outcome, its message, each step done, the override."""
        said = self.message and self.message != self.outcome
        parts = [f"{self.outcome}: {self.message}" if said else self.outcome, *self.done]
        if self.forced_reason:
            parts.append(f"guard overridden: {self.forced_reason}")
        return "; ".join(parts)


def translate_list(translator: Translator, text: str) -> Translated:
    """``text``, sentences joined by ``"; "`` (the audit trail's entry, a refused run's message:
    each refusal and each step done), in ``translator``'s language. A sentence may hold ``"; "``
    itself ("in testing for 0 days since ...; needs 14 days"), so the pieces are grouped: from
    each piece, the longest run of at most :data:`_LIST_SPAN` pieces that translates whole. At
    most that many tries per piece: the cost stays linear in the text. Entries do not change,
    so the last few hundred are remembered (the domain page lists up to 50 on every view)."""
    return _translate_list(translator, text)


@lru_cache(maxsize=512)
def _translate_list(translator: Translator, text: str) -> Translated:
    from mtasts.i18n import Translated  # noqa: PLC0415

    if "; " not in text:
        return translator.translate(text)
    pieces = text.split("; ")
    out: list[str] = []
    complete = True
    start = 0
    while start < len(pieces):
        for end in range(min(len(pieces), start + _LIST_SPAN), start, -1):
            part = translator.translate("; ".join(pieces[start:end]))
            if part.complete or end == start + 1:
                break
        out.append(part.text)
        complete = complete and part.complete
        start = end
    return Translated("; ".join(out), complete)


class ActionService:
    """Plans and carries out the actions of one app (one at a time), on its report store (the
    published history lives there) and the publish configuration of ``settings``."""

    def __init__(self, settings: WebSettings, reports: ReportService) -> None:
        self.settings = settings
        self.reports = reports
        # the guards' thresholds: mtasts web serve's --testing-days and --reporters, as mtasts publish apply's
        self.rules = settings.publish_rules
        self._lock = asyncio.Lock()

    def clock(self) -> datetime:
        """The roll-out clock: the report service's (tests step it), which the domain page uses."""
        return self.reports.clock()

    def _config(self) -> tuple[Path, Config]:
        from mtasts.publish.config import ConfigError  # noqa: PLC0415
        from mtasts.publish.snapshot import read_config  # noqa: PLC0415
        from mtasts.web.domains import config_path  # noqa: PLC0415

        path, why = config_path(self.settings)
        if path is None:
            raise Unavailable(why)
        try:
            return path, read_config(path)
        except ConfigError as exc:
            raise Unavailable(f"the publish configuration {path} cannot be used: {exc}") from None

    def _store(self) -> ReportStore:
        from mtasts.store.errors import StoreMissing  # noqa: PLC0415
        from mtasts.store.store import ReportStore  # noqa: PLC0415

        try:
            store = self.reports.store()
        except StoreMissing as exc:
            raise Unavailable(exc.message) from None
        if not isinstance(store, ReportStore):
            raise Unavailable("the published history is kept in an SQL store only (mtasts web serve --db URL)")
        return store

    def rules_for(self, max_age: int | None) -> Rules:
        """The rules an action plans with: the app's, with ``max_age`` (retire's short
        ``max_age``, already checked by :func:`parse_max_age`) when given."""
        return self.rules if max_age is None else replace(self.rules, retire_max_age=max_age)

    def _known(self, config: Config, name: str, now: datetime, rules: Rules) -> Known:
        """Runs in a worker thread: the store is synchronous."""
        from mtasts.publish.actions import read_histories  # noqa: PLC0415
        from mtasts.publish.history import SqlPublishHistory  # noqa: PLC0415
        from mtasts.store.errors import translate_store_errors  # noqa: PLC0415

        store = self._store()
        with translate_store_errors(store.url):
            return read_histories(config, SqlPublishHistory(store), store, [name], now=now, rules=rules)

    def _target(
        self, action: ActionKind, name: str, entry: DomainConfig | None, path: Path, rules: Rules
    ) -> tuple[DomainConfig | None, str | None, str | None]:
        """(the entry the action plans with, the configuration edit it needs, why it cannot)."""
        from mtasts.core.policy import Mode  # noqa: PLC0415
        from mtasts.publish.actions import enforce_entry, retire_edit_needed  # noqa: PLC0415
        from mtasts.publish.rollout import retire_entry  # noqa: PLC0415

        if action is ActionKind.APPLY:
            return entry, None, None
        if entry is None:
            if action is ActionKind.ENFORCE:
                return None, None, f"{name} is not in {path}: add its entry (mtasts publish init) first"
            return None, None, None  # retire: retire_stop says whether that is a problem
        if action is ActionKind.ENFORCE:
            if entry.mode is Mode.NONE:
                return None, None, f'{name} is configured with mode = "none" (retiring) in {path}'
            if entry.mode is Mode.ENFORCE:
                return entry, None, None
            return enforce_entry(entry), f'mode = "enforce" in the entry of {name} in {path}', None
        if not retire_edit_needed(entry, rules):
            return entry, None, None
        wanted = retire_entry(entry, rules)
        return wanted, f'mode = "none", max_age = {wanted.max_age} in the entry of {name} in {path}', None

    async def preview(self, action: ActionKind, name: str, *, max_age: int | None = None) -> Preview:
        """The plan of ``action`` on ``name`` now (gathering what a sender sees: DNS, the policy
        fetched from outside, for enforce the live inspection of the MX), or why it cannot be
        planned here (``stop``: no publish configuration, no SQL store, ...); trouble reaching
        the store is a ``StoreError``. ``max_age``: retire's short one (else the app's)."""
        from mtasts.publish.actions import gather_live, plan_of, retire_stop, unknown_names, with_entry  # noqa: PLC0415

        now = self.clock()
        rules = self.rules_for(max_age if action is ActionKind.RETIRE else None)
        shown = rules.retire_max_age if action is ActionKind.RETIRE else None
        try:
            path, config = await asyncio.to_thread(self._config)
        except Unavailable as exc:
            return Preview(name, action, stop=str(exc), max_age=shown)
        entry = config.domain(name)
        wanted, edit, stop = self._target(action, name, entry, path, rules)
        if stop is not None:
            return Preview(name, action, stop=stop, config_path=path, max_age=shown)
        planned = config if wanted is None or wanted == entry else with_entry(config, wanted)
        try:
            known = await asyncio.to_thread(self._known, planned, name, now, rules)
        except Unavailable as exc:
            return Preview(name, action, stop=str(exc), config_path=path, max_age=shown)
        if action is ActionKind.RETIRE:
            stopped = retire_stop(name, path, known.histories[name], entry)
            if stopped is not None:
                return Preview(name, action, stop=stopped[1], config_path=path, max_age=shown)
        if unknown_names(known):
            stop = f"{name}: not in the configuration and never published"
            return Preview(name, action, stop=stop, config_path=path, max_age=shown)
        live = (await gather_live([name], self.settings.network, now, inspect=known))[name]
        plan = plan_of(known, name, live, now=now, rules=rules)
        return Preview(name, action, plan, None, edit, shown, path, known, live)

    async def perform(
        self, action: ActionKind, name: str, *, fingerprint: str, reason: str | None, max_age: int | None = None
    ) -> Performed:
        """Plan again and, if the plan is the one confirmed (``fingerprint``), carry it out;
        ``reason`` overrides a refusing guard; ``max_age``: retire's short one. One action at a time."""
        async with self._lock:
            return await self._perform(action, name, fingerprint=fingerprint, reason=reason, max_age=max_age)

    async def _perform(
        self, action: ActionKind, name: str, *, fingerprint: str, reason: str | None, max_age: int | None
    ) -> Performed:
        from mtasts.publish.actions import (  # noqa: PLC0415
            CannotRun,
            admin_address,
            carry_out,
            config_stopper,
            read_tsig_secret,
            retire_progress,
            write_config_file,
        )
        from mtasts.publish.history import SqlPublishHistory  # noqa: PLC0415

        preview = await self.preview(action, name, max_age=max_age)
        rules = self.rules_for(preview.max_age)
        if preview.stop is not None:
            return Performed(name, action, "stopped", preview.stop)
        if preview.fingerprint != fingerprint:
            return Performed(name, action, "changed", "the plan is not the one shown any more: look at it again")
        plan, path = preview.plan, preview.config_path
        assert plan is not None
        assert path is not None
        assert preview.known is not None
        assert preview.live is not None
        known: Known = preview.known
        if plan.refusals and not reason:
            return Performed(name, action, "refused", "; ".join(plan.refusals))
        try:
            secret = read_tsig_secret(known.config)
        except CannotRun as exc:
            return Performed(name, action, "failed", str(exc))
        now = self.clock()
        configured: list[str] = []
        original: str | None = None
        if preview.edit is not None:
            try:
                original, known = await asyncio.to_thread(self._edit, action, name, path, known, rules)
            except (OSError, ValueError) as exc:
                return Performed(name, action, "failed", f"cannot edit {path}: {getattr(exc, 'strerror', None) or exc}")
            configured.append(f"configured: {preview.edit}")
        store = await asyncio.to_thread(self._store)
        settings = self.settings
        results: list[Applied] = await carry_out(
            known,
            [name],
            history=SqlPublishHistory(store),  # not entered: the service keeps the store open
            secret=secret,
            settings=settings.network,
            admin=admin_address(known.config, settings.publish_admin, off=settings.publish_admin_off),
            timeout=settings.network.timeout,
            now=now,
            clock=self.clock,
            rules=rules,
            reason=reason,
            stop_serving=config_stopper(path, now, write_config_file) if action is ActionKind.RETIRE else None,
            live={name: preview.live},
        )
        (result,) = results
        if original is not None and not result.done:
            await asyncio.to_thread(write_config_file, path, original)  # nothing happened: the file as it was
            configured = []
        following: tuple[ActionKind, datetime | None] | None = None
        if action is ActionKind.RETIRE and result.outcome.value == "done":
            history = await asyncio.to_thread(lambda: SqlPublishHistory(store).entries(name))
            removed, safe_at = retire_progress(history, now)
            if not removed:
                following = (ActionKind.RETIRE, safe_at)  # again: from then, or now to delete the record
        return Performed(
            name,
            action,
            result.outcome.value,
            result.message,
            (*configured, *result.done),
            following,
            plan.forced_reason or (reason if plan.refusals else None),
        )

    def _edit(self, action: ActionKind, name: str, path: Path, known: Known, rules: Rules) -> tuple[str, Known]:
        """The configuration edit of ``action`` (a worker thread): (the text before, what is known
        with the file as written). ``ValueError`` when the file cannot be edited safely."""
        from mtasts.publish.actions import enforce_config_text, write_config_file  # noqa: PLC0415
        from mtasts.publish.retire import retire_config_text  # noqa: PLC0415
        from mtasts.publish.snapshot import read_config  # noqa: PLC0415

        text = path.read_text("utf-8")
        if action is ActionKind.ENFORCE:
            edited = enforce_config_text(text, path, name)
        else:
            edited = retire_config_text(text, path, name, rules)
        write_config_file(path, edited)
        return text, replace(known, config=read_config(path))


async def domain_audit(request: Request, domain: str) -> list[AuditEntry] | None:
    """The audit trail's entries about ``domain`` (newest first) for an admin; ``None`` for
    anyone else, and in an app without accounts."""
    auth = getattr(request.app.state, "auth", None)
    identity = identity_of(request)
    if not isinstance(auth, Auth) or identity is None or not identity.role.allows(Role.ADMIN):
        return None
    return await asyncio.to_thread(auth.accounts.audit_entries, limit=_AUDIT_SHOWN, domain=domain)


def _error(status: int, code: str, message: Reason | str) -> JSONResponse:
    """The API's error shape; its message is English (``str()`` of a :class:`Reason`)."""
    return JSONResponse({"error": {"code": code, "message": str(message)}}, status_code=status)


async def _body(request: Request) -> bytes | None:
    """The request body, or ``None`` when longer than :data:`_MAX_BODY`."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_ACTION_UNKNOWN: Final = N_("no such action: choose %(actions)s")
_ACTIONS_PAGE: Final = N_("Publish actions")  # the heading of an action page that cannot be shown

_REASON_MISSING: Final = N_("To override the guards, tick the box and say why (the history keeps the reason).")


_MAX_AGE_INVALID: Final = N_(
    "The max_age of the mode none policy is a whole number of seconds, 0 or more (as mtasts publish retire --max-age)."
)


def parse_max_age(text: str | None) -> tuple[int | None, bool]:
    """Retire's ``max_age`` from a form field or the query (``mtasts publish retire --max-age``'s
    bounds: a whole number of seconds, at least 0): (the value or ``None`` when not given,
    whether it is valid)."""
    if text is None or not text.strip():
        return None, True
    text = text.strip()
    if not text.isascii() or not text.isdigit():  # no sign, no "1e5", no "١٢"
        return None, False
    try:
        return int(text), True
    except ValueError:  # more digits than int() converts (4,300)
        return None, False


def _force_reason(force: bool, reason: str) -> tuple[str | None, bool]:
    """(the override's reason or ``None``, whether the pair is valid): ``--force`` and
    ``--reason`` go together, and a reason says something."""
    reason = reason.strip()
    if force != bool(reason):
        return None, False
    return (reason[:500] if reason else None), True


def action_routes(
    settings: WebSettings, page: Page, reports: ReportService, auth: Auth | None
) -> tuple[list[BaseRoute], ActionService]:
    """The routes of the actions (pages and JSON) and their service, for the app's route list."""
    from mtasts.store.errors import StoreError  # noqa: PLC0415
    from mtasts.web.reports import domain_param  # noqa: PLC0415

    service = ActionService(settings, reports)

    def parse(request: Request) -> tuple[str, ActionKind] | tuple[int, str, Reason | str]:
        """(the domain, the action), or (status, code, why): ``str(why)`` is the JSON's English,
        a page says it in its language (the ``reason_text`` filter)."""
        name, why = domain_param(request.path_params["domain"])
        if name is None:
            return 400, "domain-invalid", why
        try:
            return name, ActionKind(request.path_params["action"])
        except ValueError:
            return 404, "action-unknown", Reason(_ACTION_UNKNOWN, {"actions": ", ".join(a.value for a in ActionKind)})

    async def planned(name: str, action: ActionKind, max_age: int | None = None) -> Preview | tuple[int, str, str]:
        try:
            return await service.preview(action, name, max_age=max_age)
        except StoreError as exc:
            return 503, "store-unavailable", exc.message

    def unshown(request: Request, parsed: tuple[int, str, Reason | str]) -> Response:
        """The page of an address that names no domain or no action: why, in the page's language."""
        name, _ = domain_param(request.path_params["domain"])
        return page(request, "reports_unavailable.html", parsed[0], message=parsed[2], **unshown_title(name))

    def unshown_title(name: str | None) -> dict[str, str | None]:
        return {"heading": _ACTIONS_PAGE, "subject": name}

    def links(request: Request, name: str, action: ActionKind) -> dict[str, str]:
        return {
            "domain_url": str(request.url_for("domain_page", domain=name).path),
            "submit_url": str(request.url_for("action_submit", domain=name, action=action.value).path),
            "page_url": str(request.url_for("action_page", domain=name, action=action.value).path),
            "json_url": str(request.url_for("api_action", domain=name, action=action.value).path),
        }

    def is_admin(request: Request) -> bool:
        identity = identity_of(request)
        return identity is not None and identity.role.allows(Role.ADMIN)

    def show(request: Request, preview: Preview, status: int = 200, error: str | None = None) -> Response:
        return page(
            request,
            "action.html",
            status,
            preview=preview,
            title=ACTION_TITLES[preview.action],
            explanation=ACTION_EXPLANATIONS[preview.action],
            may_act=is_admin(request) and auth is not None,
            error=error,
            **links(request, preview.domain, preview.action),
        )

    async def action_page(request: Request) -> Response:
        parsed = parse(request)
        if len(parsed) == 3:
            return unshown(request, parsed)
        name, action = parsed
        max_age, valid = parse_max_age(request.query_params.get("max_age"))
        preview = await planned(name, action, max_age)
        if isinstance(preview, tuple):
            return page(request, "reports_unavailable.html", preview[0], message=preview[2], **unshown_title(name))
        return show(request, preview) if valid else show(request, preview, 400, error=_MAX_AGE_INVALID)

    async def act(
        request: Request, name: str, action: ActionKind, fingerprint: str, reason: str | None, max_age: int | None
    ) -> Performed:
        performed = await service.perform(action, name, fingerprint=fingerprint, reason=reason, max_age=max_age)
        identity = identity_of(request)
        if auth is not None and identity is not None:
            await asyncio.to_thread(
                auth.accounts.audit,
                identity.name,
                f"publish-{action.value}",
                performed.audit_detail(),
                now=auth.now(),
                domain=name,
            )
        return performed

    @require_role(Role.ADMIN)
    async def action_submit(request: Request) -> Response:
        parsed = parse(request)
        if len(parsed) == 3:
            return unshown(request, parsed)
        name, action = parsed
        body = await _body(request)
        if body is None:
            return page(
                request, "reports_unavailable.html", 413, message="this form is too large", **unshown_title(name)
            )
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)

        def one(key: str) -> str:
            values = fields.get(key, [])
            return values[0] if values else ""

        reason, valid = _force_reason(one("force") == "1", one("reason"))
        max_age, max_age_valid = parse_max_age(one("max_age"))
        if not valid or not max_age_valid:
            preview = await planned(name, action, max_age)
            if isinstance(preview, tuple):
                return page(request, "reports_unavailable.html", preview[0], message=preview[2], **unshown_title(name))
            return show(request, preview, 400, error=_REASON_MISSING if not valid else _MAX_AGE_INVALID)
        try:
            performed = await act(request, name, action, one("fingerprint"), reason, max_age)
        except Unavailable as exc:
            return page(request, "reports_unavailable.html", 503, message=str(exc), **unshown_title(name))
        except StoreError as exc:
            return page(request, "reports_unavailable.html", 503, message=exc.message, **unshown_title(name))
        return page(
            request,
            "action_done.html",
            200 if performed.attempted else 409,
            performed=performed,
            title=ACTION_TITLES[action],
            outcome_title=OUTCOME_TITLES[performed.outcome],
            **links(request, name, action),
        )

    async def api_action(request: Request) -> Response:
        parsed = parse(request)
        if len(parsed) == 3:
            return _error(*parsed)
        max_age, valid = parse_max_age(request.query_params.get("max_age"))
        if not valid:
            return _error(400, "max-age-invalid", "max_age is a whole number of seconds, 0 or more")
        preview = await planned(*parsed, max_age)
        if isinstance(preview, tuple):
            return _error(*preview)
        return Response(json.dumps(preview.to_dict(), ensure_ascii=False), media_type="application/json")

    @require_role(Role.ADMIN)
    async def api_action_submit(request: Request) -> Response:
        parsed = parse(request)
        if len(parsed) == 3:
            return _error(*parsed)
        name, action = parsed
        body = await _body(request)
        if body is None:
            return _error(413, "body-too-large", f"the body is longer than {_MAX_BODY} bytes")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str):
            return _error(400, "body-invalid", 'send {"fingerprint": ..., "force": false, "reason": ""} as JSON')
        force, text = data.get("force", False), data.get("reason", "")
        if not isinstance(force, bool) or not isinstance(text, str):
            return _error(400, "body-invalid", "force is true or false, reason a string")
        reason, valid = _force_reason(force, text)
        if not valid:
            return _error(400, "reason-missing", "force and reason go together: say why the guard is overridden")
        max_age = data.get("max_age")
        if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0):
            return _error(400, "max-age-invalid", "max_age is a whole number of seconds, 0 or more")
        try:
            performed = await act(request, name, action, data["fingerprint"], reason, max_age)
        except Unavailable as exc:
            return _error(503, "publish-unavailable", str(exc))
        except StoreError as exc:
            return _error(503, "store-unavailable", exc.message)
        return JSONResponse(performed.to_dict(), status_code=200 if performed.attempted else 409)

    routes: list[BaseRoute] = [
        Route("/domains/{domain}/actions/{action}", action_page, methods=["GET"], name="action_page"),
        Route("/domains/{domain}/actions/{action}", action_submit, methods=["POST"], name="action_submit"),
        Route("/api/domains/{domain}/actions/{action}", api_action, methods=["GET"], name="api_action"),
        Route("/api/domains/{domain}/actions/{action}", api_action_submit, methods=["POST"], name="api_action_submit"),
    ]
    return routes, service
