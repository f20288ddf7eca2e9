"""Signing in and out, sessions, roles and a proxy's user header, as a browser and an API
client meet them (httpx against the app, in-process, over a real SQLite database)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mtasts.web.auth import AuthSettings
from tests.web.auth_fixtures import PASSWORDS, MakeSite, form_token, sign_in, site  # noqa: F401


def _set_cookie(response: httpx.Response, name: str) -> str:
    lines = [v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith(f"{name}=")]
    assert len(lines) == 1, lines
    return lines[0]


async def test_pages_need_an_account(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        page = await client.get("/check", params={"domain": "example.com"})
        assert page.status_code == 303
        location = urlsplit(page.headers["location"])
        assert location.path == "/login"
        assert parse_qs(location.query) == {"next": ["/check?domain=example.com"]}
        api = await client.get("/api/check", params={"domain": "example.com"})
        assert api.status_code == 401
        assert api.json()["error"]["code"] == "login-required"
        assert (await client.get("/static/style.css")).status_code == 200
        form = await client.get("/login")
        assert form.status_code == 200
        assert 'id="sign-in"' in form.text


async def test_signing_in_returns_to_the_page_asked_for(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        response = await sign_in(client, "bob", next="/?lang=ja")
        assert response.status_code == 303
        assert response.headers["location"] == "/?lang=ja"
        home = await client.get("/")
        assert home.status_code == 200
        assert "Signed in as bob (read-only)" in home.text
        assert 'id="logout"' in home.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil"])
async def test_signing_in_never_sends_the_browser_elsewhere(site: MakeSite, target: str) -> None:  # noqa: F811
    async with site() as s:
        response = await sign_in(s.client(), "bob", next=target)
        assert response.headers["location"] == "/"


async def test_the_session_cookie_is_http_only_lax_and_not_secure_over_http(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        cookie = _set_cookie(await sign_in(s.client(), "alice"), "mtasts_session").lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "path=/" in cookie
        assert "secure" not in cookie
        assert "max-age=43200" in cookie  # 12 hours


async def test_the_session_cookie_is_secure_over_https(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client(base_url="https://web.test")
        cookie = _set_cookie(await sign_in(client, "alice"), "mtasts_session").lower()
        assert "; secure" in cookie
        assert (await client.get("/api/session")).json()["user"] == "alice"  # sent back over HTTPS


async def test_a_trusted_proxys_https_makes_the_cookie_secure(site: MakeSite) -> None:  # noqa: F811
    async with site(trusted_proxies=AuthSettings.parse_networks(["10.0.0.0/8"])) as s:
        for address, secure in (("10.1.2.3", True), ("192.0.2.7", False)):
            client = s.client(address)
            client.headers["x-forwarded-proto"] = "https"
            form = await client.get("/login")
            csrf_cookie = _set_cookie(form, "mtasts_csrf")
            assert ("; secure" in csrf_cookie.lower()) is secure, address
            # the browser speaks HTTPS to the proxy, so it sends Secure cookies back: said by hand
            # here, where httpx sees plain HTTP
            data = {"csrf_token": form_token(form.text), "name": "alice", "password": PASSWORDS["alice"]}
            signed_in = await client.post("/login", data=data, headers={"cookie": csrf_cookie.split(";")[0]})
            cookie = _set_cookie(signed_in, "mtasts_session").lower()
            assert ("; secure" in cookie) is secure, address


async def test_wrong_passwords_and_unknown_users_sign_nobody_in(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        for name, password in (("alice", "bob's long password"), ("mallory", "whatever it is"), ("", "")):
            response = await sign_in(client, name, password)
            assert response.status_code == 403, name
            assert "The user name or the password is wrong." in response.text
            assert "mtasts_session" not in response.cookies
        assert (await client.get("/api/session")).status_code == 401


async def test_logout_revokes_the_session_on_the_server(site: MakeSite) -> None:  # noqa: F811
    """A copy of the cookie taken before logging out opens nothing afterwards."""
    async with site() as s:
        client = s.client()
        await sign_in(client, "alice")
        stolen = client.cookies["mtasts_session"]
        token = (await client.get("/api/session")).json()["csrf_token"]
        out = await client.post("/logout", data={"csrf_token": token})
        assert out.status_code == 303
        assert out.headers["location"] == "/login"
        assert 'mtasts_session=""' in _set_cookie(out, "mtasts_session")
        replay = s.client()
        replay.cookies.set("mtasts_session", stolen)
        response = await replay.get("/api/session")
        assert response.status_code == 401
        assert 'mtasts_session=""' in _set_cookie(response, "mtasts_session")  # the dead cookie is cleared


async def test_a_tampered_session_cookie_is_nobody(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await sign_in(client, "alice")
        value = client.cookies["mtasts_session"]
        token, signature = value.rsplit(".", 1)
        forged = s.client()
        forged.cookies.set("mtasts_session", f"{token[:-1]}{'A' if token[-1] != 'A' else 'B'}.{signature}")
        assert (await forged.get("/api/session")).status_code == 401


async def test_sessions_end_after_their_lifetime_and_when_idle(site: MakeSite) -> None:  # noqa: F811
    async with site(session_seconds=3600.0, idle_seconds=600.0) as s:
        client = s.client()
        await sign_in(client, "alice")
        for _ in range(5):  # used every 9 minutes: the idle limit never strikes
            s.clock.now += 540
            assert (await client.get("/api/session")).status_code == 200
        s.clock.now += 540 + 400  # an hour after signing in
        assert (await client.get("/api/session")).status_code == 401
        await sign_in(client, "alice")
        s.clock.now += 601  # ten minutes without a request
        assert (await client.get("/api/session")).status_code == 401


async def test_removing_a_user_ends_their_sessions(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await sign_in(client, "bob")
        assert s.auth.accounts.remove_user("bob")
        assert (await client.get("/api/session")).status_code == 401


async def test_read_only_users_are_refused_admin_routes(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        bob = s.client()
        await sign_in(bob, "bob")
        refused = await bob.get("/api/audit")
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "code": "forbidden",
            "message": "this needs the admin role; bob is read-only",
        }
        alice = s.client()
        await sign_in(alice, "alice")
        audit = await alice.get("/api/audit")
        assert audit.status_code == 200
        entries = audit.json()["entries"]
        assert [(e["actor"], e["action"]) for e in entries] == [("alice", "login"), ("bob", "login")]
        assert entries[0]["detail"] == "from 127.0.0.1"


async def test_login_attempts_are_rate_limited_per_client(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        guesser = s.client("192.0.2.1")
        for _ in range(5):
            assert (await sign_in(guesser, "alice", "a wrong password")).status_code == 403
        limited = await sign_in(guesser, "alice")  # even the right password, while limited
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "12"
        assert "Too many attempts to sign in" in limited.text
        assert (await sign_in(s.client("192.0.2.2"), "alice")).status_code == 303  # another client
        s.clock.now += 12
        assert (await sign_in(guesser, "alice")).status_code == 303


async def test_public_mode_opens_the_inspector_only(site: MakeSite) -> None:  # noqa: F811
    async with site(public=True) as s:
        anonymous = s.client()
        assert (await anonymous.get("/")).status_code == 200
        assert (await anonymous.get("/result/unknown")).status_code == 404  # the page itself, not the login
        assert (await anonymous.get("/api/audit")).status_code == 401
        assert (await anonymous.get("/api/session")).status_code == 401


async def test_a_trusted_proxys_user_header_signs_in(site: MakeSite) -> None:  # noqa: F811
    settings = {"proxy_user_header": "X-Remote-User", "trusted_proxies": AuthSettings.parse_networks(["127.0.0.1"])}
    async with site(**settings) as s:
        proxy = s.client("127.0.0.1")
        me = await proxy.get("/api/session", headers={"x-remote-user": "alice"})
        assert me.json() | {"csrf_token": ""} == {"user": "alice", "role": "admin", "via": "proxy", "csrf_token": ""}
        stranger = await proxy.get("/api/session", headers={"x-remote-user": "carol@example.com"})
        assert stranger.json()["role"] == "read-only"  # not a local account: may look only
        assert (await proxy.get("/api/audit", headers={"x-remote-user": "carol@example.com"})).status_code == 403
        page = await proxy.get("/", headers={"x-remote-user": "alice"})
        assert "Signed in as alice (admin)" in page.text
        assert 'id="logout"' not in page.text  # the proxy signs people out, not us
        spoofed = s.client("192.0.2.9")  # not the proxy: the header means nothing
        assert (await spoofed.get("/api/session", headers={"x-remote-user": "alice"})).status_code == 401
        assert (await proxy.get("/api/session", headers={"x-remote-user": "no spaces!"})).status_code == 401


def test_a_proxy_header_without_a_trusted_proxy_is_refused() -> None:
    with pytest.raises(ValueError, match="name its address too"):
        AuthSettings(proxy_user_header="X-Remote-User")
    with pytest.raises(ValueError, match="not an IP address"):
        AuthSettings.parse_networks(["proxy.example"])
