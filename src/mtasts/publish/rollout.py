"""The roll-out of one domain's policy, as a pure decision object (no sockets, no clock).

A domain moves ``draft → testing → enforce → retiring → removed``. Given the configuration
entry, the published history (:mod:`mtasts.publish.history`), what is live (the served body,
the ``_mta-sts`` TXT record, the MX hosts: plain data gathered by the caller), the report
evidence (plain data, see :func:`evidence_from_rows`) and ``now``, :func:`plan_rollout` says the
ordered next steps with their reasons, and :func:`domain_status` where the domain stands and
what comes next and when. ``mtasts publish plan`` and ``status`` are thin drivers around them;
``apply`` and ``retire`` carry the steps out (:mod:`mtasts.publish.apply`).

The order is RFC 8461 §8's, because each other order leaves senders with a wrong policy:

1. **serve** the new body (a sender that refetches now gets it);
2. **verify** it from outside, as a sender fetches it, byte for byte;
3. only then **publish** the new id in the ``_mta-sts`` TXT record (a sender seeing a new id
   refetches; had the id come first, it would cache the *old* body under the *new* id and keep
   it for ``max_age``);
4. **confirm** the TXT record from DNS.

Guards (:data:`GUARDS`, each a :class:`GuardCheck` with the value seen, the value required and
when time alone would make it pass): ``testing → enforce`` needs :attr:`Rules.testing_days` in
``testing``, reports from :attr:`Rules.reporters` organisations and no ``sts-*``, certificate or
STARTTLS failures for the listed MX in those days, every live MX listed, and the live inspector
predicting that a sender would deliver to every listed MX under the ``enforce`` body
(:class:`LiveInspection`: its sender verdict, gathered by the caller); ``max_age`` may
grow only once ``enforce`` has been served for its old value (so a mistake found in the first
days of enforce is still undone within the old, short, ``max_age``). ``force_reason`` overrides
a refusal and is carried into the step that records the body, so the history says why.

Removal: ``mode = "none"`` in the configuration retires a domain (``mtasts publish retire``
writes it, see :func:`retire_entry`): a ``none`` body with a short ``max_age`` and a new id is
served and announced, and kept until the longest ``max_age`` any sender may still hold has
passed (every earlier body's end of serving plus its ``max_age``), then the ``_mta-sts`` record
is deleted (the step carries the exact records) and the name stops being served (the history's
last body ends: the domain is ``removed``). A retiring domain taken out of the configuration
before then is the one dangerous shortcut: a sender holding the old ``enforce`` policy keeps it
when the host stops answering (RFC 8461 §5.1), so the plan says to put it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final

from mtasts.core.findings import Finding
from mtasts.core.mx import matching_pattern
from mtasts.core.policy import Mode, Policy, parse_policy
from mtasts.core.problems import ParseError
from mtasts.core.record import select_sts_record
from mtasts.core.tlsrpt_report import FailureRow, PolicyRow, ResultType
from mtasts.core.verdict import Delivery, Verdict
from mtasts.publish.config import DomainConfig
from mtasts.publish.history import Served, body_sha256, history_domain
from mtasts.publish.plan import RECORD_TTL, DnsRecord, policy_id_for

__all__ = [
    "BLOCKING_RESULT_TYPES",
    "GUARDS",
    "Action",
    "BlockingFailure",
    "DomainStatus",
    "Evidence",
    "Guard",
    "GuardCheck",
    "LiveInspection",
    "LiveState",
    "Plan",
    "Rules",
    "Stage",
    "Step",
    "domain_status",
    "evidence_from_rows",
    "evidence_window",
    "mint_id",
    "plan_rollout",
    "retire_entry",
    "retire_safe_at",
    "stage_of",
    "testing_since",
]


class Stage(StrEnum):
    """Where a domain is in its roll-out."""

    DRAFT = "draft"  # configured, never served
    TESTING = "testing"  # a mode: testing body is served
    ENFORCE = "enforce"  # a mode: enforce body is served
    RETIRING = "retiring"  # a mode: none body is served until senders forget the old ones
    REMOVED = "removed"  # nothing is served any more


STAGE_OF_MODE: Final = {Mode.TESTING: Stage.TESTING, Mode.ENFORCE: Stage.ENFORCE, Mode.NONE: Stage.RETIRING}

# RFC 8460 §4.3 result types that would refuse delivery under enforce: the policy host (sts-*),
# the MX certificate, no STARTTLS. validation-failure and the DANE types are left out: they are
# not about what an MTA-STS policy asks of an MX.
BLOCKING_RESULT_TYPES: Final = frozenset(
    {
        ResultType.STS_POLICY_FETCH_ERROR,
        ResultType.STS_POLICY_INVALID,
        ResultType.STS_WEBPKI_INVALID,
        ResultType.CERTIFICATE_HOST_MISMATCH,
        ResultType.CERTIFICATE_EXPIRED,
        ResultType.CERTIFICATE_NOT_TRUSTED,
        ResultType.STARTTLS_NOT_SUPPORTED,
    }
)
_POLICY_HOST_TYPES: Final = frozenset(t for t in BLOCKING_RESULT_TYPES if t.startswith("sts-"))


@dataclass(frozen=True, slots=True)
class Rules:
    """The guards' thresholds (defaults from the issue: Google's two weeks, two reporters)."""

    testing_days: int = 14
    reporters: int = 2
    retire_max_age: int = 86400  # longer is allowed for mode none, but plan says it is not needed

    def __post_init__(self) -> None:
        if self.testing_days < 1 or self.reporters < 0 or self.retire_max_age < 0:
            raise ValueError("testing_days must be at least 1; reporters and retire_max_age at least 0")


# --- inputs: what is live, what the reports say ----------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveInspection:
    """What the inspector predicts for the ``enforce`` body about to be served: its sender
    verdict (:func:`~mtasts.core.verdict.sender_verdict`) on the live MX probes, computed as if
    that body were served and announced now, and the inspector's findings that would then block
    mail (errors about the MX hosts), with their codes and fixes. Gathered by the caller."""

    verdict: Verdict
    blocking: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class LiveState:
    """What a sender sees now, gathered by the caller (the inspector's DNS and HTTPS adapters).

    ``served_body``: the bytes fetched as a sender fetches them (``None``: the fetch failed,
    ``fetch_error`` says how). ``sts_records``: every TXT string at ``_mta-sts.<domain>``, each
    record's strings joined (``()``: none; ``None``: the lookup failed, ``txt_error`` says how).
    ``mx_hosts``: the live MX host names (``None``: unknown). ``inspection``: the inspector's
    prediction for the ``enforce`` body, gathered only when ``testing → enforce`` is planned
    (``None`` there: the guard refuses, since nothing is known).
    """

    served_body: bytes | None = None
    fetch_error: str = ""
    sts_records: tuple[str, ...] | None = ()
    txt_error: str = ""
    mx_hosts: tuple[str, ...] | None = None
    inspection: LiveInspection | None = None

    @property
    def live_id(self) -> str | None:
        """The id a sender reads (exactly one valid ``v=STSv1`` record), else ``None``."""
        if not self.sts_records:
            return None
        try:
            return select_sts_record(self.sts_records).id
        except ParseError:
            return None

    @property
    def served_policy(self) -> Policy | None:
        if self.served_body is None:
            return None
        try:
            return parse_policy(self.served_body)
        except ParseError:
            return None


@dataclass(frozen=True, slots=True)
class BlockingFailure:
    """Failed sessions of one kind, one day, one reporter, that enforce would turn into bounces."""

    day: date
    organization: str
    result_type: str
    mx: str | None
    sessions: int

    def to_dict(self) -> dict[str, object]:
        return {
            "day": self.day.isoformat(),
            "organization": self.organization,
            "result_type": self.result_type,
            "mx": self.mx,
            "sessions": self.sessions,
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the stored reports say about one domain over ``since``..``until`` (days, UTC)."""

    since: date
    until: date
    reporters: tuple[str, ...] = ()  # organisations that reported an sts policy for the domain
    failures: tuple[BlockingFailure, ...] = ()

    @property
    def last_failure(self) -> date | None:
        return max((f.day for f in self.failures), default=None)

    def to_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "reporters": list(self.reporters),
            "failures": [f.to_dict() for f in self.failures],
        }


