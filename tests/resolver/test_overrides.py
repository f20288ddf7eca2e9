"""Overrides: the file's rules (pure), applied before the cache with an injected clock, and over
a real socketmap connection to a running server.

The sources are test_service.py's scripted twin (answers from dicts, calls counted): what is
tested is that an override wins over what the domain publishes, which needs a domain whose
published policy the test controls.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from mtasts.resolver.answers import Profile
from mtasts.resolver.overrides import OverrideError, OverrideKind, active, parse_overrides
from mtasts.resolver.server import ListenSpec, SocketmapServer
from mtasts.resolver.service import Source
from mtasts.resolver.socketmap import Status, encode_reply
from tests.resolver.helpers import SocketmapClient
from tests.resolver.test_service import ANSWER1, NOTFOUND, D, make

NOW = 1_800_000_000.0  # test_service's Clock starts here
LATER = dt.datetime.fromtimestamp(NOW + 3600, dt.UTC).isoformat().replace("+00:00", "Z")
PINNED = "version: STSv1\nmode: enforce\nmx: pinned.example.com\nmax_age: 86400\n"


def overrides_text(action: str, extra: str = "", *, domain: str = "Example.COM.", expires: str = LATER) -> str:
    return (
        f'[[override]]\ndomain = "{domain}"\naction = "{action}"\nexpires = {expires}\nreason = "ticket 4711"\n{extra}'
    )


FORCE_ENFORCE = overrides_text("force-enforce", 'mx = ["mx9.example.com", "MX8.example.com"]\n')
PIN = overrides_text("pin", f'policy = """\n{PINNED}"""\n')


def test_parse_each_kind() -> None:
    none = parse_overrides(overrides_text("force-none"))[D]
    assert (none.kind, none.policy, none.reason, none.expires) == (
        OverrideKind.FORCE_NONE,
        None,
        "ticket 4711",
        NOW + 3600,
    )
    forced = parse_overrides(FORCE_ENFORCE)[D]
    assert forced.policy is not None
    assert forced.policy.mx == ("mx9.example.com", "MX8.example.com")
    pinned = parse_overrides(PIN)[D]
    assert pinned.policy is not None
    assert pinned.policy.mx == ("pinned.example.com",)


def test_expired_override_is_ignored() -> None:
    overrides = parse_overrides(overrides_text("force-none"))
    assert active(overrides, D, NOW + 3599) is not None
    assert active(overrides, D, NOW + 3600) is None
    assert active(overrides, "other.example", NOW) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (overrides_text("force-none").replace('reason = "ticket 4711"\n', ""), "'reason' is required"),
        (overrides_text("force-none", expires="2026-12-31T00:00:00"), "'expires' needs a time zone"),
        (overrides_text("force-none").replace("expires = ", "#"), "'expires' is required"),
        (overrides_text("force-off"), "'action' must be one of force-none, force-enforce, pin"),
        (overrides_text("force-enforce"), "force-enforce needs 'mx'"),
        (overrides_text("force-enforce", 'mx = ["192.0.2.1"]\n'), "'mx':"),
        (overrides_text("pin", 'policy = "mode: enforce"\n'), "'policy' is not a valid policy"),
        (overrides_text("force-none", domain="[mx.example.com]"), "is not a mail domain"),
        (overrides_text("force-none") + overrides_text("pin", f'policy = """\n{PINNED}"""\n'), "has two overrides"),
        ("[override]\n", "must be an array of tables"),
        ("override = [", "not valid TOML"),
    ],
)
def test_invalid_files_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(OverrideError, match=message.replace("[", r"\[")):
        parse_overrides(text)


async def test_force_none_wins_over_a_cached_enforce_policy_until_it_expires() -> None:
    resolver, _sources, clock = make()
    assert await resolver.reply("postfix", D) == ANSWER1
    resolver.overrides = parse_overrides(overrides_text("force-none"))
    assert await resolver.reply("postfix", D) == NOTFOUND
    found = await resolver.lookup(D, Profile.POSTFIX)
    assert found.source is Source.OVERRIDE
    assert found.override is not None
    clock.now = NOW + 3600  # expired: the cache answers again
    assert await resolver.reply("postfix", D) == ANSWER1
    assert resolver.counters["override_force-none"] == 2


async def test_force_enforce_and_pin_need_no_network() -> None:
    resolver, sources, _ = make()
    resolver.overrides = parse_overrides(FORCE_ENFORCE)
    expected = encode_reply(Status.OK, "secure match=mx9.example.com:mx8.example.com servername=hostname")
    assert await resolver.reply("postfix", D) == expected
    resolver.overrides = parse_overrides(PIN)
    tlsrpt = (await resolver.lookup(D, Profile.POSTFIX_TLSRPT)).reply.decode()
    assert "match=pinned.example.com servername=hostname policy_type=sts" in tlsrpt
    assert "{ policy_string = mx: pinned.example.com }" in tlsrpt
    assert sources.calls == Counter()


async def test_override_over_a_real_socketmap_connection() -> None:
    resolver, sources, _ = make()
    resolver.overrides = parse_overrides(PIN)
    await resolver.start(refresh=False)
    server = SocketmapServer(resolver, (ListenSpec(host="127.0.0.1", port=0),))
    await server.start()
    try:
        port = int(server.addresses[0].rsplit(":", 1)[1])
        client = await SocketmapClient.connect("127.0.0.1", port)
        assert await client.query("postfix", "EXAMPLE.com") == "OK secure match=pinned.example.com servername=hostname"
        assert await client.query("postfix", ".example.com") == "NOTFOUND "  # parent probes stay instant
        resolver.overrides = {}
        assert await client.query("postfix", D) == "OK secure match=mx1.example.com servername=hostname"
        await client.close()
    finally:
        await server.stop()
        await resolver.stop()
    assert sources.calls == Counter(txt=1, fetch=1)
