"""Carry out a roll-out :class:`~mtasts.publish.rollout.Plan`: a short driver loop over the
pure plan, every effect behind :class:`Effects`.

The plan's steps come in RFC 8461 §8 order (serve, verify, record, publish the TXT, confirm);
the loop runs them one by one and stops at the first that does not succeed, so nothing after a
failed step happens: a body that does not verify is never recorded and its id never reaches
DNS. Where the TXT record cannot be set here (no ``[dns]`` section), the run stops after
printing the exact record: the user sets it and runs ``apply`` again, which then finds the body
served and recorded and only the id left to confirm.

Retiring (``mtasts publish retire``) adds two steps once no sender can hold an earlier policy:
**delete** the ``_mta-sts`` record (by RFC 2136 where ``[dns]`` is configured, then read back
until no ``v=STSv1`` record is left; else the exact record is printed and the run stops), then
**stop serving** (the driver's caller takes the domain out of the host and checks from outside
that no policy is served any more) and end the domain's last body in the history, which makes
it ``removed``. Without a way to stop serving (``apply``), the run stops there and says which
command does it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from mtasts.core.policy import parse_policy
from mtasts.publish.history import HistoryConflict, PublishHistory, Served, body_sha256
from mtasts.publish.plan import DnsRecord
from mtasts.publish.rollout import Action, Plan

__all__ = ["Applied", "Effects", "HostEffects", "Outcome", "StepFailed", "apply_plan"]


class StepFailed(Exception):
    """An effect could not be carried out; the message says why, in one line."""


class Outcome(StrEnum):
    """How a domain's run ended (the CLI maps these to exit codes)."""

    DONE = "done"  # every step carried out (or nothing to do)
    SET_RECORD = "set-record"  # stopped: the user sets the printed TXT record, then runs apply again
    WAITING = "waiting"  # stopped: a wait, or a retire step apply does not do yet
    REFUSED = "refused"  # a guard refused the change: nothing was done
    FAILED = "failed"  # a step failed: nothing after it was done


@dataclass(frozen=True, slots=True)
class Applied:
    """What a run did for one domain (``done``: one line per step carried out) and why it ended.

    ``refusals``: one line per refusing guard (its value and what it needs) when ``outcome`` is
    :attr:`Outcome.REFUSED`; ``message`` then joins them in one line (the web's audit trail)."""

    domain: str
    done: tuple[str, ...]
    outcome: Outcome
    message: str = ""
    refusals: tuple[str, ...] = ()


class Effects(Protocol):
    """The world the driver acts on; each method raises :class:`StepFailed` when it cannot."""

    async def serve(self) -> str:
        """Make the policy host serve the configuration; a line saying what it serves."""
        ...

    async def fetch(self, domain: str) -> bytes:
        """The policy body of ``domain`` as a sender fetches it."""
        ...

    def record(self, entry: Served) -> None: ...

    @property
    def can_publish(self) -> bool:
        """Whether :meth:`publish_txt` can set the record (else the user does)."""
        ...

    async def publish_txt(self, record: DnsRecord) -> None: ...

    async def confirm_txt(self, record: DnsRecord) -> tuple[str, ...]:
        """The TXT records at the record's name, from the authoritative server."""
        ...

    async def delete_txt(self, record: DnsRecord) -> None:
        """Delete every TXT record at the record's name (only when :attr:`can_publish`)."""
        ...

    @property
    def can_stop_serving(self) -> bool:
        """Whether :meth:`stop_serving` can take the domain out of the host (else the run stops)."""
        ...

    async def stop_serving(self, domain: str) -> str:
        """Make the host stop serving ``domain`` and check it from outside; a line saying so."""
        ...

    def end(self, domain: str, at: datetime) -> Served | None:
        """The domain's last body stops being served at ``at`` (the history: ``removed``)."""
        ...


