"""TLS as a compliant MTA-STS sender sees it, and the facts an inspector reports.

A sender validates the certificate chain against its trust store, matches the name by DNS-ID
only (RFC 6125: no fallback to the subject CN) and insists on TLS 1.2 or newer (RFC 8461
§4.2, RFC 8996). When that handshake fails, a second, non-validating handshake collects the
facts that say why (the certificate, the chain the server sent, the version it speaks).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache, lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from mtasts.core.untrusted import printable
from mtasts.net._streams import Streams, close_quietly

__all__ = [
    "CertificateInfo",
    "Connector",
    "TlsFailureKind",
    "TlsResult",
    "inspect_tls",
    "probing_context",
    "verifying_context",
]

Connector = Callable[[], Awaitable[Streams]]
"""Opens a fresh connection up to the point where the TLS handshake starts."""

# OpenSSL X509_V_ERR_* codes (x509_vfy.h)
_X509_NOT_YET_VALID = 9
_X509_EXPIRED = 10
_X509_SELF_SIGNED_LEAF = 18
_X509_SELF_SIGNED_IN_CHAIN = 19
_X509_NO_LOCAL_ISSUER = 20
_X509_NO_ISSUER = 2
_X509_LEAF_SIGNATURE = 21
_X509_HOSTNAME_MISMATCH = 62
_OLD_VERSIONS = ("SSLv3", "TLSv1", "TLSv1.1")


class TlsFailureKind(StrEnum):
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    NAME_MISMATCH = "name-mismatch"
    SELF_SIGNED = "self-signed"
    UNTRUSTED = "untrusted"
    CHAIN_INCOMPLETE = "chain-incomplete"
    VERSION_TOO_OLD = "version-too-old"
    TIMEOUT = "timeout"
    HANDSHAKE = "handshake-failed"
    MALFORMED = "malformed"  # OpenSSL validates it, but it is not valid X.509 (strict clients refuse it)


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the server's certificate says, whether or not it validated."""

    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    self_signed: bool
    has_ca_issuers: bool
    chain_length: int
    malformed: str = ""  # why a strict X.509 parser rejects it (OpenSSL may still accept it)

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


@dataclass(frozen=True, slots=True)
class TlsResult:
    """One TLS inspection: ``ok`` when a compliant sender's handshake succeeded."""

    ok: bool
    version: str | None = None
    cipher: str | None = None
    certificate: CertificateInfo | None = None
    failure: TlsFailureKind | None = None
    detail: str = ""


def verifying_context(ca_file: Path | None) -> ssl.SSLContext:
    """The context of a compliant sender: chain and DNS-ID validated, TLS 1.2 or newer."""
    return _verifying_context(None if ca_file is None else str(ca_file))


@cache
def _verifying_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.hostname_checks_common_name = False  # RFC 8461 §4.2 + RFC 6125: DNS-ID only
    return context


