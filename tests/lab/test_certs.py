"""Certificate kinds, checked by real TLS handshakes in memory (ssl.MemoryBIO, no sockets)."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509

from mtasts.lab.certs import EXPIRING_SOON_DAYS, LabCertificates
from mtasts.lab.scenarios import CertKind

NOW = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)
HOST = "mx1.example.mtasts.test"


@pytest.fixture(scope="module")
def certs() -> LabCertificates:
    return LabCertificates(now=dt.datetime.now(dt.UTC), wrong_name="wrong-name.mtasts.test")


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str = HOST) -> str | None:
    """Run a TLS handshake between two in-memory ends; the TLS version agreed."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_end = client.wrap_bio(c_in, c_out, server_hostname=host)
    server_end = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client_end), ("server", server_end)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client_end.version()
    raise AssertionError("handshake did not finish")


def test_good_certificate_verifies(certs: LabCertificates) -> None:
    assert handshake(certs.server_context(CertKind.GOOD, HOST), certs.client_context()) in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        (CertKind.WRONG_NAME, "Hostname mismatch"),
        (CertKind.EXPIRED, "certificate has expired"),
        (CertKind.UNTRUSTED, "unable to get local issuer certificate"),
        (CertKind.SELF_SIGNED, "self-signed certificate"),
        (CertKind.CHAIN_INCOMPLETE, "unable to get local issuer certificate"),
    ],
)
def test_bad_certificate_fails_verification(certs: LabCertificates, kind: CertKind, reason: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        handshake(certs.server_context(kind, HOST), certs.client_context())
    assert reason in str(info.value.verify_message)


def test_chain_incomplete_verifies_once_the_intermediate_is_trusted(certs: LabCertificates) -> None:
    client = certs.client_context()
    client.load_verify_locations(cadata=certs.intermediate_pem.decode())
    assert handshake(certs.server_context(CertKind.CHAIN_INCOMPLETE, HOST), client)


def test_chain_incomplete_sends_only_the_leaf_and_says_where_its_issuer_is(certs: LabCertificates) -> None:
    _key, chain = certs.leaf(CertKind.CHAIN_INCOMPLETE, HOST)
    assert chain.count(b"BEGIN CERTIFICATE") == 1
    leaf = x509.load_pem_x509_certificate(chain)
    intermediate = x509.load_pem_x509_certificate(certs.intermediate_pem)
    assert leaf.issuer == intermediate.subject
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [certs.ca_issuers_url]
    untrusted = x509.load_pem_x509_certificate(certs.leaf(CertKind.UNTRUSTED, HOST)[1])
    with pytest.raises(x509.ExtensionNotFound):
        untrusted.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    _key, good_chain = certs.leaf(CertKind.GOOD, HOST)
    assert good_chain.count(b"BEGIN CERTIFICATE") == 1  # issued by the root itself


def test_untrusted_verifies_against_its_own_root(certs: LabCertificates) -> None:
    client = ssl.create_default_context(cadata=certs.untrusted_ca_pem.decode())
    assert handshake(certs.server_context(CertKind.UNTRUSTED, HOST), client)


def test_validity_periods() -> None:
    certs = LabCertificates(now=NOW)
    soon = x509.load_pem_x509_certificate(certs.leaf(CertKind.EXPIRING_SOON, HOST)[1])
    assert soon.not_valid_after_utc == NOW + dt.timedelta(days=EXPIRING_SOON_DAYS)
    expired = x509.load_pem_x509_certificate(certs.leaf(CertKind.EXPIRED, HOST)[1])
    assert expired.not_valid_after_utc < NOW
    wrong = x509.load_pem_x509_certificate(certs.leaf(CertKind.WRONG_NAME, HOST)[1])
    names = wrong.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert HOST not in names.get_values_for_type(x509.DNSName)


def test_tls10_only_context(certs: LabCertificates) -> None:
    server = certs.server_context(CertKind.GOOD, HOST, tls10_only=True)
    assert server.maximum_version is ssl.TLSVersion.TLSv1
    with pytest.raises(ssl.SSLError):
        handshake(server, certs.client_context())
    assert handshake(server, certs.legacy_client_context()) == "TLSv1"


def test_contexts_are_cached(certs: LabCertificates) -> None:
    assert certs.server_context(CertKind.GOOD, HOST) is certs.server_context(CertKind.GOOD, HOST)