async def apply_plan(plan: Plan, effects: Effects, *, now: datetime, zone_line: Callable[[DnsRecord], str]) -> Applied:
    """Run ``plan``'s steps in order; stop at the first that does not succeed."""
    name = plan.domain
    if plan.refusals:
        return Applied(name, (), Outcome.REFUSED, "; ".join(plan.refusals), plan.refusals)
    done: list[str] = []

    def stop(outcome: Outcome, message: str) -> Applied:
        return Applied(name, tuple(done), outcome, message)

    for step in plan.steps:
        try:
            if step.action is Action.SERVE:
                done.append(f"served: {await effects.serve()}")
            elif step.action is Action.VERIFY:
                assert plan.body is not None
                fetched = await effects.fetch(name)
                if fetched != plan.body:
                    return stop(
                        Outcome.FAILED,
                        f"verify failed: mta-sts.{name} serves another body (sha256 {body_sha256(fetched)[:12]}) "
                        f"than the new one (sha256 {body_sha256(plan.body)[:12]}); nothing recorded, DNS untouched",
                    )
                done.append(f"verified: mta-sts.{name} serves the new body (sha256 {body_sha256(fetched)[:12]})")
            elif step.action is Action.RECORD:
                assert plan.body is not None
                assert step.policy_id is not None
                policy = parse_policy(plan.body)
                entry = Served(
                    name, step.policy_id, plan.body, policy.mode, policy.max_age, now, forced_reason=step.forced_reason
                )
                try:
                    effects.record(entry)
                except HistoryConflict as exc:
                    raise StepFailed(str(exc)) from None
                forced = f" (guard overridden: {step.forced_reason})" if step.forced_reason else ""
                done.append(f"recorded: id {step.policy_id} in the history{forced}")
            elif step.action is Action.PUBLISH_TXT:
                assert step.record is not None
                if not effects.can_publish:
                    return stop(
                        Outcome.SET_RECORD,
                        f"set this record, then run apply again: {zone_line(step.record)}",
                    )
                await effects.publish_txt(step.record)
                done.append(f"published: {zone_line(step.record)} (RFC 2136 update)")
            elif step.action is Action.CONFIRM_TXT:
                assert step.record is not None
                answers = await effects.confirm_txt(step.record)
                sts = [a for a in answers if a.lower().startswith("v=stsv1")]
                if sts != [step.record.value]:
                    seen = ", ".join(repr(a) for a in sts) or "no v=STSv1 record"
                    return stop(Outcome.FAILED, f"confirm failed: _mta-sts.{name} answers {seen}")
                done.append(f"confirmed: _mta-sts.{name} answers id={step.policy_id}")
            elif step.action is Action.DELETE_RECORDS:
                owner = step.record.name if step.record is not None else f"_mta-sts.{name}"
                if not effects.can_publish:
                    what = zone_line(step.record) if step.record is not None else f"every TXT record at {owner}"
                    return stop(Outcome.SET_RECORD, f"delete this record, then run the command again: {what}")
                target = step.record or DnsRecord(owner, "TXT", "")
                await effects.delete_txt(target)
                left = [a for a in await effects.confirm_txt(target) if a.lower().startswith("v=stsv1")]
                if left:
                    return stop(Outcome.FAILED, f"delete failed: {owner} still answers {', '.join(map(repr, left))}")
                done.append(f"deleted: the TXT record at {owner} (RFC 2136 update); no v=STSv1 record is left")
            elif step.action is Action.STOP_SERVING:
                if not effects.can_stop_serving:
                    return stop(Outcome.WAITING, f"{step.text} (mtasts publish retire {name} carries this out)")
                done.append(f"stopped: {await effects.stop_serving(name)}")
                ended = effects.end(name, now)
                if ended is not None:
                    until = f"{ended.until:%Y-%m-%d %H:%M} UTC"
                    done.append(f"recorded: {name} removed (id {ended.policy_id} served until {until})")
            else:  # wait: nothing to do before its time
                return stop(Outcome.WAITING, step.text)
        except StepFailed as exc:
            return stop(Outcome.FAILED, f"{step.action.value} failed: {exc}")
    return stop(Outcome.DONE, "nothing to do" if not plan.steps else "done")


class HostEffects:
    """:class:`Effects` on the real world: the running policy host (``reload``, asked once per
    run however many domains need it), the inspector's fetch, the history, and RFC 2136."""

    def __init__(
        self,
        *,
        reload: Callable[[], Awaitable[str]],
        fetch: Callable[[str], Awaitable[bytes]],
        history: PublishHistory,
        publish: Callable[[DnsRecord], Awaitable[None]] | None,
        confirm: Callable[[DnsRecord], Awaitable[tuple[str, ...]]] | None,
        delete: Callable[[DnsRecord], Awaitable[None]] | None = None,
        stop_serving: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        self._reload = reload
        self._reloaded: str | None = None
        self._fetch = fetch
        self._history = history
        self._publish = publish
        self._confirm = confirm
        self._delete = delete
        self._stop_serving = stop_serving

    async def serve(self) -> str:
        if self._reloaded is None:
            self._reloaded = await self._reload()
        return self._reloaded

    async def fetch(self, domain: str) -> bytes:
        return await self._fetch(domain)

    def record(self, entry: Served) -> None:
        self._history.record(entry)

    @property
    def can_publish(self) -> bool:
        return self._publish is not None

    async def publish_txt(self, record: DnsRecord) -> None:
        assert self._publish is not None
        await self._publish(record)

    async def confirm_txt(self, record: DnsRecord) -> tuple[str, ...]:
        if self._confirm is None:
            raise StepFailed("no [dns] server to confirm the record with")
        return await self._confirm(record)

    async def delete_txt(self, record: DnsRecord) -> None:
        if self._delete is None:
            raise StepFailed("no [dns] server to delete the record on")
        await self._delete(record)

    @property
    def can_stop_serving(self) -> bool:
        return self._stop_serving is not None

    async def stop_serving(self, domain: str) -> str:
        assert self._stop_serving is not None
        return await self._stop_serving(domain)

    def end(self, domain: str, at: datetime) -> Served | None:
        return self._history.end(domain, at)