@cache
def probing_context() -> ssl.SSLContext:
    """A context that validates nothing and speaks every version, to learn why validation
    failed. Never used to send data."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


async def inspect_tls(
    connect: Connector, host: str, ca_file: Path | None, timeout: float, now: datetime
) -> tuple[TlsResult, Streams | None]:
    """Handshake as a compliant sender; on failure, reconnect without validation to say why.

    Returns the result and, when the validated handshake succeeded, the open streams (the
    caller continues its protocol over them and closes them).
    """
    reader, writer = await connect()
    try:
        await writer.start_tls(verifying_context(ca_file), server_hostname=host, ssl_handshake_timeout=timeout)
    except ssl.SSLCertVerificationError as exc:
        await close_quietly(writer)
        facts = await _probe(connect, host, timeout)
        kind, detail = _classify_verification(exc, facts.certificate if facts else None, host, now)
        return _failed(kind, detail, facts), None
    except TimeoutError:
        await close_quietly(writer)
        return TlsResult(False, failure=TlsFailureKind.TIMEOUT, detail="the TLS handshake timed out"), None
    except (ssl.SSLError, OSError, asyncio.IncompleteReadError) as exc:
        # The server may answer a TLS 1.2+ ClientHello with an alert or by closing the
        # connection; a handshake that allows old versions tells which.
        await close_quietly(writer)
        facts = await _probe(connect, host, timeout)
        if facts is not None and facts.version in _OLD_VERSIONS:
            detail = f"the server only speaks {facts.version}; TLS 1.2 or newer is required"
            return _failed(TlsFailureKind.VERSION_TOO_OLD, detail, facts), None
        return _failed(TlsFailureKind.HANDSHAKE, f"the TLS handshake failed: {_reason(exc)}", facts), None
    except ValueError:
        # OpenSSL completed the handshake, then Python could not decode the certificate it
        # validated (asyncio reads getpeercert() at the end of every handshake, which fails on
        # a subjectAltName that is not IA5String): the certificate is the trouble
        await close_quietly(writer)
        facts = await _probe(connect, host, timeout)
        return _failed(TlsFailureKind.MALFORMED, _malformed_detail(facts), facts), None
    result = _facts_of(writer, ok=True)
    if result.certificate is not None and result.certificate.malformed:
        await close_quietly(writer)
        return _failed(TlsFailureKind.MALFORMED, _malformed_detail(result), result), None
    return result, (reader, writer)


def _malformed_detail(facts: TlsResult | None) -> str:
    why = facts.certificate.malformed if facts is not None and facts.certificate is not None else ""
    return (
        f"the certificate is not valid X.509: {why or 'Python cannot decode its subjectAltName'}; "
        "OpenSSL validates it, but strict TLS clients refuse it"
    )


def _failed(kind: TlsFailureKind, detail: str, facts: TlsResult | None) -> TlsResult:
    if facts is None:
        return TlsResult(False, failure=kind, detail=detail)
    return TlsResult(False, facts.version, facts.cipher, facts.certificate, kind, detail)


async def _probe(connect: Connector, host: str, timeout: float) -> TlsResult | None:
    try:
        _, writer = await connect()
    except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
        return None
    try:
        await writer.start_tls(probing_context(), server_hostname=host, ssl_handshake_timeout=timeout)
    except (OSError, TimeoutError, ssl.SSLError, ValueError):
        await close_quietly(writer)
        return None
    facts = _facts_of(writer, ok=False)
    await close_quietly(writer)
    return facts


def _facts_of(writer: asyncio.StreamWriter, *, ok: bool) -> TlsResult:
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return TlsResult(ok)
    cipher = ssl_object.cipher()
    return TlsResult(
        ok,
        version=ssl_object.version(),
        cipher=None if cipher is None else cipher[0],
        certificate=_certificate_info(ssl_object),
    )


def _certificate_info(ssl_object: ssl.SSLObject) -> CertificateInfo | None:
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    chain_length = 1
    sslobj = getattr(ssl_object, "_sslobj", None)
    get_chain = getattr(sslobj, "get_unverified_chain", None)  # public only from Python 3.13
    if get_chain is not None:
        chain = get_chain()
        chain_length = len(chain) if chain else 1
    return _certificate_info_of_der(der, chain_length)


@lru_cache(maxsize=1024)
def _certificate_info_of_der(der: bytes, chain_length: int) -> CertificateInfo | None:
    """:func:`certificate_info` of a DER certificate, remembered: parsing one with
    ``cryptography`` costs more CPU than the rest of a probe's Python, and in a bulk run many
    domains share the same MX hosts (and their certificates), and a failed handshake is
    followed by a second one that sees the same certificate again. The result is immutable."""
    try:
        return certificate_info(x509.load_der_x509_certificate(der), chain_length)
    except ValueError:
        # OpenSSL accepted what cryptography cannot even read (the subject, the dates): the
        # handshake's own outcome stands, only the facts are missing
        return None


def certificate_info(cert: x509.Certificate, chain_length: int = 1) -> CertificateInfo:
    """The facts of one certificate (pure).

    A certificate from the network may carry extensions that OpenSSL serves and accepts but
    a strict parser rejects (a subjectAltName DNS name with bytes of 0x80 or more, which is not
    IA5String): ``cryptography`` raises ``ValueError`` on first access to the extensions.
    That is a fact about the certificate, kept in ``malformed``, never an exception.
    """
    malformed = ""
    dns_names: tuple[str, ...] = ()
    has_ca_issuers = False
    try:
        extensions = cert.extensions
    except ValueError as exc:
        malformed = f"its extensions do not parse ({str(exc)[:200]})"
        extensions = x509.Extensions([])
    try:
        san = extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        pass
    try:
        aia = extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
        has_ca_issuers = any(d.access_method == AuthorityInformationAccessOID.CA_ISSUERS for d in aia)  # type: ignore[attr-defined]
    except x509.ExtensionNotFound:
        pass
    subject, issuer = cert.subject, cert.issuer  # each access parses the name again
    return CertificateInfo(
        subject=_name(subject),
        issuer=_name(issuer),
        dns_names=dns_names,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        self_signed=subject == issuer,
        has_ca_issuers=has_ca_issuers,
        chain_length=chain_length,
        malformed=malformed,
    )


def _name(name: x509.Name) -> str:
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common:
        return str(common[0].value)
    return name.rfc4514_string() or "(empty)"


def _classify_verification(
    exc: ssl.SSLCertVerificationError, cert: CertificateInfo | None, host: str, now: datetime
) -> tuple[TlsFailureKind, str]:
    code = exc.verify_code
    if code == _X509_EXPIRED:
        when = f" on {cert.not_after:%Y-%m-%d}" if cert else ""
        return TlsFailureKind.EXPIRED, f"the certificate expired{when}"
    if code == _X509_NOT_YET_VALID:
        when = f" until {cert.not_before:%Y-%m-%d}" if cert else ""
        return TlsFailureKind.NOT_YET_VALID, f"the certificate is not valid yet{when}"
    if code == _X509_HOSTNAME_MISMATCH:
        # the names are the server's text: an IA5String may hold an ESC or a line break
        names = (
            ", ".join(map(printable, cert.dns_names))
            if cert and cert.dns_names
            else "no DNS names (subject CN is not used)"
        )
        return TlsFailureKind.NAME_MISMATCH, f"the certificate is not valid for {host} (it names {names})"
    if code == _X509_SELF_SIGNED_LEAF or (cert is not None and cert.self_signed and code != _X509_SELF_SIGNED_IN_CHAIN):
        return TlsFailureKind.SELF_SIGNED, "the certificate is self-signed"
    if code in (_X509_NO_LOCAL_ISSUER, _X509_NO_ISSUER, _X509_LEAF_SIGNATURE) and cert is not None:
        if cert.has_ca_issuers and cert.chain_length == 1:
            return (
                TlsFailureKind.CHAIN_INCOMPLETE,
                f"the server sends its certificate without the intermediate certificate of {cert.issuer!r}",
            )
        return TlsFailureKind.UNTRUSTED, f"the certificate is issued by {cert.issuer!r}, which is not a trusted CA"
    if cert is not None and cert.not_after < now:
        return TlsFailureKind.EXPIRED, f"the certificate expired on {cert.not_after:%Y-%m-%d}"
    return TlsFailureKind.UNTRUSTED, f"the certificate does not validate: {exc.verify_message}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, ConnectionResetError | asyncio.IncompleteReadError | ssl.SSLEOFError):
        return "the server closed the connection during the handshake"
    return str(exc) or type(exc).__name__