def evidence_window(history: Sequence[Served], now: datetime, rules: Rules = Rules()) -> tuple[date, date]:
    """The days whose reports the ``testing → enforce`` guard reads: the last
    :attr:`Rules.testing_days` days up to ``now``'s day, not before the testing period began."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=rules.testing_days - 1)
    start = testing_since(history)
    if start is not None:
        first = max(first, start.date())
    return first, today


def evidence_from_rows(
    domain: str,
    mx: Iterable[str],
    policies: Iterable[PolicyRow],
    failures: Iterable[FailureRow],
    *,
    since: date,
    until: date,
) -> Evidence:
    """The guard's inputs from a report store's flat rows (``ReportStoreProtocol.policy_rows``
    and ``failure_rows``): the organisations that reported an ``sts`` policy for ``domain`` in
    the window, and every blocking failure (:data:`BLOCKING_RESULT_TYPES`) in it. A certificate
    or STARTTLS failure counts when its receiving MX is one the policy lists (``mx`` patterns)
    or is not named (it may be one); a policy-host failure (``sts-*``) always counts."""
    name = history_domain(domain)
    patterns = tuple(mx)
    reporters = sorted(
        {
            row.organization_name
            for row in policies
            if row.policy_type == "sts" and _same_domain(row.policy_domain, name) and since <= row.day <= until
        }
    )
    found: dict[tuple[date, str, str, str | None], int] = {}
    for row in failures:
        if not (_same_domain(row.policy_domain, name) and since <= row.day <= until):
            continue
        if row.result_type not in BLOCKING_RESULT_TYPES:
            continue
        host = row.receiving_mx_hostname or None
        listed = host is None or matching_pattern(patterns, host) is not None
        if row.result_type not in _POLICY_HOST_TYPES and not listed:
            continue  # an MX the policy does not list: not this policy's concern
        key = (row.day, row.organization_name, row.result_type, host)
        found[key] = found.get(key, 0) + row.failed_session_count
    blocking = tuple(BlockingFailure(day, org, kind, host, n) for (day, org, kind, host), n in sorted(found.items()))
    return Evidence(since, until, tuple(reporters), blocking)


def _same_domain(policy_domain: str | None, name: str) -> bool:
    return policy_domain is not None and history_domain(policy_domain) == name


# --- derived from the history ----------------------------------------------------------------


def stage_of(history: Sequence[Served]) -> Stage:
    """The stage the history puts a domain in: nothing served yet, the mode of the body served,
    or removed (every body has stopped being served)."""
    if not history:
        return Stage.DRAFT
    last = history[-1]
    return STAGE_OF_MODE[last.mode] if last.current else Stage.REMOVED


def testing_since(history: Sequence[Served]) -> datetime | None:
    """When the current unbroken run of ``testing`` bodies began (a new testing body, an MX
    change say, does not restart the count); ``None`` unless a testing body is served now."""
    if not history or not history[-1].current or history[-1].mode is not Mode.TESTING:
        return None
    start = history[-1].since
    for earlier, later in zip(reversed(history[:-1]), reversed(history[1:]), strict=True):
        if earlier.mode is not Mode.TESTING or earlier.until != later.since:
            break
        start = earlier.since
    return start


def retire_safe_at(history: Sequence[Served]) -> datetime | None:
    """When no sender can hold any earlier policy: the latest end of serving plus ``max_age``
    over the bodies that have stopped being served and asked something of senders (a ``none``
    body asks nothing: holding it is harmless). ``None``: no such body."""
    return max(
        (held for entry in history if entry.mode is not Mode.NONE and (held := entry.held_until()) is not None),
        default=None,
    )


def mint_id(now: datetime, used: Iterable[str]) -> str:
    """A new policy id from UTC date-time (``YYYYMMDDTHHMMSS``, as ``mtasts generate`` and the
    record's documentation do), one second later each time it is already taken, so every body
    gets an id of its own."""
    taken = set(used)
    moment = now.astimezone(UTC)
    while (candidate := policy_id_for(moment)) in taken:
        moment += timedelta(seconds=1)
    return candidate


# --- outputs -----------------------------------------------------------------------------------


class Action(StrEnum):
    """What a step does; the values are a public contract (``plan --json``)."""

    SERVE = "serve"  # make the policy host serve the new body
    VERIFY = "verify"  # fetch it as a sender does and compare the bytes
    RECORD = "record"  # write the served body and its id into the history
    PUBLISH_TXT = "publish-txt"  # set the _mta-sts TXT record to the new id
    CONFIRM_TXT = "confirm-txt"  # look the record up again until DNS answers the new id
    WAIT = "wait"  # nothing to do before ``not_before``
    DELETE_RECORDS = "delete-records"  # retire: remove the _mta-sts (and _smtp._tls) records
    STOP_SERVING = "stop-serving"  # retire: remove the domain from the policy host


@dataclass(frozen=True, slots=True)
class Step:
    """One thing to do, why, and what exactly (the id, the body's sha256, the TXT record)."""

    action: Action
    text: str
    reason: str
    policy_id: str | None = None
    sha256: str | None = None
    record: DnsRecord | None = None
    not_before: datetime | None = None
    forced_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "text": self.text,
            "reason": self.reason,
            "policy_id": self.policy_id,
            "sha256": self.sha256,
            "record": None if self.record is None else self.record.to_dict(),
            "zone_line": None if self.record is None else self.record.to_zone_line(),
            "not_before": None if self.not_before is None else self.not_before.isoformat(),
            "forced_reason": self.forced_reason,
        }


class Guard(StrEnum):
    """The guards, by name (a public contract: ``status --json``, ``plan --json``)."""

    TESTING_DAYS = "testing-days"
    REPORTERS = "reporters"
    FAILURES = "failures"
    LIVE_MX = "live-mx"
    LIVE_CHECK = "live-check"
    MAX_AGE = "max-age"


GUARDS: Final = tuple(Guard)


@dataclass(frozen=True, slots=True)
class GuardCheck:
    """One guard's verdict: the value seen, the value needed, and when time alone makes it pass
    (``ready_at``; ``None`` when waiting does not help, or it passes)."""

    guard: Guard
    passed: bool
    value: int | str
    required: int | str
    message: str
    ready_at: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "guard": self.guard.value,
            "passed": self.passed,
            "value": self.value,
            "required": self.required,
            "message": self.message,
            "ready_at": None if self.ready_at is None else self.ready_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for one domain, in order. ``refusals``: why the change is not planned (a
    guard, missing information); then ``steps`` is empty unless ``forced_reason`` overrides."""

    domain: str
    stage: Stage
    target: Stage | None
    policy_id: str | None = None
    body: bytes | None = field(default=None, repr=False)
    steps: tuple[Step, ...] = ()
    guards: tuple[GuardCheck, ...] = ()
    refusals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    forced_reason: str | None = None

    @property
    def nothing_to_do(self) -> bool:
        return not self.steps and not self.refusals

    @property
    def sha256(self) -> str | None:
        return None if self.body is None else body_sha256(self.body)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of a plan (keys are a public contract)."""
        return {
            "domain": self.domain,
            "stage": self.stage.value,
            "target": None if self.target is None else self.target.value,
            "policy_id": self.policy_id,
            "sha256": self.sha256,
            "policy_text": None if self.body is None else self.body.decode("utf-8"),
            "nothing_to_do": self.nothing_to_do,
            "steps": [s.to_dict() for s in self.steps],
            "guards": [g.to_dict() for g in self.guards],
            "refusals": list(self.refusals),
            "notes": list(self.notes),
            "forced_reason": self.forced_reason,
        }


# --- the guards ----------------------------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _days(seconds: float) -> str:
    days = round(seconds / 86400, 1)
    text = f"{days:g}"
    return "1 day" if text == "1" else f"{text} days"


def enforce_guards(
    history: Sequence[Served],
    policy: Policy | None,
    live: LiveState | None,
    evidence: Evidence | None,
    *,
    now: datetime,
    rules: Rules,
) -> tuple[GuardCheck, ...]:
    """The ``testing → enforce`` guards on what is known now."""
    checks: list[GuardCheck] = []
    start = testing_since(history)
    needed = timedelta(days=rules.testing_days)
    if start is None:
        checks.append(
            GuardCheck(
                Guard.TESTING_DAYS,
                False,
                0,
                rules.testing_days,
                f"not in testing: serve mode testing for {rules.testing_days} days first",
            )
        )
    else:
        spent = now - start
        passed = spent >= needed
        checks.append(
            GuardCheck(
                Guard.TESTING_DAYS,
                passed,
                spent.days,
                rules.testing_days,
                f"in testing for {_days(spent.total_seconds())} since {start:%Y-%m-%d %H:%M} UTC"
                + ("" if passed else f"; needs {rules.testing_days} days"),
                None if passed else start + needed,
            )
        )
    reporters = len(evidence.reporters) if evidence is not None else 0
    checks.append(
        GuardCheck(
            Guard.REPORTERS,
            reporters >= rules.reporters,
            reporters,
            rules.reporters,
            (
                "no report data"
                if evidence is None
                else f"reports from {reporters} organisation{'' if reporters == 1 else 's'}"
                + (f" ({', '.join(evidence.reporters)})" if evidence.reporters else "")
                + f" from {evidence.since} to {evidence.until}"
            )
            + ("" if reporters >= rules.reporters else f"; needs {rules.reporters}"),
        )
    )
    failures = () if evidence is None else evidence.failures
    last = None if evidence is None else evidence.last_failure
    sessions = sum(f.sessions for f in failures)
    if failures:
        kinds = ", ".join(sorted({f.result_type for f in failures}))
        message = f"{sessions} failed sessions ({kinds}), the last on {last}; needs {rules.testing_days} clean days"
    else:
        message = "no sts, certificate or STARTTLS failures reported" + (
            "" if evidence is None else f" from {evidence.since} to {evidence.until}"
        )
    checks.append(
        GuardCheck(
            Guard.FAILURES,
            not failures,
            sessions,
            0,
            message,
            None if last is None else _midnight(last + timedelta(days=rules.testing_days)),
        )
    )
    if live is not None:
        checks.append(_live_mx_guard(policy, live))
        checks.append(_live_check_guard(policy, live))
    return tuple(checks)


# What each live guard needs when it refuses, as the other guards say it ("; needs 14 days").
_NEEDS_MX_ANSWER = "needs an answer to the domain's MX lookup: plan again once its DNS answers"
_NEEDS_VERDICT = "needs a verdict on every listed MX: plan again once that is fixed"
_NEEDS_LISTED_MX = "needs live MX hosts that the policy lists"
_NEEDS_PASSING_MX = "needs every listed MX to pass: fix them (mtasts check says how) or take them out of the policy"
_NEEDS_LISTED = "needs each of them in an mx line, or out of the MX records"


def _live_check_guard(policy: Policy | None, live: LiveState) -> GuardCheck:
    """The inspector's prediction: a sender would deliver to every listed live MX under the
    ``enforce`` body. An MX it could not probe, or could not reach, counts against enforce:
    nothing is known of its TLS, and enforce is decided on knowledge (``--force`` overrides)."""
    inspection = live.inspection
    required = "no listed MX blocked"
    if inspection is None or policy is None:
        return GuardCheck(
            Guard.LIVE_CHECK,
            False,
            "unknown",
            required,
            f"the live inspection of the MX did not run; {_NEEDS_MX_ANSWER}",
        )
    verdict = inspection.verdict
    if verdict.delivery is Delivery.UNKNOWN or verdict.mode is not Mode.ENFORCE:
        return GuardCheck(
            Guard.LIVE_CHECK,
            False,
            "unknown",
            required,
            f"the live inspection could not tell: {verdict.summary}; {_NEEDS_VERDICT}",
        )
    by_host = {mx.host: mx for mx in verdict.mx}
    hosts = live.mx_hosts if live.mx_hosts is not None else tuple(by_host)
    listed = [host for host in dict.fromkeys(hosts) if policy.matches(host)]
    trouble = [
        f"{host} ({by_host[host].reason})" if host in by_host else f"{host} (not probed)"
        for host in listed
        if host not in by_host or not by_host[host].deliver
    ]
    if not listed:
        return GuardCheck(Guard.LIVE_CHECK, False, 0, required, f"no listed MX was inspected; {_NEEDS_LISTED_MX}")
    if trouble:
        codes = sorted({f.code for f in inspection.blocking})
        return GuardCheck(
            Guard.LIVE_CHECK,
            False,
            len(trouble),
            required,
            f"the live inspection predicts that enforce would block mail to {', '.join(trouble)}"
            + (f" [{', '.join(codes)}]" if codes else "")
            + f"; {_NEEDS_PASSING_MX}",
        )
    return GuardCheck(
        Guard.LIVE_CHECK,
        True,
        0,
        required,
        f"the live inspection predicts delivery over validated TLS to every listed MX ({len(listed)})",
    )


def _live_mx_guard(policy: Policy | None, live: LiveState) -> GuardCheck:
    if live.mx_hosts is None or policy is None:
        return GuardCheck(
            Guard.LIVE_MX, False, "unknown", "all listed", f"the live MX hosts are unknown; {_NEEDS_MX_ANSWER}"
        )
    unlisted = [host for host in live.mx_hosts if not policy.matches(host)]
    if unlisted:
        return GuardCheck(
            Guard.LIVE_MX,
            False,
            ", ".join(unlisted),
            "all listed",
            f"live MX not in the policy: {', '.join(unlisted)} (enforce would refuse mail to them); {_NEEDS_LISTED}",
        )
    return GuardCheck(Guard.LIVE_MX, True, len(live.mx_hosts), "all listed", "every live MX is in the policy")


def max_age_guard(current: Served | None, policy: Policy, *, now: datetime) -> GuardCheck | None:
    """``max_age`` may grow under enforce only once enforce has been served for its old value;
    ``None`` when the change does not grow an enforced ``max_age``."""
    if policy.mode is not Mode.ENFORCE or current is None or policy.max_age <= current.max_age:
        return None
    old = current.max_age
    if current.mode is not Mode.ENFORCE:
        return GuardCheck(
            Guard.MAX_AGE,
            False,
            policy.max_age,
            old,
            f"enforce with max_age {policy.max_age} straight from {current.mode.value}: serve enforce with "
            f"max_age {old} first and raise it once that has been served for {_days(old)}",
        )
    ready = current.since + timedelta(seconds=old)
    passed = now >= ready
    return GuardCheck(
        Guard.MAX_AGE,
        passed,
        policy.max_age,
        old,
        f"max_age {old} → {policy.max_age}: enforce served since {current.since:%Y-%m-%d %H:%M} UTC"
        + ("" if passed else f"; raise it from {ready:%Y-%m-%d %H:%M} UTC"),
        None if passed else ready,
    )


# --- the plan ------------------------------------------------------------------------------------


def _target_policy(entry: DomainConfig, live: LiveState) -> Policy | None:
    if entry.policy is not None:
        return entry.policy
    if live.mx_hosts is None:
        return None
    return Policy(mode=entry.mode, max_age=entry.max_age, mx=tuple(live.mx_hosts))  # mx = "from-dns"


def _adopted(name: str, live: LiveState, now: datetime) -> Served | None:
    """A policy already live (served and announced) before mtasts kept a history of it: the
    history starts now (so its testing days count from now: nothing older is known)."""
    policy, live_id = live.served_policy, live.live_id
    if policy is None or live_id is None or live.served_body is None:
        return None
    return Served(name, live_id, live.served_body, policy.mode, policy.max_age, now)


def plan_rollout(
    domain: str,
    entry: DomainConfig | None,
    history: Sequence[Served],
    live: LiveState,
    *,
    now: datetime,
    evidence: Evidence | None = None,
    rules: Rules = Rules(),
    force_reason: str | None = None,
    record_ttl: int = RECORD_TTL,
) -> Plan:
    """The ordered steps that take ``domain`` from what is live to what ``entry`` asks
    (``record_ttl``: the TTL the ``_mta-sts`` record is published with, as the steps say)."""
    name = history_domain(domain)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    history = list(history)
    notes: list[str] = []
    adopted = None if history else _adopted(name, live, now)
    known = history or ([adopted] if adopted is not None else [])
    stage = stage_of(known)
    current = known[-1] if known and known[-1].current else None
    if entry is None:
        if current is not None and stage is Stage.RETIRING:
            safe_at = retire_safe_at(known)
            if safe_at is None or now >= safe_at:  # taken out after the wait: finish the removal
                steps = _retire_steps(name, known, live, now)
                return Plan(name, stage, Stage.REMOVED, current.policy_id, current.body, tuple(steps))
            notes.append(
                f"{name} is retiring but no longer in the configuration: a sender may hold an earlier policy "
                f'until {safe_at:%Y-%m-%d %H:%M} UTC; put it back with mode = "none" until then (a sender whose '
                "refetch fails keeps its cached policy, RFC 8461 §5.1)"
            )
        elif current is not None:
            notes.append(
                f"{name} is not in the configuration, but its history says it is served ({current.mode.value}, "
                f"id {current.policy_id}): senders may hold it; retire it (mtasts publish retire {name})"
            )
        return Plan(name, stage, None, notes=tuple(notes))
    target = STAGE_OF_MODE[entry.mode]
    policy = _target_policy(entry, live)
    if policy is None:
        return Plan(
            name,
            stage,
            target,
            refusals=(f'mx = "from-dns": the live MX of {name} are unknown ({live.txt_error or "no answer"})',),
        )
    body = policy.to_text().encode("utf-8")
    if target is Stage.RETIRING and current is None:
        if stage is Stage.REMOVED:
            removed = f"{known[-1].until:%Y-%m-%d %H:%M} UTC"
            notes.append(f"{name} was removed on {removed}: remove it from the configuration")
        else:
            notes.append(f"{name} was never published: nothing to retire; remove it from the configuration")
        return Plan(name, stage, target, body=body, notes=tuple(notes))
    if live.mx_hosts is not None and target is not Stage.RETIRING:
        unlisted = [h for h in live.mx_hosts if not policy.matches(h)]
        if unlisted:
            notes.append(
                f"live MX not in the policy: {', '.join(unlisted)}: add them to mx"
                + (" (senders in testing report them failing)" if target is Stage.TESTING else "")
            )
    if target is Stage.RETIRING and policy.max_age > rules.retire_max_age:
        notes.append(
            f"mode none with max_age {policy.max_age}: a short one ({rules.retire_max_age}) is enough while retiring"
        )
    changing = current is None or current.sha256 != body_sha256(body)
    guards: tuple[GuardCheck, ...] = ()
    if changing and target is Stage.ENFORCE and stage is not Stage.ENFORCE:
        guards = enforce_guards(known, policy, live, evidence, now=now, rules=rules)
    if changing:
        growth = max_age_guard(current, policy, now=now)
        if growth is not None:
            guards = (*guards, growth)
    failed = [g for g in guards if not g.passed]
    refusals: tuple[str, ...] = ()
    forced: str | None = None
    if failed and not force_reason:
        refusals = tuple(f"{stage.value} → {target.value} refused: {g.message}" for g in failed)
        if live.served_body == body:
            notes.append(
                f"mta-sts.{name} already serves this body (the host serves the configuration as written): "
                f"do not publish a new id for it; set the configuration back to what the history holds and reload"
            )
        return Plan(name, stage, target, body=body, guards=guards, refusals=refusals, notes=tuple(notes))
    if failed:
        forced = force_reason
        notes.extend(f"guard overridden ({force_reason}): {g.message}" for g in failed)
    if changing:
        used = [e.policy_id for e in known]
        policy_id = mint_id(now, [*used, *([live.live_id] if live.live_id else [])])
    else:
        assert current is not None
        policy_id = current.policy_id
    safe_at = retire_safe_at(known)
    if target is Stage.RETIRING and not changing and (safe_at is None or now >= safe_at):
        steps = _retire_steps(name, known, live, now)  # the records may go, announced or not
    else:
        steps = _steps(
            name, body, policy_id, live, changing=changing, adopted=adopted, forced=forced, record_ttl=record_ttl
        )
        if not steps and target is Stage.RETIRING:
            steps = _retire_steps(name, known, live, now)
    if any(step.action is Action.STOP_SERVING for step in steps):
        target = Stage.REMOVED
    return Plan(
        name,
        stage,
        target,
        policy_id=policy_id,
        body=body,
        steps=tuple(steps),
        guards=guards,
        notes=tuple(notes),
        forced_reason=forced,
    )


def _steps(
    name: str,
    body: bytes,
    policy_id: str,
    live: LiveState,
    *,
    changing: bool,
    adopted: Served | None,
    forced: str | None,
    record_ttl: int,
) -> list[Step]:
    sha = body_sha256(body)
    host = f"mta-sts.{name}"
    steps: list[Step] = []
    if live.served_body != body:
        if live.served_body is None:
            why = f"{host} serves no policy a sender accepts ({live.fetch_error or 'no answer'})"
        else:
            why = f"{host} serves another body (sha256 {body_sha256(live.served_body)[:12]})"
        steps.append(
            Step(
                Action.SERVE,
                f"serve the new body (sha256 {sha[:12]}) on {host}: reload the policy host (mtasts publish reload)",
                why,
                policy_id,
                sha,
            )
        )
        steps.append(
            Step(
                Action.VERIFY,
                f"verify https://{host}/.well-known/mta-sts.txt from outside: the exact bytes, as a sender fetches",
                "senders must be able to fetch the new body before its id is announced (RFC 8461 §8)",
                policy_id,
                sha,
            )
        )
    if changing:
        steps.append(
            Step(
                Action.RECORD,
                f"record the body in the history under id {policy_id}",
                "the history dates each body, for the guards and for retiring"
                if adopted is None
                else f"the history has no entry: the live policy (id {adopted.policy_id}) is taken as served from now",
                policy_id,
                sha,
                forced_reason=forced,
            )
        )
    elif adopted is not None:
        steps.append(
            Step(
                Action.RECORD,
                f"record the live policy in the history under its id {policy_id}",
                "the history has no entry for it: its testing days count from then",
                policy_id,
                sha,
            )
        )
    live_id = live.live_id
    if live_id != policy_id:
        record = DnsRecord(f"_mta-sts.{name}", "TXT", f"v=STSv1; id={policy_id}", record_ttl)
        if live.sts_records is None:
            why = f"the _mta-sts record could not be read ({live.txt_error or 'no answer'})"
        elif not live.sts_records:
            why = f"_mta-sts.{name} has no TXT record"
        elif live_id is None:
            why = f"_mta-sts.{name} has no single valid v=STSv1 record (senders see no policy)"
        else:
            why = f"the live id {live_id} was announced for another body"
        after = "verified" if live.served_body == body else "only once the verify step has passed"
        steps.append(
            Step(
                Action.PUBLISH_TXT,
                f"publish the TXT record {record.to_zone_line()} ({after})",
                why,
                policy_id,
                sha,
                record,
            )
        )
        steps.append(
            Step(
                Action.CONFIRM_TXT,
                f"confirm that DNS answers id={policy_id} at _mta-sts.{name}",
                "senders refetch the policy only when they see the new id",
                policy_id,
                sha,
                record,
            )
        )
    return steps


def _retire_steps(name: str, history: Sequence[Served], live: LiveState, now: datetime) -> list[Step]:
    """The none body is served and announced: wait out every earlier max_age, then delete."""
    safe_at = retire_safe_at(history)
    if safe_at is not None and now < safe_at:
        held = max((e for e in history if e.mode is not Mode.NONE and e.held_until() == safe_at), key=lambda e: e.since)
        return [
            Step(
                Action.WAIT,
                f"keep serving mode none until {safe_at:%Y-%m-%d %H:%M} UTC",
                f"a sender may hold the {held.mode.value} policy {held.policy_id} (max_age {held.max_age}) "
                f"served until {held.until:%Y-%m-%d %H:%M} UTC",
                not_before=safe_at,
            )
        ]
    steps = []
    owner = f"_mta-sts.{name}"
    if live.sts_records or live.sts_records is None:
        # the record to delete, as it is live (the first v=STSv1 one; the deletion takes every TXT
        # at the name, which holds nothing else: RFC 8461 §3.1)
        values = [v for v in live.sts_records or () if v.lower().startswith("v=stsv1")] or list(live.sts_records or ())
        record = DnsRecord(owner, "TXT", values[0]) if values else None
        shown = ", ".join(DnsRecord(owner, "TXT", v).to_zone_line() for v in values) or f"every TXT at {owner}"
        steps.append(
            Step(
                Action.DELETE_RECORDS,
                f"delete the TXT record at {owner}: {shown}",
                "no sender can hold an earlier policy any more"
                + ("" if live.sts_records is not None else f" (the lookup failed: {live.txt_error or 'no answer'})"),
                record=record,
            )
        )
    steps.append(
        Step(
            Action.STOP_SERVING,
            f"stop serving mta-sts.{name}: take {name} out of the configuration, reload, record it removed",
            "the _mta-sts record is gone: no sender looks for the policy"
            + f" (_smtp._tls.{name} is not mtasts's: keep it for TLS reports, or delete it yourself)",
        )
    )
    return steps


def retire_entry(entry: DomainConfig, rules: Rules = Rules()) -> DomainConfig:
    """The entry retiring asks for: ``mode = "none"`` and a short ``max_age`` (the shorter of
    the entry's and :attr:`Rules.retire_max_age`; a sender holding a ``none`` policy is
    harmless, but a short one is gone soon should the domain come back), the MX kept."""
    max_age = min(entry.max_age, rules.retire_max_age)
    mx = entry.mx if entry.mx is not None else (entry.policy.mx if entry.policy is not None else ())
    policy = Policy(mode=Mode.NONE, max_age=max_age, mx=mx)
    return DomainConfig(
        name=entry.name,
        mode=Mode.NONE,
        max_age=max_age,
        mx=mx,
        rua=entry.rua,
        cert=entry.cert,
        key=entry.key,
        line=entry.line,
        policy=policy,
    )


# --- the status ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainStatus:
    """Where a domain stands: its stage, the body served, the guard values, what comes next."""

    domain: str
    stage: Stage
    configured: Stage | None
    current: Served | None
    guards: tuple[GuardCheck, ...]
    next: str
    next_at: datetime | None = None
    removed_at: datetime | None = None  # when the last body stopped being served (stage removed)

    def to_dict(self) -> dict[str, object]:
        """The JSON shape of a status line (keys are a public contract)."""
        return {
            "domain": self.domain,
            "stage": self.stage.value,
            "configured": None if self.configured is None else self.configured.value,
            "current": None if self.current is None else self.current.to_dict(),
            "guards": [g.to_dict() for g in self.guards],
            "next": self.next,
            "next_at": None if self.next_at is None else self.next_at.isoformat(),
            "removed_at": None if self.removed_at is None else self.removed_at.isoformat(),
        }


def domain_status(
    domain: str,
    entry: DomainConfig | None,
    history: Sequence[Served],
    *,
    now: datetime,
    evidence: Evidence | None = None,
    rules: Rules = Rules(),
) -> DomainStatus:
    """The status of one domain from the configuration, the history and the report evidence
    (no live state: ``status`` reads only the store, so it is quick and works offline)."""
    name = history_domain(domain)
    stage = stage_of(history)
    current = history[-1] if history and history[-1].current else None
    configured = None if entry is None else STAGE_OF_MODE[entry.mode]
    guards: tuple[GuardCheck, ...] = ()
    next_at: datetime | None = None
    body = None if entry is None or entry.body is None else entry.body
    pending = body is not None and (current is None or current.body != body)
    if stage is Stage.TESTING:
        guards = enforce_guards(history, entry.policy if entry else None, None, evidence, now=now, rules=rules)
    if entry is None and stage is Stage.REMOVED:
        what = "nothing: its record is deleted and it is no longer served"
    elif entry is None:
        what = "not configured" + (f": retire it (mtasts publish retire {name})" if current is not None else "")
    elif stage in (Stage.DRAFT, Stage.REMOVED) and configured is Stage.RETIRING:
        what = "never published (or removed): remove it from the configuration"
    elif stage is Stage.RETIRING and not pending:
        safe_at = retire_safe_at(history)
        if safe_at is not None and now < safe_at:
            what, next_at = "delete the records once no sender can hold an earlier policy", safe_at
        else:
            what = "delete the records and stop serving (mtasts publish plan)"
    elif stage is Stage.TESTING and configured is not Stage.RETIRING:
        waiting = [g for g in guards if not g.passed]
        if not waiting:
            what = (
                "enforce may be applied (mtasts publish plan)"
                if configured is Stage.ENFORCE
                else 'ready for enforce: set mode = "enforce"'
            )
        elif all(g.ready_at is not None for g in waiting):
            next_at = max(g.ready_at for g in waiting if g.ready_at is not None)
            what = "enforce possible if reports stay clean"
        else:
            what = "enforce waits on: " + "; ".join(g.message for g in waiting if g.ready_at is None)
        if pending and configured is Stage.TESTING:
            what = "a changed testing body to apply (mtasts publish plan); then " + what
    elif pending:
        what = f"a change to apply: {stage.value} → {configured.value if configured else '?'} (mtasts publish plan)"
        if entry is not None and entry.policy is not None:
            growth = max_age_guard(current, entry.policy, now=now)
            if growth is not None and not growth.passed:
                guards = (*guards, growth)
                what, next_at = f"max_age may grow to {entry.policy.max_age}", growth.ready_at
    elif entry is not None and entry.mx is None:
        what = 'mx = "from-dns": run mtasts publish plan to compare with live MX'
    else:
        what = "nothing: the configuration is what is served"
    removed_at = history[-1].until if stage is Stage.REMOVED else None
    return DomainStatus(name, stage, configured, current, guards, what, next_at, removed_at)
