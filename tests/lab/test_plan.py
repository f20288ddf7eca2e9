"""Planning is pure: records, addresses and host behaviour from scenarios, no sockets."""

from __future__ import annotations

import ipaddress

from mtasts.core.policy import parse_policy
from mtasts.lab.plan import POLICY_PATH, Plan, plan_lab, txt_to_text
from mtasts.lab.scenarios import CATALOGUE, CertKind

ZONE = "mtasts.test"


def make_plan() -> Plan:
    return plan_lab(CATALOGUE.values(), zone=ZONE, network=ipaddress.IPv4Network("127.66.0.0/16"))


def records(plan: Plan, name: str, rdtype: str) -> list[str]:
    return [r.data for r in plan.records if r.name == name and r.rdtype == rdtype]


def test_every_host_has_its_own_address() -> None:
    plan = make_plan()
    addresses = list(plan.addresses.values())
    assert len(addresses) == len(set(addresses))
    assert plan.nameserver_address == "127.66.0.1"
    assert all(ipaddress.IPv4Address(a) in ipaddress.IPv4Network("127.66.0.0/16") for a in addresses)


def test_correct_domain() -> None:
    plan = make_plan()
    d = f"enforce-ok.{ZONE}"
    assert records(plan, d, "MX") == [f"10 mx1.{d}."]
    assert records(plan, f"_mta-sts.{d}", "TXT") == ['"v=STSv1; id=20261129T081500"']
    assert records(plan, f"_smtp._tls.{d}", "TXT") == [f'"v=TLSRPTv1; rua=https://tlsrpt.{ZONE}/v1/report"']
    (host,) = [h for h in plan.https_hosts if h.name == f"mta-sts.{d}"]
    policy = parse_policy(host.answers[POLICY_PATH].body)
    assert policy.matches(f"mx1.{d}")
    assert host.cert is CertKind.GOOD


def test_unreachable_mx_has_an_address_but_no_listener() -> None:
    plan = make_plan()
    mx = f"mx1.mx-unreachable.{ZONE}"
    assert records(plan, mx, "A") == [plan.addresses[mx]]
    assert mx not in {h.name for h in plan.smtp_hosts}


def test_cname_policy_host_keeps_the_certificate_name() -> None:
    plan = make_plan()
    d = f"cname-policy-host-ok.{ZONE}"
    assert records(plan, f"mta-sts.{d}", "CNAME") == [f"policy.{d}."]
    (host,) = [h for h in plan.https_hosts if h.address == plan.addresses[f"policy.{d}"]]
    assert host.name == f"mta-sts.{d}"


def test_too_large_policy_is_valid_but_over_64_kib() -> None:
    plan = make_plan()
    (host,) = [h for h in plan.https_hosts if h.name == f"mta-sts.policy-too-large.{ZONE}"]
    body = host.answers[POLICY_PATH].body
    assert len(body) > 64 * 1024
    parse_policy(body)


def test_split_txt_rrset_is_larger_than_an_edns_udp_answer() -> None:
    plan = make_plan()
    rrset = records(plan, f"_mta-sts.split-txt-ok.{ZONE}", "TXT")
    assert sum(len(r) for r in rrset) > 1232
    assert '"v=STSv1;" " id=" "20261129T081500"' in rrset


def test_txt_to_text_escapes() -> None:
    assert txt_to_text(['a"b', "c\\d"]) == '"a\\"b" "c\\\\d"'
