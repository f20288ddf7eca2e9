"""The inspector's pages in-process over the real lab: the form, the permanent link, progress
without JavaScript, every finding with its meaning and fix, the verdict per MX, readiness,
MTA-STS and TLS reporting apart, escaping, and mounting under a prefix."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from mtasts.web import WebSettings, create_app
from mtasts.web.app import SECURITY_HEADERS
from tests.web.conftest import Client, finished, section

pytestmark = pytest.mark.lab


async def test_form_page(web: Client) -> None:
    async with web() as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in page.text
    assert '<form class="check" action="/check" method="get"' in page.text
    assert 'name="domain"' in page.text
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value


async def test_check_gives_a_permanent_link_with_every_finding_and_fix(web: Client, lab: Any) -> None:
    domain = lab.domain("mx-cert-expired")
    async with web() as client:
        started = await client.get("/check", params={"domain": domain})
        assert started.status_code == 303
        link = started.headers["location"]
        assert re.fullmatch(r"/result/[A-Za-z0-9_-]{16}", link)
        page = await finished(client, link)
        again = await client.get(link)  # the link keeps showing the same result
    assert page.status_code == 200
    html = page.text
    assert f'<h1 class="domain">{domain}</h1>' in html
    assert '<code class="code">mx-cert-expired</code>' in html
    assert "an MX certificate has expired" in html  # the catalogue's meaning
    assert f"Renew the certificate of mx1.{domain} and reload the MTA." in html  # the fix
    assert "the certificate expired on" in html  # the message
    verdict = section(html, "verdict")
    assert "Senders would defer mail" in verdict
    assert f'<th scope="row">mx1.{domain}</th>' in verdict
    assert "skips it" in verdict
    assert "would skip it: the certificate expired" in verdict
    assert f'href="http://inspector.test{link}"' in html  # the permanent link, shown
    assert again.text == html


async def test_mta_sts_and_tls_reporting_are_separate_sections(web: Client, lab: Any) -> None:
    async with web() as client:
        started = await client.get("/check", params={"domain": lab.domain("tlsrpt-missing")})
        html = (await finished(client, started.headers["location"])).text
    mta_sts, tlsrpt = section(html, "mta-sts"), section(html, "tlsrpt")
    code = '<code class="code">tlsrpt-missing</code>'
    assert code in tlsrpt
    assert "no TLS reporting record" in tlsrpt
    assert code not in mta_sts
    assert "No MTA-STS findings." in mta_sts
    assert "mode enforce" in mta_sts


async def test_enforce_readiness_line(web: Client, lab: Any) -> None:
    async with web() as client:
        started = await client.get("/check", params={"domain": lab.domain("testing-ok")})
        html = (await finished(client, started.headers["location"])).text
    assert "policy-mode-testing" in html
    readiness = re.search(r'<p class="readiness" id="readiness">(.*?)</p>', html, re.S)
    assert readiness is not None
    assert "Enforce readiness:" in readiness.group(1)
    assert "switching to enforce now would block no MX" in readiness.group(1)


async def test_progress_page_works_without_javascript(web: Client, lab: Any) -> None:
    """A check still running (the policy host hangs until the 2 s timeout) is a page that
    refreshes itself without JavaScript and names the domain and the time budget."""
    async with web() as client:
        started = await client.get("/check", params={"domain": lab.domain("policy-hang")})
        link = started.headers["location"]
        pending = await client.get(link)
        assert pending.status_code == 200
        assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in pending.text
        assert '<script src="/static/progress.js" defer></script>' in pending.text
        assert f"Checking {lab.domain('policy-hang')}" in pending.text
        assert "(at most 8 s)" in pending.text
        done = await finished(client, link)
    assert "policy-timeout" in done.text
    assert "http-equiv" not in done.text


async def test_progress_events_by_domain(web: Client, lab: Any) -> None:
    async with web() as client:
        events = await client.get("/check/events", params={"domain": lab.domain("policy-hang")})
    assert events.headers["content-type"].startswith("text/event-stream")
    blocks = [b for b in events.text.split("\n\n") if b]
    assert blocks[0].startswith("event: progress\ndata: ")
    assert '"state": "running"' in blocks[0] or '"state": "waiting"' in blocks[0]
    assert blocks[-1].startswith("event: done\ndata: ")
    assert re.search(r'"url": "/result/[A-Za-z0-9_-]{16}"', blocks[-1])


async def test_a_script_in_the_domain_is_shown_escaped(web: Client) -> None:
    async with web() as client:
        page = await client.get("/check", params={"domain": "<script>alert(1)</script>"})
    assert page.status_code == 400
    assert "<script>alert" not in page.text
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page.text
    assert "is not a valid domain name" in page.text


async def test_empty_and_overlong_input(web: Client) -> None:
    async with web() as client:
        empty = await client.get("/check", params={"domain": " "})
        long = await client.get("/check", params={"domain": "a" * 5000})
    assert empty.status_code == 400
    assert "Type a domain name, such as example.com." in empty.text
    assert long.status_code == 400
    assert "too long to be a domain name" in long.text


async def test_unknown_result(web: Client) -> None:
    async with web() as client:
        page = await client.get("/result/no-such-result")
    assert page.status_code == 404
    assert "Result not found" in page.text


async def test_results_are_forgotten_after_keep_seconds(web: Client, lab: Any) -> None:
    now = [1000.0]
    async with web(clock=lambda: now[0], keep_seconds=60) as client:
        started = await client.get("/check", params={"domain": lab.domain("enforce-ok")})
        link = started.headers["location"]
        assert (await finished(client, link)).status_code == 200
        now[0] += 61
        gone = await client.get(link)
    assert gone.status_code == 404


async def test_every_resource_is_served_by_the_app(web: Client, lab: Any) -> None:
    """No page names a resource elsewhere: every src/href is a path of this server, and the
    stylesheet and script come from the package."""
    async with web() as client:
        pages = [await client.get("/")]
        started = await client.get("/check", params={"domain": lab.domain("policy-hang")})
        pages.append(await client.get(started.headers["location"]))
        pages.append(await finished(client, started.headers["location"]))
        urls = {u for p in pages for u in re.findall(r'(?:src|href|action)="([^"]*)"', p.text)}
        assets = {u for u in urls if u.startswith("/static/")}
        fetched = {u: await client.get(u) for u in assets}
    for url in urls:
        assert (url.startswith("/") and not url.startswith("//")) or url.startswith("http://inspector.test/"), url
    assert assets == {"/static/style.css", "/static/progress.js"}
    assert fetched["/static/style.css"].headers["content-type"].startswith("text/css")
    assert "javascript" in fetched["/static/progress.js"].headers["content-type"]
    assert all(r.status_code == 200 for r in fetched.values())


async def test_mounted_under_a_prefix(lab_network: Any, lab: Any) -> None:
    """Mounted beside other apps, the links follow the mount point."""
    inner = create_app(WebSettings(network=lab_network))
    outer = Starlette(routes=[Mount("/inspect", inner)])
    transport = httpx.ASGITransport(app=outer)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://host.test") as client:
            form = await client.get("/inspect/")
            style = await client.get("/inspect/static/style.css")
            started = await client.get("/inspect/check", params={"domain": lab.domain("enforce-ok")})
            link = started.headers["location"]
            events = await client.get("/inspect/check/events", params={"id": link.rsplit("/", 1)[1]})
            result = await client.get(link)
    finally:
        await inner.state.checks.close()
    assert 'action="/inspect/check"' in form.text
    assert 'href="/inspect/static/style.css"' in form.text
    assert style.status_code == 200
    assert link.startswith("/inspect/result/")
    assert f'"url": "{link}"' in events.text
    assert "No problems found." in result.text
