"""Carry out a roll-out :class:`~mtasts.publish.rollout.Plan`: a short driver loop over the
pure plan, every effect behind :class:`Effects`.

The plan's steps come in RFC 8461 §8 order (serve, verify, record, publish the TXT, confirm);
the loop runs them one by one and stops at the first that does not succeed, so nothing after a
failed step happens: a body that does not verify is never recorded and its id never reaches
DNS. Where the TXT record cannot be set here (no ``[dns]`` section), the run stops after
printing the exact record: the user sets it and runs ``apply`` again, which then finds the body
served and recorded and only the id left to confirm.
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
    """What a run did for one domain (``done``: one line per step carried out) and why it ended."""

    domain: str
    done: tuple[str, ...]
    outcome: Outcome
    message: str = ""


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


async def apply_plan(plan: Plan, effects: Effects, *, now: datetime, zone_line: Callable[[DnsRecord], str]) -> Applied:
    """Run ``plan``'s steps in order; stop at the first that does not succeed."""
    name = plan.domain
    if plan.refusals:
        return Applied(name, (), Outcome.REFUSED, "; ".join(plan.refusals))
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
            else:  # wait, delete-records, stop-serving: not carried out by this increment
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
    ) -> None:
        self._reload = reload
        self._reloaded: str | None = None
        self._fetch = fetch
        self._history = history
        self._publish = publish
        self._confirm = confirm

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
