"""The resolver's TXT and MX lookups against the lab: the TTLs the cache rules are fed."""

from __future__ import annotations

from typing import Any

import pytest

from mtasts.net.settings import NetworkSettings
from mtasts.resolver.cache import TxtStatus
from mtasts.resolver.sources import NetworkSources

pytestmark = pytest.mark.lab


async def test_a_record_carries_its_ttl(lab: Any, resolver_settings: NetworkSettings) -> None:
    txt = await NetworkSources(resolver_settings).txt(lab.domain("enforce-ok"))
    assert (txt.status, txt.record_id, txt.ttl) == (TxtStatus.FOUND, "20261129T081500", 300.0)


@pytest.mark.parametrize("scenario", ["no-sts-record", "domain-nxdomain"])
async def test_no_record_is_cached_for_the_zones_negative_ttl(
    lab: Any, resolver_settings: NetworkSettings, scenario: str
) -> None:
    # the lab's SOA: TTL 300, minimum 60; RFC 2308 says the smaller of the two
    txt = await NetworkSources(resolver_settings).txt(lab.domain(scenario))
    assert (txt.status, txt.ttl) == (TxtStatus.ABSENT, 60.0)


async def test_mx_hosts_and_ttl(lab: Any, resolver_settings: NetworkSettings) -> None:
    d = lab.domain("mx-many")
    hosts, ttl = await NetworkSources(resolver_settings).mx(d)
    assert hosts == tuple(sorted(f"mx{i}.{d}" for i in range(1, 13)))
    assert ttl == 300.0


async def test_a_failing_lookup_is_failed_not_absent(lab: Any, resolver_settings: NetworkSettings) -> None:
    txt = await NetworkSources(resolver_settings).txt(lab.domain("sts-lookup-servfail"))
    assert txt.status is TxtStatus.FAILED
    hosts, ttl = await NetworkSources(resolver_settings).mx(lab.domain("mx-lookup-servfail"))
    assert (hosts, ttl) == (None, None)
