"""CSRF protection: every state-changing request needs the token of the session (or, before
signing in, of the signed double-submit cookie), as a form field or an ``X-CSRF-Token`` header;
a cross-site request is refused even with it. httpx against the app, in-process."""

from __future__ import annotations

from tests.web.auth_fixtures import MakeSite, form_token, sign_in, site  # noqa: F401


async def test_login_without_a_token_is_refused(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await client.get("/login")  # the browser has the cookie, but the form field is left out
        response = await client.post("/login", data={"name": "alice", "password": "alice's long password"})
        assert response.status_code == 403
        assert "security token is missing" in response.text
        assert "mtasts_session" not in response.cookies


async def test_login_with_a_wrong_token_is_refused(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await client.get("/login")
        data = {"csrf_token": "x" * 43, "name": "alice", "password": "alice's long password"}
        response = await client.post("/login", data=data)
        assert response.status_code == 403
        assert "csrf-invalid" in response.text


async def test_a_token_without_its_cookie_is_refused(site: MakeSite) -> None:  # noqa: F811
    """The token of one browser's form is worthless in another browser (double submit)."""
    async with site() as s:
        token = form_token((await s.client().get("/login")).text)
        other = s.client()
        response = await other.post("/login", data={"csrf_token": token, "name": "alice", "password": "x" * 12})
        assert response.status_code == 403


async def test_a_forged_csrf_cookie_is_not_accepted(site: MakeSite) -> None:  # noqa: F811
    """An attacker who can set a cookie (a sibling subdomain) cannot pick the token: the
    cookie is signed with the server's key."""
    async with site() as s:
        client = s.client()
        client.cookies.set("mtasts_csrf", "chosen.by-the-attacker")
        response = await client.post(
            "/login", data={"csrf_token": "chosen", "name": "alice", "password": "alice's long password"}
        )
        assert response.status_code == 403


async def test_the_right_token_signs_in(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        response = await sign_in(s.client(), "alice")
        assert response.status_code == 303
        assert "mtasts_session" in response.cookies


async def test_after_login_only_the_session_token_is_accepted(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        anonymous_token = form_token((await client.get("/login")).text)
        await sign_in(client, "alice")
        session = (await client.get("/api/session")).json()
        assert session["user"] == "alice"
        assert session["csrf_token"] != anonymous_token
        refused = await client.post("/logout", data={"csrf_token": anonymous_token})
        assert refused.status_code == 403
        assert (await client.get("/api/session")).status_code == 200  # still signed in
        done = await client.post("/logout", headers={"x-csrf-token": session["csrf_token"]})
        assert done.status_code == 303


async def test_api_calls_need_the_header(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await sign_in(client, "alice")
        missing = await client.post("/logout", headers={"content-type": "application/json"}, content=b"{}")
        assert missing.status_code == 403
        assert missing.headers["content-type"].startswith("text/html")
        wrong = await client.post("/api/session", headers={"x-csrf-token": "nope"})
        assert wrong.status_code == 403
        assert wrong.json() == {
            "error": {"code": "csrf-invalid", "message": "the CSRF token is wrong: reload the page and try again"}
        }


async def test_cross_site_requests_are_refused_even_with_the_token(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await sign_in(client, "alice")
        token = (await client.get("/api/session")).json()["csrf_token"]
        for headers in (
            {"origin": "https://evil.example"},
            {"sec-fetch-site": "cross-site"},
            {"sec-fetch-site": "same-site", "origin": "null"},  # a sibling subdomain may be someone else's
        ):
            response = await client.post("/logout", headers={"x-csrf-token": token, **headers})
            assert response.status_code == 403, headers
            assert "another site" in response.text
        same_site = await client.post("/logout", headers={"x-csrf-token": token, "origin": "http://web.test"})
        assert same_site.status_code == 303


async def test_safe_methods_need_no_token(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await sign_in(client, "bob")
        assert (await client.get("/")).status_code == 200
        assert (await client.head("/")).status_code in (200, 405)


async def test_an_oversized_form_is_refused_before_it_is_parsed(site: MakeSite) -> None:  # noqa: F811
    async with site() as s:
        client = s.client()
        await client.get("/login")
        response = await client.post("/login", data={"name": "a" * (70 * 1024)})
        assert response.status_code == 413
