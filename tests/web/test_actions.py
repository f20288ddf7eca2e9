"""The publish actions of the domain page (apply, advance to enforce, retire) against the real
world on loopback, as ``tests/publish/test_rollout_lab.py`` stands it up: the policy host is
:class:`~mtasts.publish.host.PolicyHost` (what ``mtasts publish serve`` runs) with its admin
listener, which the action reloads; Debian's ``knotd`` is the zone's authoritative server, both
for the inspector's lookups and for the RFC 2136 updates signed with the TSIG key; the MX is the
lab's SMTP server with a lab-CA certificate (the enforce guard's live check probes it). The web
app runs in-process (httpx over ASGI) with accounts: ``alice`` (admin) and ``bob`` (read-only)
sign in through the login form and act through the pages' forms, as a browser does.

What a sender sees afterwards is read through the inspector's own adapters (DNS through knotd,
the policy fetched over validated HTTPS), not through anything the action returned.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mtasts.core.policy import Mode, Policy
from mtasts.lab.certs import LabCertificates
from mtasts.lab.plan import SmtpHost
from mtasts.lab.scenarios import CertKind
from mtasts.lab.smtp import Mailboxes, SmtpServer
from mtasts.lab.world import random_network
from mtasts.net.dns import DnsClient
from mtasts.net.https import fetch_policy
from mtasts.net.settings import NetworkSettings, parse_nameserver
from mtasts.publish.config import ListenAddress, parse_config
from mtasts.publish.history import Served, SqlPublishHistory
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import load_snapshot
from mtasts.store.store import ReportStore
from mtasts.web import WebSettings, create_app
from mtasts.web.accounts import Accounts, Role, hash_password
from mtasts.web.auth import Auth, AuthSettings
from tests.publish.knot import KEY_ALGORITHM, KEY_NAME, Knot, need_knotd, start_knot
from tests.web.auth_fixtures import FAST, PASSWORDS, START, Clock, form_token, sign_in

pytestmark = pytest.mark.lab

DOMAIN = "webact.publish.test"
OTHER = f"shop.{DOMAIN}"  # stays configured: the host always has a domain to serve
MX = f"mx1.{DOMAIN}"
RUA = f"mailto:tlsrpt@{DOMAIN}"


def policy_body(mode: str) -> bytes:
    """The body a sender must get, built from the core's types alone."""
    return Policy(mode=Mode(mode), max_age=86400, mx=(MX,)).to_text().encode()


class World:
    """knotd, the MX, the policy host, the configuration, the database, the web app."""

    def __init__(self, tmp: Path, knot: Knot, web: str, smtp: SmtpServer, certs: LabCertificates) -> None:
        self.tmp, self.knot, self.web, self.smtp = tmp, knot, web, smtp
        self.config = tmp / "publish.toml"
        self.db = f"sqlite:///{tmp / 'mtasts.sqlite3'}"
        self.ca_file = tmp / "ca.pem"
        self.ca_file.write_bytes(certs.ca_pem)
        for name in (DOMAIN, OTHER):
            private_key, chain = certs.leaf(CertKind.GOOD, f"mta-sts.{name}")
            (tmp / f"{name}.key").write_bytes(private_key)
            (tmp / f"{name}.pem").write_bytes(chain)
        # [server] admin is off in the file: the web is told the listener (--publish-admin)
        self.config.write_text(
            f'[server]\nlisten = ["{web}:0"]\nadmin = "off"\n\n'
            f'[dns]\nserver = "{knot.host}:{knot.port}"\nzone = "{DOMAIN}"\nkey_name = "{KEY_NAME}"\n'
            f'algorithm = "{KEY_ALGORITHM}"\nsecret_file = "{knot.secret_file}"\nttl = 300\n\n'
            f'[[domain]]\nname = "{OTHER}"\nmode = "testing"\nmx = ["{MX}"]\nmax_age = 86400\n'
            f'cert = "{OTHER}.pem"\nkey = "{OTHER}.key"\n'
        )
        self.host = PolicyHost(
            load_snapshot(self.config),
            loader=lambda generation: load_snapshot(self.config, generation=generation),
            listen=[ListenAddress(web, 0)],
            admin=ListenAddress("127.0.0.1", 0),
        )

    def add_domain(self) -> None:
        """The entry ``mtasts publish init`` writes: mode testing, the MX, the rua."""
        with self.config.open("a") as handle:
            handle.write(
                f'\n[[domain]]\nname = "{DOMAIN}"\nmode = "testing"\nmx = ["{MX}"]\nmax_age = 86400\n'
                f'rua = ["{RUA}"]\ncert = "{DOMAIN}.pem"\nkey = "{DOMAIN}.key"\n'
            )

    def network(self) -> NetworkSettings:
        return NetworkSettings(
            nameserver=parse_nameserver(f"{self.knot.host}:{self.knot.port}"),
            ca_file=self.ca_file,
            https_port=self.host.bound[0].port,
            smtp_port=self.smtp.port,
            timeout=5,
        )

    def history(self) -> list[Served]:
        with SqlPublishHistory(ReportStore(self.db)) as history:
            return history.entries(DOMAIN)

    def mode(self) -> Mode:
        entry = parse_config(self.config.read_text(), self.config).domain(DOMAIN)
        assert entry is not None
        return entry.mode

    async def sender_sees(self) -> tuple[tuple[str, ...], bytes | None]:
        """The TXT and the policy body, through the inspector's adapters, as a sender sees them."""
        settings = self.network()
        dns = DnsClient(settings)
        txt = await dns.txt(f"_mta-sts.{DOMAIN}")
        fetched = await fetch_policy(DOMAIN, dns, settings, now=datetime.now(UTC))
        return tuple(b"".join(s).decode() for s in txt.values), fetched.body if fetched.failure is None else None


