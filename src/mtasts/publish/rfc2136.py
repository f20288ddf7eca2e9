"""Set and read back the ``_mta-sts`` TXT record on the primary authoritative server.

RFC 2136 dynamic update signed with TSIG (RFC 8945) over TCP through dnspython (``dns.update``,
``dns.tsigkeyring``, ``dns.query.tcp``): one message that deletes every TXT at the name and adds
the new one, so the name never holds two ``v=STSv1`` records (RFC 8461 §3.1: senders then see
no policy). The read-back asks the same server directly, not a resolver, so a cache cannot make
an update look done. Every failure is an :class:`UpdateFailed` with a one-line message.
dnspython's calls are synchronous; they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from mtasts.publish.config import DnsSettings

__all__ = ["UpdateFailed", "delete_txt", "query_txt", "read_secret", "replace_txt"]


class UpdateFailed(Exception):
    """The update or the read-back could not be done (the message says why, in one line)."""


def read_secret(settings: DnsSettings) -> bytes:
    """The TSIG secret from ``secret_file`` (base64, surrounding space ignored)."""
    try:
        text = settings.secret_file.read_text().strip()
    except OSError as exc:
        raise UpdateFailed(f"[dns] secret_file {settings.secret_file}: {exc.strerror or exc}") from None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UpdateFailed(f"[dns] secret_file {settings.secret_file}: not a base64 TSIG secret") from None


def _relative(settings: DnsSettings, name: str) -> dns.name.Name:
    absolute = dns.name.from_text(name)
    zone = dns.name.from_text(settings.zone)
    if not absolute.is_subdomain(zone):
        raise UpdateFailed(f"{name.rstrip('.')} is not in the [dns] zone {settings.zone}")
    return absolute.relativize(zone)


def _where(settings: DnsSettings) -> str:
    return settings.server.to_text()


def _replace(settings: DnsSettings, secret: bytes, name: str, text: str | None) -> None:
    """One signed update: every TXT at ``name`` replaced by ``text`` (``None``: deleted)."""
    keyring = {dns.name.from_text(settings.key_name): dns.tsig.Key(settings.key_name, secret, settings.algorithm)}
    update = dns.update.UpdateMessage(settings.zone, keyring=keyring)
    if text is None:
        update.delete(_relative(settings, name), dns.rdatatype.TXT)
    else:
        update.replace(_relative(settings, name), settings.ttl, dns.rdatatype.TXT, _quoted(text))
    try:
        response = dns.query.tcp(update, settings.server.host, port=settings.server.port, timeout=settings.timeout)
    except dns.tsig.PeerError as exc:
        raise UpdateFailed(f"{_where(settings)} refused the TSIG key {settings.key_name}: {exc}") from None
    except (OSError, dns.exception.DNSException) as exc:
        raise UpdateFailed(f"cannot send the update to {_where(settings)}: {exc or type(exc).__name__}") from None
    code = response.rcode()
    if code != dns.rcode.NOERROR:
        raise UpdateFailed(
            f"{_where(settings)} answered {dns.rcode.to_text(code)} to the update of {name.rstrip('.')} "
            "(is the key allowed to update the zone?)"
        )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _query(settings: DnsSettings, name: str) -> tuple[str, ...]:
    query = dns.message.make_query(name, dns.rdatatype.TXT)
    try:
        response = dns.query.tcp(query, settings.server.host, port=settings.server.port, timeout=settings.timeout)
    except (OSError, dns.exception.DNSException) as exc:
        raise UpdateFailed(
            f"cannot ask {_where(settings)} for {name.rstrip('.')}: {exc or type(exc).__name__}"
        ) from None
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise UpdateFailed(f"{_where(settings)} answered {dns.rcode.to_text(response.rcode())} for {name}")
    return tuple(
        b"".join(rdata.strings).decode("utf-8", "replace")
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    )


async def replace_txt(settings: DnsSettings, secret: bytes, name: str, text: str) -> None:
    """Make ``text`` the only TXT record at ``name`` (absolute, inside ``settings.zone``)."""
    await asyncio.to_thread(_replace, settings, secret, name, text)


async def delete_txt(settings: DnsSettings, secret: bytes, name: str) -> None:
    """Delete every TXT record at ``name`` (retiring: the ``_mta-sts`` record goes last)."""
    await asyncio.to_thread(_replace, settings, secret, name, None)


async def query_txt(settings: DnsSettings, name: str) -> tuple[str, ...]:
    """The TXT records at ``name`` as the configured server answers them (strings joined)."""
    return await asyncio.to_thread(_query, settings, name)
