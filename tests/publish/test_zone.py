"""The zone-file text generate writes: TXT quoting, splitting, and the fragment as a whole."""

from __future__ import annotations

from datetime import UTC, datetime

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from mtasts import Mode
from mtasts.publish.plan import plan_deployment, zone_quote

NOW = datetime(2026, 11, 29, 8, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        pytest.param("v=STSv1; id=1", '"v=STSv1; id=1"', id="plain"),
        pytest.param('a"b\\c', '"a\\"b\\\\c"', id="quote-and-backslash"),
        pytest.param("caf\u00e9\tx", '"caf\\195\\169\\009x"', id="non-ascii-and-tab"),
        pytest.param("", '""', id="empty"),
    ],
)
def test_zone_quote(value: str, quoted: str) -> None:
    assert zone_quote(value) == quoted
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, quoted)
    assert b"".join(rdata.strings) == value.encode()  # what a resolver joins is the value again


@pytest.mark.parametrize("length", [255, 256, 511, 765, 766])
def test_long_values_are_cut_at_255_bytes(length: int) -> None:
    value = "x" * length
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, zone_quote(value))
    assert [len(s) for s in rdata.strings] == [255] * (length // 255) + ([length % 255] if length % 255 else [])
    assert b"".join(rdata.strings) == value.encode()


def test_fragment_loads_into_the_domains_zone() -> None:
    plan = plan_deployment(
        "example.com", ["mx.example.com"], Mode.TESTING, 604800, ["mailto:tlsrpt@example.com"], now=NOW
    )
    zone_text = "$ORIGIN example.com.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\n"
    zone = dns.zone.from_text(zone_text + plan.zone_text(), origin="example.com")
    assert zone.get_rdataset("_mta-sts", "TXT")[0].strings == (b"v=STSv1; id=20261129T081500",)
    assert zone.get_rdataset("mta-sts", "A") is None  # commented out until the owner fills it in
    assert plan.files()["zone.txt"] == plan.zone_text().encode()
    assert plan.files()["mta-sts.txt"] == plan.policy.to_text().encode()