class Site:
    def __init__(self, world: World) -> None:
        store = ReportStore(world.db)
        self.accounts = Accounts(store)
        self.accounts.open()
        now = datetime.fromtimestamp(START, UTC)
        self.accounts.add_user("alice", hash_password(PASSWORDS["alice"], cost=FAST), Role.ADMIN, now=now)
        self.accounts.add_user("bob", hash_password(PASSWORDS["bob"], cost=FAST), Role.READ_ONLY, now=now)
        assert world.host.admin_bound is not None
        settings = WebSettings(
            db=world.db, publish_config=world.config, network=world.network(), publish_admin=world.host.admin_bound
        )
        self.app = create_app(settings, auth=Auth(self.accounts, AuthSettings(), clock=Clock()))
        self.clients: list[httpx.AsyncClient] = []

    async def signed_in(self, name: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://web.test")
        self.clients.append(client)
        assert (await sign_in(client, name)).status_code == 303
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        await self.app.state.checks.close()
        self.app.state.reports.close()
        self.accounts.close()


@contextlib.asynccontextmanager
async def running_world(tmp: Path) -> AsyncIterator[World]:
    """A :class:`World` running in ``tmp`` (also for tests/web/test_actions_browser.py)."""
    need_knotd()
    certs = LabCertificates(now=datetime.now(UTC))
    hosts = iter(random_network().hosts())
    web, mx_address = str(next(hosts)), str(next(hosts))
    records = [
        f"@ IN MX 10 {MX}.",
        f"mx1 IN A {mx_address}",
        f"mta-sts IN A {web}",
        f'_smtp._tls IN TXT "v=TLSRPTv1; rua={RUA}"',
    ]
    smtp = SmtpServer(
        [SmtpHost(MX, mx_address)], lambda host: certs.server_context(CertKind.GOOD, host.name), Mailboxes()
    )
    with start_knot(tmp / "knot", DOMAIN, records) as knot:
        made = World(tmp, knot, web, smtp, certs)
        await smtp.start()
        await made.host.start()
        try:
            made.add_domain()
            yield made
        finally:
            await made.host.stop()
            await smtp.stop()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_world(tmp_path) as made:
        yield made


@pytest.fixture
async def site(world: World) -> AsyncIterator[Site]:
    made = Site(world)
    try:
        yield made
    finally:
        await made.close()


_FINGERPRINT = re.compile(r'name="fingerprint" value="([0-9a-f]+)"')


def fingerprint(html: str) -> str:
    match = _FINGERPRINT.search(html)
    assert match is not None, "the page has no confirmation form"
    return match.group(1)


async def confirm(client: httpx.AsyncClient, action: str, **extra: str) -> tuple[httpx.Response, httpx.Response]:
    """Open the plan of ``action``, then submit its form as shown (with ``extra`` fields)."""
    plan = await client.get(f"/domains/{DOMAIN}/actions/{action}")
    assert plan.status_code == 200, plan.text
    data = {"csrf_token": form_token(plan.text), "fingerprint": fingerprint(plan.text), **extra}
    return plan, await client.post(f"/domains/{DOMAIN}/actions/{action}", data=data)


async def test_an_admin_applies_testing_and_the_policy_is_served_and_recorded(world: World, site: Site) -> None:
    alice = await site.signed_in("alice")
    domain_page = (await alice.get(f"/domains/{DOMAIN}")).text
    assert f'href="/domains/{DOMAIN}/actions/apply"' in domain_page
    assert "Nobody has acted on this domain from here yet." in domain_page  # an admin sees the audit trail

    plan, done = await confirm(alice, "apply")
    steps = re.findall(r'<li class="step"><code>([a-z-]+)</code>', plan.text)
    assert steps == ["serve", "verify", "record", "publish-txt", "confirm-txt"]
    assert f"publish the TXT record _mta-sts.{DOMAIN}. 300 IN TXT" in plan.text  # [dns] ttl, as published
    assert 'id="refusals"' not in plan.text
    assert done.status_code == 200, done.text
    assert 'data-outcome="done"' in done.text

    (testing,) = world.history()
    assert (testing.mode, testing.body, testing.forced_reason) == (Mode.TESTING, policy_body("testing"), None)
    assert await world.sender_sees() == ((f"v=STSv1; id={testing.policy_id}",), policy_body("testing"))
    for line in (
        "served: reloaded the policy host: generation 2, 2 domains served",
        f"verified: mta-sts.{DOMAIN} serves the new body (sha256 {testing.sha256[:12]})",
        f"recorded: id {testing.policy_id} in the history",
        f"confirmed: _mta-sts.{DOMAIN} answers id={testing.policy_id}",
    ):
        assert line in done.text

    domain_page = (await alice.get(f"/domains/{DOMAIN}")).text
    audit = domain_page[domain_page.index('id="audit"') :]
    row = audit[audit.index('<tr class="audit">') :].split("</tr>")[0]
    assert "<td>alice</td>" in row
    assert "<code>publish-apply</code>" in row
    assert "done; served: reloaded the policy host: generation 2, 2 domains served; verified: " in row
    assert f'id="current-id">{testing.policy_id}<' in domain_page  # the roll-out state follows
    (entry,) = [e for e in site.accounts.audit_entries(domain=DOMAIN) if e.action == "publish-apply"]
    assert entry.actor == "alice"

    again = await alice.get(f"/domains/{DOMAIN}/actions/apply")
    assert 'id="nothing"' in again.text  # applied: nothing left to do, and no button for it
    assert 'id="action-form"' not in again.text
    assert world.history() == [testing]


async def test_a_read_only_user_sees_the_plan_but_may_not_act(world: World, site: Site) -> None:
    bob = await site.signed_in("bob")
    plan = await bob.get(f"/domains/{DOMAIN}/actions/apply")
    assert plan.status_code == 200
    assert re.findall(r'<li class="step"><code>([a-z-]+)</code>', plan.text)[:2] == ["serve", "verify"]
    assert 'id="read-only"' in plan.text
    assert 'id="action-form"' not in plan.text
    domain_page = (await bob.get(f"/domains/{DOMAIN}")).text
    assert 'id="audit"' not in domain_page  # the audit trail is for admins
    assert 'id="action-apply"' not in domain_page  # and so are the links to act: the plan stays at its address
    assert 'id="actions-admin-only"' in domain_page
    assert 'id="stage"' in domain_page  # the roll-out state is for everyone
    japanese_domain = (await bob.get(f"/domains/{DOMAIN}?lang=ja")).text
    assert "公開の操作（設定の適用、enforce に進める、廃止）を実行できるのは管理者だけです。" in japanese_domain
    alice = await site.signed_in("alice")
    admin_page = (await alice.get(f"/domains/{DOMAIN}")).text
    assert all(f'id="action-{name}"' in admin_page for name in ("apply", "enforce", "retire"))
    assert 'id="actions-admin-only"' not in admin_page
    japanese = await bob.get(f"/domains/{DOMAIN}/actions/apply?lang=ja")
    assert "実行できるのは管理者だけです。計画は閲覧できます。" in japanese.text

    token = form_token(plan.text)  # bob's own, valid token: the role refuses, not the CSRF check
    api = (await bob.get(f"/api/domains/{DOMAIN}/actions/apply")).json()
    posted = await bob.post(
        f"/domains/{DOMAIN}/actions/apply", data={"csrf_token": token, "fingerprint": api["fingerprint"]}
    )
    assert posted.status_code == 403
    assert 'id="error"' in posted.text
    by_api = await bob.post(
        f"/api/domains/{DOMAIN}/actions/apply",
        json={"fingerprint": api["fingerprint"]},
        headers={"x-csrf-token": token},
    )
    assert by_api.status_code == 403
    assert by_api.json()["error"]["code"] == "forbidden"
    assert world.history() == []
    assert await world.sender_sees() == ((), None)


async def test_a_post_without_the_csrf_token_is_refused(world: World, site: Site) -> None:
    alice = await site.signed_in("alice")
    plan = await alice.get(f"/domains/{DOMAIN}/actions/apply")
    refused = await alice.post(f"/domains/{DOMAIN}/actions/apply", data={"fingerprint": fingerprint(plan.text)})
    assert refused.status_code == 403
    assert "csrf-missing" in refused.text
    by_api = await alice.post(f"/api/domains/{DOMAIN}/actions/apply", json={"fingerprint": fingerprint(plan.text)})
    assert (by_api.status_code, by_api.json()["error"]["code"]) == (403, "csrf-missing")
    assert world.history() == []
    assert await world.sender_sees() == ((), None)
    assert site.accounts.audit_entries(domain=DOMAIN) == []  # nothing reached the action


async def test_a_refusing_guard_is_shown_and_nothing_changes(world: World, site: Site) -> None:
    alice = await site.signed_in("alice")
    _, applied = await confirm(alice, "apply")
    assert 'data-outcome="done"' in applied.text
    (testing,) = world.history()
    config_before = world.config.read_text()

    plan, refused = await confirm(alice, "enforce")
    assert 'id="refusals"' in plan.text
    assert "testing → enforce refused: in testing for 0 days" in plan.text
    assert 'id="override"' in plan.text  # the --force --reason equivalent, for an admin
    assert f"mode = &#34;enforce&#34; in the entry of {DOMAIN}" in plan.text  # the edit it would make
    assert refused.status_code == 409
    assert 'data-outcome="refused"' in refused.text
    assert "testing → enforce refused: in testing for 0 days" in refused.text
    assert world.config.read_text() == config_before  # the configuration is not edited
    assert world.history() == [testing]
    assert await world.sender_sees() == ((f"v=STSv1; id={testing.policy_id}",), policy_body("testing"))
    (entry, _) = site.accounts.audit_entries(domain=DOMAIN)
    assert (entry.actor, entry.action) == ("alice", "publish-enforce")
    assert entry.detail.startswith("refused: testing → enforce refused")

    _, no_reason = await confirm(alice, "enforce", force="1")
    assert no_reason.status_code == 400  # --force without --reason
    assert "say why" in no_reason.text
    assert world.config.read_text() == config_before

    _, forced = await confirm(alice, "enforce", force="1", reason="lab test: the guards are known")
    assert forced.status_code == 200, forced.text
    assert 'data-outcome="done"' in forced.text
    assert world.mode() is Mode.ENFORCE
    ended, enforce = world.history()
    assert (enforce.mode, enforce.forced_reason) == (Mode.ENFORCE, "lab test: the guards are known")
    assert ended.until == enforce.since
    assert await world.sender_sees() == ((f"v=STSv1; id={enforce.policy_id}",), policy_body("enforce"))
    assert "guard overridden: lab test: the guards are known" in site.accounts.audit_entries(domain=DOMAIN)[0].detail


async def test_a_plan_that_changed_since_it_was_shown_is_not_carried_out(world: World, site: Site) -> None:
    alice = await site.signed_in("alice")
    shown = await alice.get(f"/domains/{DOMAIN}/actions/apply")
    world.config.write_text(world.config.read_text().replace("max_age = 86400\nrua", "max_age = 172800\nrua"))
    stale = await alice.post(
        f"/domains/{DOMAIN}/actions/apply",
        data={"csrf_token": form_token(shown.text), "fingerprint": fingerprint(shown.text)},
    )
    assert stale.status_code == 409
    assert 'data-outcome="changed"' in stale.text
    assert world.history() == []


async def test_retire_from_the_domain_page_serves_mode_none_first(world: World, site: Site) -> None:
    alice = await site.signed_in("alice")
    never = await alice.get(f"/domains/{DOMAIN}/actions/retire")
    assert f"{DOMAIN} was never published: nothing to retire" in never.text
    assert 'id="action-form"' not in never.text
    _, applied = await confirm(alice, "apply")
    assert 'data-outcome="done"' in applied.text

    plan, retired = await confirm(alice, "retire")
    assert f"mode = &#34;none&#34;, max_age = 86400 in the entry of {DOMAIN}" in plan.text
    assert retired.status_code == 200, retired.text
    assert 'data-outcome="done"' in retired.text
    assert world.mode() is Mode.NONE
    none = world.history()[-1]
    assert none.mode is Mode.NONE
    assert await world.sender_sees() == ((f"v=STSv1; id={none.policy_id}",), policy_body("none"))
    assert 'id="next"' in retired.text  # keep serving none, then retire again

    api = (await alice.get(f"/api/domains/{DOMAIN}/actions/retire")).json()
    assert [s["action"] for s in api["plan"]["steps"]] == ["wait"]  # a sender may hold the testing policy


async def test_retire_with_a_max_age_from_the_form(world: World, site: Site) -> None:
    """The retire page's max_age field (as ``mtasts publish retire --max-age``): shown with the
    plan it makes, carried by the confirmation, checked on the server with the CLI's bounds."""
    alice = await site.signed_in("alice")
    _, applied = await confirm(alice, "apply")
    assert 'data-outcome="done"' in applied.text
    config_before = world.config.read_text()

    default = await alice.get(f"/domains/{DOMAIN}/actions/retire")
    assert 'id="max-age" name="max_age" min="0" step="1" value="86400"' in default.text
    for bad in ("-1", "1e3", "ten", "3600.5", "９"):
        refused = await alice.get(f"/domains/{DOMAIN}/actions/retire", params={"max_age": bad})
        assert refused.status_code == 400, bad
        assert "is a whole number of seconds, 0 or more" in refused.text
        posted = await alice.post(
            f"/domains/{DOMAIN}/actions/retire",
            data={"csrf_token": form_token(default.text), "fingerprint": fingerprint(default.text), "max_age": bad},
        )
        assert posted.status_code == 400, bad
        assert 'id="outcome"' not in posted.text
    token = form_token(default.text)
    api = await alice.get(f"/api/domains/{DOMAIN}/actions/retire", params={"max_age": "-5"})
    assert (api.status_code, api.json()["error"]["code"]) == (400, "max-age-invalid")
    for bad_json in ("3600", -1, True, 1.5):
        by_api = await alice.post(
            f"/api/domains/{DOMAIN}/actions/retire",
            json={"fingerprint": fingerprint(default.text), "max_age": bad_json},
            headers={"x-csrf-token": token},
        )
        assert (by_api.status_code, by_api.json()["error"]["code"]) == (400, "max-age-invalid"), bad_json
    assert world.config.read_text() == config_before
    assert world.mode() is Mode.TESTING

    shown = await alice.get(f"/domains/{DOMAIN}/actions/retire", params={"max_age": "600"})
    assert shown.status_code == 200
    assert f"mode = &#34;none&#34;, max_age = 600 in the entry of {DOMAIN}" in shown.text
    assert '<input type="hidden" name="max_age" value="600">' in shown.text
    assert (await alice.get(f"/api/domains/{DOMAIN}/actions/retire?max_age=600")).json()["max_age"] == 600
    # the default's fingerprint does not confirm the plan with 600: nothing is done
    stale = await alice.post(
        f"/domains/{DOMAIN}/actions/retire",
        data={"csrf_token": token, "fingerprint": fingerprint(default.text), "max_age": "600"},
    )
    assert (stale.status_code, 'data-outcome="changed"' in stale.text) == (409, True)
    assert world.config.read_text() == config_before

    retired = await alice.post(
        f"/domains/{DOMAIN}/actions/retire",
        data={"csrf_token": token, "fingerprint": fingerprint(shown.text), "max_age": "600"},
    )
    assert retired.status_code == 200, retired.text
    assert 'data-outcome="done"' in retired.text
    assert "max_age = 600" in world.config.read_text()
    none = world.history()[-1]
    assert (none.mode, none.max_age) == (Mode.NONE, 600)
    body = Policy(mode=Mode.NONE, max_age=600, mx=(MX,)).to_text().encode()
    assert await world.sender_sees() == ((f"v=STSv1; id={none.policy_id}",), body)
