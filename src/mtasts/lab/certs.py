"""The lab's certificates: one trusted test CA and every kind of bad certificate.

A real deployment fails in a handful of ways (wrong name, expired, untrusted issuer,
self-signed, missing intermediate); :class:`LabCertificates` makes each on demand, with
ECDSA keys so that a whole catalogue is ready in milliseconds. Only the root of
:attr:`LabCertificates.ca_pem` is trusted by clients; the intermediate CA is trusted through
the root, but a ``chain-incomplete`` server does not send it. Nothing here opens a socket.
"""

from __future__ import annotations

import datetime as dt
import ssl
import warnings

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from mtasts.lab.scenarios import CertKind

__all__ = ["EXPIRING_SOON_DAYS", "TLS10_CIPHERS", "LabCertificates", "allow_tls10"]

EXPIRING_SOON_DAYS = 3
"""An ``expiring-soon`` certificate is valid for this many more days."""
TLS10_CIPHERS = "DEFAULT:@SECLEVEL=0"
"""OpenSSL 3 refuses TLS 1.0 at its default security level; both ends need this to talk 1.0."""

_KEY_TYPE = trustme.KeyType.ECDSA


class LabCertificates:
    """The lab's PKI and the server :class:`ssl.SSLContext` for each (kind, host name).

    ``now`` anchors validity periods (expired, expiring soon); ``wrong_name`` is the name a
    ``wrong-name`` certificate is issued for. Leaf certificates and contexts are made on first
    use and cached, so a lab only pays for the hosts it serves.
    """

    def __init__(
        self,
        *,
        now: dt.datetime,
        wrong_name: str = "wrong-name.invalid",
        ca_issuers_url: str = "http://ca.mtasts.test/intermediate.crt",
    ) -> None:
        self.now = now
        self.wrong_name = wrong_name
        self.ca_issuers_url = ca_issuers_url
        self.ca = trustme.CA(key_type=_KEY_TYPE, organization_name="mtasts lab root")
        self.intermediate = trustme.CA(
            parent_cert=self.ca, key_type=_KEY_TYPE, organization_name="mtasts lab intermediate"
        )
        self.untrusted_ca = trustme.CA(key_type=_KEY_TYPE, organization_name="mtasts lab untrusted")
        self._contexts: dict[tuple[CertKind, str, bool], ssl.SSLContext] = {}
        self._leaves: dict[tuple[CertKind, str], tuple[bytes, bytes]] = {}

    @property
    def ca_pem(self) -> bytes:
        """The trusted root certificate (PEM): what clients put in their trust store."""
        return bytes(self.ca.cert_pem.bytes())

    @property
    def intermediate_pem(self) -> bytes:
        """The intermediate CA certificate (PEM) that ``chain-incomplete`` servers do not send."""
        return bytes(self.intermediate.cert_pem.bytes())

    @property
    def untrusted_ca_pem(self) -> bytes:
        """The root of ``untrusted`` certificates (PEM), for tests that want to trust it anyway."""
        return bytes(self.untrusted_ca.cert_pem.bytes())

    def leaf(self, kind: CertKind, host: str) -> tuple[bytes, bytes]:
        """``(private key PEM, certificate chain PEM)`` exactly as a server of ``kind`` presents it."""
        key = (kind, host)
        cached = self._leaves.get(key)
        if cached is None:
            cached = self._leaves[key] = self._make_leaf(kind, host)
        return cached

    def server_context(self, kind: CertKind, host: str, *, tls10_only: bool = False) -> ssl.SSLContext:
        """A server context presenting a ``kind`` certificate for ``host``.

        Normal servers speak TLS 1.2 and later; ``tls10_only`` servers speak TLS 1.0 and nothing
        else (OpenSSL 3 needs security level 0 for that).
        """
        key = (kind, host, tls10_only)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if tls10_only:
                allow_tls10(context, only=True)
            else:
                context.minimum_version = ssl.TLSVersion.TLSv1_2
            private_key, chain = self.leaf(kind, host)
            with trustme.Blob(private_key + chain).tempfile() as path:
                context.load_cert_chain(path)
            self._contexts[key] = context
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the lab root (host names checked)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def legacy_client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the lab root and still accepts TLS 1.0."""
        return allow_tls10(self.client_context())

    def _make_leaf(self, kind: CertKind, host: str) -> tuple[bytes, bytes]:
        day = dt.timedelta(days=1)
        if kind is CertKind.SELF_SIGNED:
            return _self_signed(host, self.now - day, self.now + 365 * day)
        if kind is CertKind.CHAIN_INCOMPLETE:
            # as public CAs do, the leaf says where its issuer can be downloaded (AIA
            # caIssuers): that is how a checker tells "intermediate not sent" from "unknown CA"
            return _issued_by(self.intermediate, host, self.now - day, self.now + 365 * day, self.ca_issuers_url)
        if kind is CertKind.MALFORMED_SAN:
            return _malformed_san(self.ca, host, self.now - day, self.now + 365 * day)
        issuer = self.untrusted_ca if kind is CertKind.UNTRUSTED else self.ca
        not_before, not_after = self.now - day, self.now + 365 * day
        if kind is CertKind.EXPIRED:
            not_before, not_after = self.now - 90 * day, self.now - day
        elif kind is CertKind.EXPIRING_SOON:
            not_after = self.now + EXPIRING_SOON_DAYS * day
        name = self.wrong_name if kind is CertKind.WRONG_NAME else host
        leaf = issuer.issue_cert(name, not_before=not_before, not_after=not_after, key_type=_KEY_TYPE)
        pems = [blob.bytes() for blob in leaf.cert_chain_pems]
        return bytes(leaf.private_key_pem.bytes()), b"".join(pems)


def allow_tls10(context: ssl.SSLContext, *, only: bool = False) -> ssl.SSLContext:
    """Let ``context`` negotiate TLS 1.0 (``only``: nothing newer); the lab must be able to be old.

    Python warns that TLS 1.0 is deprecated; here it is the point, so the warning is silenced.
    """
    context.set_ciphers(TLS10_CIPHERS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        if only:
            context.maximum_version = ssl.TLSVersion.TLSv1
    return context


def _issued_by(
    issuer: trustme.CA, host: str, not_before: dt.datetime, not_after: dt.datetime, ca_issuers_url: str
) -> tuple[bytes, bytes]:
    """A leaf for ``host`` signed by ``issuer``, with an AIA caIssuers URL; the chain is the leaf alone."""
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(ca_issuers_url)
            )
        ]
    )
    return _signed_leaf(issuer, host, not_before, not_after, x509.SubjectAlternativeName([x509.DNSName(host)]), aia)


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _malformed_san(
    issuer: trustme.CA, host: str, not_before: dt.datetime, not_after: dt.datetime
) -> tuple[bytes, bytes]:
    """A leaf for ``host`` from the trusted root whose subjectAltName holds ``host`` and a
    second dNSName with the byte 0xE9 (``café`` in Latin-1): not an IA5String, so strict X.509
    parsers (``cryptography``, Go) refuse the certificate, while OpenSSL validates it for
    ``host``. ``cryptography``'s builder will not write such a name, so the extension's DER is
    written here by hand: ``SEQUENCE { [2] IMPLICIT IA5String, [2] ... }``."""
    names = b""
    for name in (host.encode("ascii"), b"caf\xe9." + host.encode("ascii")):
        names += b"\x82" + _der_length(len(name)) + name
    san_der = b"\x30" + _der_length(len(names)) + names
    san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san_der)
    return _signed_leaf(issuer, host, not_before, not_after, san)


def _signed_leaf(
    issuer: trustme.CA,
    host: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
    san: x509.ExtensionType,
    *extra: x509.ExtensionType,
) -> tuple[bytes, bytes]:
    """A server leaf for ``host`` signed by ``issuer`` with the given subjectAltName extension
    (and any ``extra`` non-critical ones): (key PEM, certificate PEM)."""
    issuer_cert = x509.load_pem_x509_certificate(issuer.cert_pem.bytes())
    issuer_key = serialization.load_pem_private_key(issuer.private_key_pem.bytes(), password=None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _self_signed(host: str, not_before: dt.datetime, not_after: dt.datetime) -> tuple[bytes, bytes]:
    """A leaf certificate for ``host`` signed by its own key (not a CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
