"""Answer zones: the socketmap *name* Postfix sends selects a zone, and a zone says how to answer.

``smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:NAME`` makes Postfix ask ``NAME key``.
The three built-in zones are the answer profiles (``postfix``, ``postfix-tlsrpt``,
``postfix-legacy``) with the daemon's settings; the configuration file adds zones of its own
(``[zone.NAME]``), each with a profile, ``strict_testing``, ``fail_open_temp`` and the Postfix
version it serves (which decides how a ``*.`` pattern is written: expanded into the current MX
host names before 3.10.5, or left to Postfix's ``mx_host_pattern`` from 3.10.5 with
``postfix-tlsrpt``). One cache serves every zone: a policy is fetched once, whatever the zone.

:class:`ZonedResolver` answers a zone whose settings are the daemon's own through
:meth:`PolicyResolver.reply` (the fast path; which zones those are is worked out once per
configuration, not per request); any other zone through the public
:meth:`PolicyResolver.lookup` explanation, re-rendered with the zone's settings and memoised per
cache entry, so a zone costs a dict look-up once its answer is rendered. A reload replaces the
zones (:meth:`ZonedResolver.set_zones`) and the resolver's settings
(:meth:`PolicyResolver.reconfigure`) in place; both drop every reply rendered before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mtasts.resolver.answers import AnswerSettings, Profile, render_answer
from mtasts.resolver.cache import CacheEntry
from mtasts.resolver.grammar import V3_10_5, PostfixVersion
from mtasts.resolver.keys import classify_key
from mtasts.resolver.service import PolicyResolver, ResolverSettings, Source
from mtasts.resolver.socketmap import Status, encode_reply
from mtasts.resolver.sources import Sources
from mtasts.resolver.store import PolicyStore

__all__ = ["Zone", "ZonedResolver", "builtin_zones"]

_NOTFOUND = encode_reply(Status.NOTFOUND)
_TEMP = encode_reply(Status.TEMP, "MTA-STS policy not available yet")


@dataclass(frozen=True, slots=True)
class Zone:
    """One socketmap name and how it is answered."""

    name: str
    profile: Profile
    strict_testing: bool = False
    fail_open_temp: bool = False
    postfix_version: PostfixVersion | None = None

    @property
    def answers(self) -> AnswerSettings:
        """The answer settings of this zone (``.suffix`` wildcards only where Postfix keeps to
        ``mx_host_pattern`` itself)."""
        suffix = (
            self.profile is Profile.POSTFIX_TLSRPT
            and self.postfix_version is not None
            and self.postfix_version >= V3_10_5
        )
        return AnswerSettings(strict_testing=self.strict_testing, wildcard_suffix=suffix)


def builtin_zones(*, strict_testing: bool = False, fail_open_temp: bool = False) -> dict[str, Zone]:
    """The zones every daemon serves: one per answer profile, named after it."""
    return {p.value: Zone(p.value, p, strict_testing, fail_open_temp) for p in Profile}


class ZonedResolver(PolicyResolver):
    """A :class:`PolicyResolver` that answers each configured zone with the zone's settings.

    ``zones`` maps socketmap names to zones; a name in no zone is answered as the resolver
    answers an unknown name (``NOTFOUND``, logged once). The resolver's own ``settings`` are
    those of the zones that take the fast path.
    """

    def __init__(
        self,
        sources: Sources,
        store: PolicyStore,
        settings: ResolverSettings | None = None,
        *,
        zones: Mapping[str, Zone] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(sources, store, settings, clock=clock)
        self._rendered_by_zone: dict[tuple[str, str], tuple[CacheEntry, bytes]] = {}
        self._fast_profiles: dict[str, str] = {}
        self._zones: dict[str, Zone] = {}
        self.set_zones(builtin_zones() if zones is None else zones)

    @property
    def zones(self) -> Mapping[str, Zone]:
        """The zones by socketmap name (replaced whole by :meth:`set_zones`)."""
        return self._zones

    def set_zones(self, zones: Mapping[str, Zone]) -> None:
        """Answer ``zones`` from now on (at start, and on a reload): the replies rendered for the
        old zones are dropped and which zones take the fast path is worked out again."""
        self._zones = dict(zones)
        self._rendered_by_zone.clear()
        self._fast_profiles = self._fast_zones()

    def reconfigure(self, settings: ResolverSettings) -> None:
        super().reconfigure(settings)
        self._rendered_by_zone.clear()
        self._fast_profiles = self._fast_zones()  # "fast" compares with the resolver's own settings

    def _fast_zones(self) -> dict[str, str]:
        """Socketmap name -> profile name of every zone whose answers are the resolver's own
        (worked out once per configuration, not per request: :meth:`reply_now` is the hot path)."""
        own = self.settings
        return {
            name: zone.profile.value
            for name, zone in self._zones.items()
            if zone.answers == own.answers and zone.fail_open_temp == own.fail_open_temp
        }

    def _drop_rendered(self, domain: str | None) -> None:
        super()._drop_rendered(domain)
        if domain is None:
            self._rendered_by_zone.clear()
        elif self._rendered_by_zone:
            for name in self._zones:
                self._rendered_by_zone.pop((name, domain), None)

    def reply_now(self, name: str, key: str) -> bytes | None:
        """The reply without waiting, or ``None`` (then :meth:`reply`): the resolver's own hot
        path for a zone with its settings, the zone's memoised reply for the others."""
        fast = self._fast_profiles.get(name)
        if fast is not None:
            return self._reply_now(fast, key)
        zone = self._zones.get(name)
        if zone is None:
            return super().reply_now(name, key)
        memo = self._rendered_by_zone.get((zone.name, key))
        if memo is None or memo[0] is not self.entry(key):
            return None
        entry = memo[0]
        now = self.clock()
        if not entry.valid(now) or now >= entry.txt_next_check or self.overrides:
            return None  # let reply() start the re-check (or apply the override)
        self.counters["queries_cache"] += 1
        self.counters["cache_hits"] += 1
        self.results[(_status(memo[1]), zone.profile.value)] += 1
        return memo[1]

    async def reply(self, name: str, key: str) -> bytes:
        fast = self._fast_profiles.get(name)
        if fast is not None:
            return await super().reply(fast, key)
        zone = self._zones.get(name)
        if zone is None:
            return await super().reply(name, key)
        reply = await self._zone_reply(zone, key)
        self.results[(_status(reply), zone.profile.value)] += 1
        return reply

    async def _zone_reply(self, zone: Zone, key: str) -> bytes:
        domain = classify_key(key).domain
        if domain is None:
            self.counters["queries_not_a_domain"] += 1
            return _NOTFOUND
        found = await self.lookup(domain, zone.profile, key=key)
        if found.source is Source.FAIL_OPEN:
            return _TEMP if zone.fail_open_temp else _NOTFOUND
        if found.source is Source.OVERRIDE:
            policy = None if found.override is None else found.override.policy
            if policy is None:
                return _NOTFOUND
            hosts = found.entry.mx_hosts if found.entry is not None else ()
            body = found.override.body if found.override is not None else None
            answer = render_answer(domain, policy, zone.profile, mx_hosts=hosts, body=body, settings=zone.answers)
            return _NOTFOUND if answer.data is None else encode_reply(Status.OK, answer.data)
        entry = found.entry
        if entry is None or entry.policy is None or found.source is Source.NEGATIVE:
            return _NOTFOUND
        memo = self._rendered_by_zone.get((zone.name, domain))
        if memo is not None and memo[0] is entry:
            return memo[1]
        answer = render_answer(
            domain, entry.policy, zone.profile, mx_hosts=entry.mx_hosts, body=entry.body, settings=zone.answers
        )
        if answer.data is None:
            self.counters[f"no_answer_{answer.reason}"] += 1
            reply = _NOTFOUND
        else:
            reply = encode_reply(Status.OK, answer.data)
        self._rendered_by_zone[(zone.name, domain)] = (entry, reply)
        return reply


def _status(reply: bytes) -> str:
    """``ok``, ``notfound``, ``temp``, ...: the status word of a socketmap reply, lower case."""
    payload = reply[reply.index(b":") + 1 : -1]
    return payload.split(b" ", 1)[0].decode("ascii", "replace").lower()
