"""Built-in ACME without a CA: the port-80 challenge listener answers only challenges, the
storage directory swaps certificates whole, the ``[acme]`` keys, the command's refusals.

(Issuance, renewal and a failing CA against a real CA are in ``test_acme_pebble.py``.)"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import stat
from pathlib import Path

import pytest
import trustme

from mtasts.publish.acme import AcmeManager
from mtasts.publish.certstore import CertificateStore
from mtasts.publish.config import ConfigError, ListenAddress, parse_config
from mtasts.publish.host import PolicyHost
from mtasts.publish.snapshot import ACME_PENDING, load_snapshot
from tests.publish.hosting import canonical_body, fetch

pytestmark = pytest.mark.lab

DOMAIN = "d0001.publish.test"
HOST = f"mta-sts.{DOMAIN}"


def acme_config(tmp_path: Path, *, challenge: str = "http-01") -> Path:
    path = tmp_path / "publish.toml"
    path.write_text(
        '[server]\nlisten = ["127.0.0.1:0"]\nadmin = "off"\n\n'
        # never contacted in these tests: the manager's loop is not started
        f'[acme]\ndirectory = "https://127.0.0.1:9/dir"\nchallenge = "{challenge}"\nstorage = "acme"\n'
        'listen = ["127.0.0.1:0"]\n\n'
        f'[[domain]]\nname = "{DOMAIN}"\nmode = "testing"\nmx = ["mx1.{DOMAIN}", "*.mx.{DOMAIN}"]\n'
        "max_age = 86401\n"
    )
    return path


def issue(ca: trustme.CA, name: str) -> tuple[bytes, bytes]:
    issued = ca.issue_cert(name)
    return b"".join(blob.bytes() for blob in issued.cert_chain_pems), issued.private_key_pem.bytes()


def plain_get(port: int, path: str, host: str, method: str = "GET") -> tuple[int, list[str], bytes, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers={"Host": host})
        response = connection.getresponse()
        return (
            response.status,
            response.msg.get_all("Content-Type") or [],
            response.read(),
            response.getheader("Location"),
        )
    finally:
        connection.close()


async def test_the_challenge_listener_answers_only_pending_challenges(tmp_path: Path) -> None:
    host = PolicyHost(load_snapshot(acme_config(tmp_path)))
    manager = AcmeManager(host)
    await host.start()
    await manager.start(run=False)
    try:
        [bound] = manager.bound
        token = "n8HNXUu_PcCSN0Wh9Zf-HZVaDVWKUazNPD6mWLu34AI"
        authorization = f"{token}.thumbprint-of-the-account-key"
        manager.tokens.put(token, HOST, authorization)
        challenge = f"/.well-known/acme-challenge/{token}"

        async def get(path: str, host_header: str = f"{HOST}:{bound.port}", method: str = "GET") -> object:
            return await asyncio.to_thread(plain_get, bound.port, path, host_header, method)

        assert await get(challenge) == (200, ["application/octet-stream"], authorization.encode(), None)
        assert await get(challenge, method="HEAD") == (200, ["application/octet-stream"], b"", None)
        for path, host_header, method in [
            (challenge, f"mta-sts.other.test:{bound.port}", "GET"),  # the token is not for that name
            (challenge, f"{HOST}:{bound.port}", "POST"),
            ("/.well-known/acme-challenge/unknown-token", HOST, "GET"),
            ("/.well-known/acme-challenge/", HOST, "GET"),
            ("/.well-known/mta-sts.txt", HOST, "GET"),  # never the policy over plain HTTP
            ("/", HOST, "GET"),
        ]:
            status, _, _, location = await get(path, host_header, method)  # type: ignore[misc]
            assert (status, location) == (404, None), (path, host_header, method)
        manager.tokens.remove(token)
        assert (await get(challenge))[0] == 404  # type: ignore[index]
    finally:
        await manager.stop()
        await host.stop()


async def test_a_stored_certificate_is_served_after_refresh_and_keys_are_private(tmp_path: Path) -> None:
    config = acme_config(tmp_path)
    snapshot = load_snapshot(config)
    assert snapshot.sites == {}
    assert snapshot.unserved == ((DOMAIN, ACME_PENDING),)
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    host = PolicyHost(snapshot)
    await host.start()
    try:
        store = CertificateStore(tmp_path / "acme")
        saved = [store.save(HOST, *issue(ca, HOST)) for _ in range(3)]
        assert store.current(HOST) == saved[-1]
        assert stat.S_IMODE(saved[-1].key.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "acme").stat().st_mode) == 0o700
        generations = sorted(p.name for p in saved[-1].cert.parent.parent.iterdir() if not p.is_symlink())
        assert generations == sorted(p.cert.parent.name for p in saved[1:])  # the two newest are kept
        outcome = await host.refresh()
        assert outcome.ok
        assert outcome.served == 1
        status, _, body = await asyncio.to_thread(fetch, host.bound[0].port, HOST, context)
        assert (status, body) == (200, canonical_body(DOMAIN))
    finally:
        await host.stop()


def test_acme_listen_and_ca_file_are_read_and_checked(tmp_path: Path) -> None:
    config = parse_config(
        '[acme]\nlisten = ["192.0.2.1:80", "[2001:db8::1]:80"]\nca_file = "ca.pem"\n', tmp_path / "publish.toml"
    )
    assert config.acme is not None
    assert config.acme.listen == (ListenAddress("192.0.2.1", 80), ListenAddress("2001:db8::1", 80))
    assert config.acme.ca_file == tmp_path / "ca.pem"
    default = parse_config("[acme]\n", tmp_path / "publish.toml").acme
    assert default is not None
    assert default.listen == (ListenAddress("0.0.0.0", 80), ListenAddress("::", 80))
    with pytest.raises(ConfigError) as caught:
        parse_config('[acme]\nlisten = ["example.com:80"]\nca_file = 3\n', tmp_path / "publish.toml")
    assert [(p.key, p.line) for p in caught.value.problems] == [("acme.listen", 2), ("acme.ca_file", 3)]
