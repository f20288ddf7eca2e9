"""The sentence shapes of the ``findings`` catalogue: every finding message and fix, the sender's
verdict, the parsers' problems and the check's text labels, in English with ``%(name)s``
placeholders (see :mod:`mtasts.i18n`). They are the message ids of
``locale/<lang>/LC_MESSAGES/findings.po``::

    pybabel extract -k N_ -k NP_:1,2 -o src/mtasts/i18n/locale/findings.pot src/mtasts/i18n/messages.py
    pybabel compile -d src/mtasts/i18n/locale -D findings

A sentence added to the checks needs its shape here and its translation in each ``.po``:
tests/i18n/test_findings.py runs every lab scenario and fails on a sentence no shape fits, and
on a shape without a translation.
"""

# ruff: noqa: E501 (a message id stays one literal, as the catalogue shows it)
from __future__ import annotations

__all__ = ["MESSAGES", "PLURALS"]


def N_(message: str) -> str:
    """Marks a message id for extraction (pybabel's default keyword)."""
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:
    """Marks a message id with a plural form."""
    return singular, plural


MESSAGES: tuple[str, ...] = (
    # --- check/analysis.py: inspector findings and fixes
    N_("the check of %(name)s stopped on an unexpected error: %(error)s"),
    N_(
        "This is a bug in mtasts (or input it does not handle yet): rerun with --debug for the traceback and report it; the other checks are not affected."
    ),
    N_(
        "no MX of %(domain)s could be connected to (%(error)s), and neither could any other MX this run tried, in several domains: outbound port 25 is probably blocked on this machine or its network, so nothing is known about these MX hosts"
    ),
    N_(
        "Run the check from a host that may connect to port 25 (many ISPs and clouds block it; ask for it to be opened, or check the local firewall)."
    ),
    N_("%(detail)s: the trouble is on this side, nothing is known about the domain"),
    N_("%(servers)s refuses every query for %(domain)s (REFUSED: it does not resolve it for this machine)"),
    N_("%(servers)s answered none of the lookups for %(domain)s (not even a query for the root)"),
    N_(
        "Point --nameserver at a working recursive resolver, or fix /etc/resolv.conf (is the resolver running, reachable from here, listening on that port, answering for this machine?)."
    ),
    N_("%(domain)s does not exist (the DNS answers NXDOMAIN): check the spelling"),
    N_("Check the spelling of %(domain)s; if it is right, the domain is not registered or not delegated."),
    N_("the TXT lookup of %(name)s failed: %(detail)s"),
    N_("Make the DNS servers of %(domain)s answer for %(name)s."),
    N_("%(name)s has no TXT record beginning with 'v=STSv1;': senders will not look for a policy"),
    N_("Publish the policy, then the TXT record %(name)s \"v=STSv1; id=<id>\" ('mtasts generate' prints it)."),
    N_("%(subject)s: %(detail)s"),
    N_("Delete all but one 'v=STSv1' TXT record."),
    N_("%(name)s is invalid: %(detail)s; senders treat the domain as having no policy"),
    N_("%(subject)s: %(detail)s [%(code)s]"),
    N_("%(fix)s ('mtasts lint policy' checks a local copy.)"),
    N_("the fetch of %(url)s stopped on an unexpected error: %(error)s"),
    N_("%(url)s: the policy is invalid: %(detail)s"),
    N_("line %(line)s, column %(column)s: %(detail)s"),
    N_("line %(line)s: %(detail)s"),
    N_("the certificate of %(host)s expires on %(date)s (in %(days)s days); then senders cannot refresh the policy"),
    N_("Renew the certificate of %(host)s (automate renewal, e.g. ACME)."),
    N_("the policy is in testing mode: senders deliver even when validation fails, and report it"),
    N_("Watch the TLS reports; switch to 'mode: enforce' (and change the id) once no sender fails."),
    N_("the policy is in mode none: MTA-STS is switched off for this domain"),
    N_("Use 'mode: testing' to start protecting and monitoring mail (and change the id)."),
    N_("the MX lookup of %(domain)s failed: %(detail)s"),
    N_("Make the DNS servers of %(domain)s answer MX queries."),
    N_("%(domain)s has no MX records; MTA-STS protects delivery to MX hosts only"),
    N_("Publish MX records for %(domain)s."),
    N_("%(domain)s publishes a null MX (RFC 7505): it accepts no mail, so MTA-STS has nothing to protect"),
    N_("Nothing to do, unless the domain should receive mail."),
    N_("the MX %(host)s matches no 'mx' line of the policy; senders refuse to deliver to it"),
    N_("the MX %(host)s matches no 'mx' line of the policy"),
    N_("Add 'mx: %(host)s' (or a '*.' pattern covering it) to the policy and change the policy id."),
    N_("the policy pattern 'mx: %(pattern)s' matches none of the MX hosts"),
    N_("Remove it unless it is for an MX you are about to add."),
    N_(
        "%(host)s publishes TLSA records at _25._tcp.%(tlsa_host)s: senders that support DANE validate with DANE instead of MTA-STS (RFC 8461 §2)"
    ),
    N_("Keep the TLSA records in step with the MX certificates."),
    N_("%(count)s MX hosts of %(domain)s were not probed: %(reason)s"),
    N_("%(count)s MX host of %(domain)s was not probed: %(reason)s"),
    N_("Nothing to fix on the domain; raise --max-mx to probe more (senders rarely try more than a few)."),
    N_("%(what)s were not probed: %(reason)s"),
    N_("%(what)s was not probed: %(reason)s"),
    N_("Make the DNS and MX hosts of %(domain)s answer promptly, or give the check more time (--domain-timeout)."),
    N_("Nothing to fix on the domain; raise --max-addresses to probe more."),
    N_("the MX %(host)s has no usable address: %(detail)s"),
    N_("Publish A/AAAA records for %(host)s, or remove the MX record."),
    N_("%(host)s (%(address)s): %(detail)s"),
    N_("Make %(host)s accept connections on port 25 (firewall, service)."),
    N_("Make %(host)s answer on port 25 without delay."),
    N_("Check the SMTP service on %(host)s: it does not complete EHLO and STARTTLS."),
    N_("Enable STARTTLS on %(host)s (e.g. Postfix smtpd_tls_security_level = may)."),
    N_("Fix the TLS set-up of %(host)s: it offers STARTTLS and then refuses it."),
    N_("Renew the certificate of %(host)s and reload the MTA."),
    N_("Check the certificate dates and the server clock of %(host)s."),
    N_("Install a certificate whose subjectAltName includes %(host)s."),
    N_("Replace the self-signed certificate of %(host)s with one from a public CA."),
    N_("Use a certificate for %(host)s from a publicly trusted CA."),
    N_("Configure the MTA with the full chain (leaf and intermediates: fullchain.pem)."),
    N_("Enable TLS 1.2 and 1.3 on %(host)s (and disable TLS 1.0/1.1)."),
    N_("Check the TLS configuration of %(host)s: the handshake does not complete."),
    N_("Check the TLS configuration of %(host)s: the handshake fails."),
    N_("Reissue the certificate of %(host)s with subjectAltName DNS names in ASCII (A-labels)."),
    N_("the certificate expires on %(date)s (in %(days)s days)"),
    N_("Renew the certificate of %(host)s before then (automate renewal)."),
    N_('Publish %(name)s TXT "v=TLSRPTv1; rua=mailto:tlsrpt@%(domain)s" to receive daily TLS reports.'),
    N_("%(name)s has no TLSRPT record: nobody will tell you when senders fail"),
    N_("Keep one record; list several rua URIs in it."),
    N_("%(name)s is invalid: %(detail)s; senders send no reports"),
    N_("Publish an A and/or AAAA record (or a CNAME) for %(host)s."),
    N_("Make the DNS servers of %(host)s answer (the lookup failed, it did not say 'no')."),
    N_("Run an HTTPS server on %(host)s port 443 that serves %(url)s."),
    N_("Serve %(host)s over TLS 1.2 or newer with a valid certificate."),
    N_("Serve the policy over plain HTTP/1.1 semantics at %(url)s."),
    N_("Install a certificate for %(host)s from a public CA (with the full chain)."),
    N_("Make %(url)s answer within a few seconds; senders give up quickly."),
    N_("Serve the policy file at exactly %(url)s with status 200."),
    N_("Serve the policy directly at %(url)s: senders never follow redirects."),
    N_("Serve the file with 'Content-Type: text/plain'."),
    N_("Serve only the policy file (a few hundred bytes), not another document."),
    N_("Fix the policy file; 'mtasts lint policy' checks a local copy."),
    # --- check/inspect.py: why an MX host or address was not probed
    N_("only the %(count)s most preferred MX hosts are probed (--max-mx)"),
    N_("only the first %(count)s addresses of each MX host are probed (--max-addresses)"),
    N_("its address lookup was not finished within the domain's time budget of %(seconds)s s"),
    N_("the probe was not finished within the domain's time budget of %(seconds)s s"),
    N_("not finished within the domain's time budget of %(seconds)s s"),
    # --- net/: what the network said (DNS, HTTPS, SMTP, TLS)
    N_("the nameserver %(server)s (--nameserver)"),
    N_("the system resolver (%(servers)s, from /etc/resolv.conf)"),
    N_("the nameserver answered SERVFAIL"),
    N_("the nameserver REFUSED the query"),
    N_("no nameserver could answer"),
    N_("no answer before the timeout"),
    N_("lookup failed: %(error)s"),
    N_("no %(rdtype)s records"),
    N_("the name does not exist (NXDOMAIN)"),
    N_("no A or AAAA records"),
    N_("only non-public addresses (%(addresses)s), which this check refuses to contact (--refuse-private: %(why)s)"),
    N_("no complete answer from %(host)s within %(seconds)s s"),
    N_("the policy file is not valid"),
    N_("cannot connect: %(errors)s"),
    N_("HTTP %(status)s redirect to %(location)s; redirects must not be followed"),
    N_("HTTP %(status)s redirect; redirects must not be followed"),
    N_("HTTP status %(status)s; only 200 is a policy"),
    N_("Content-Type %(type)s; the policy must be served as text/plain"),
    N_("no Content-Type; the policy must be served as text/plain"),
    N_("Content-Length %(length)s is above the %(limit)s-byte limit"),
    N_("the server greeted with %(reply)s"),
    N_("the server does not offer STARTTLS after EHLO"),
    N_("STARTTLS was refused: %(reply)s"),
    N_("EHLO was refused: %(reply)s"),
    N_("the server closed the connection"),
    N_("not an SMTP reply: %(line)s"),
    N_("the reply has too many lines"),
    N_("after STARTTLS: %(detail)s"),
    N_("the connection failed after STARTTLS: %(error)s"),
    N_("no complete answer within %(seconds)s s"),
    N_("cannot connect to %(address)s port %(port)s: %(error)s"),
    N_("the connection failed: %(error)s"),
    N_("the TLS handshake timed out"),
    N_("the server only speaks %(version)s; TLS 1.2 or newer is required"),
    N_("the TLS handshake failed: %(error)s"),
    N_("the certificate is not valid X.509: %(error)s; OpenSSL validates it, but strict TLS clients refuse it"),
    N_("the certificate expired on %(date)s"),
    N_("the certificate expired"),
    N_("the certificate is not valid yet until %(date)s"),
    N_("the certificate is not valid yet"),
    N_("the certificate is not valid for %(host)s (it names %(names)s)"),
    N_("the server sends its certificate without the intermediate certificate of %(issuer)s"),
    N_("the certificate is issued by %(issuer)s, which is not a trusted CA"),
    N_("the certificate is self-signed"),
    N_("the certificate does not validate: %(error)s"),
    N_("the server closed the connection during the handshake"),
    N_("no address"),
    # --- core/verdict.py: what a sender does
    N_("the domain accepts no mail (null MX, RFC 7505): senders return it to the sender at once"),
    N_("no MX host to deliver to: mail cannot be delivered"),
    N_("mail flows: a compliant sender delivers over validated TLS"),
    N_("mail flows: the policy is not enforced (mode %(mode)s)"),
    N_("mail flows: no MTA-STS policy applies"),
    N_("mail would be deferred: no MX passes MTA-STS validation"),
    N_("mail would be deferred: no MX can be reached"),
    N_("not known: no MX host was probed within the domain's time budget"),
    N_("not known: this machine cannot connect to port 25 (see local-port25-blocked)"),
    N_("not known: the nameserver this check uses does not answer"),
    N_("the domain does not exist: senders return mail for it at once"),
    N_("not listed in the policy"),
    N_("the policy lists no mx"),
    N_("no validated TLS"),
    N_("would skip it: unreachable"),
    N_("would deliver (no policy: TLS is opportunistic)"),
    N_("would deliver (mode %(mode)s: TLS is opportunistic)"),
    N_("would skip it: %(reason)s"),
    N_("would deliver over validated TLS"),
    N_("no valid policy is published: fix the policy before thinking of enforce"),
    N_("switching to enforce now would block no MX"),
    N_("switching to enforce now would defer all mail (%(blocked)s)"),
    N_("switching to enforce now would block mail to %(blocked)s"),
    # --- core/: the parsers' problems (lint, and quoted by the inspector)
    N_("%(detail)s (a repeat: senders ignore it and use the first value, RFC 8461 §3.2)"),
    N_("%(count)s TXT records begin with 'v=STSv1;'; senders then assume there is no policy"),
    N_("%(count)s TXT records begin with 'v=TLSRPTv1;'; senders then send no reports"),
    N_("no TXT record beginning with 'v=STSv1;' was found"),
    N_("Publish one TXT record 'v=STSv1; id=<id>' at _mta-sts.<domain>."),
    N_("Keep exactly one 'v=STSv1' record at _mta-sts.<domain> and delete the others."),
    N_("no TXT record beginning with 'v=TLSRPTv1;' was found"),
    N_("Publish 'v=TLSRPTv1; rua=mailto:tlsrpt@<domain>' at _smtp._tls.<domain>."),
    N_("Keep exactly one 'v=TLSRPTv1' record (list several URIs in its rua, comma-separated)."),
    N_("the id %(value)s contains %(bad)s; only letters and digits are allowed"),
    N_("the id is %(length)s characters long (at most 32)"),
    N_("Use 1-32 letters and digits, e.g. a UTC time stamp such as 20261129T081500."),
    N_("Add an id, e.g. 'v=STSv1; id=20261129T081500', and change it whenever the policy changes."),
    N_("%(uri)s has no scheme; use mailto: or https:"),
    N_("Give one or more report addresses: 'rua=mailto:tlsrpt@example.com' or 'rua=https://...'."),
    N_("the mode %(value)s is not one of 'enforce', 'testing', 'none'"),
    N_("Use 'mode: testing' while you watch TLS reports, then 'mode: enforce'."),
    N_("max_age %(value)s is not a number of seconds written with the digits 0-9 only"),
    N_("Write the number of seconds, e.g. 'max_age: 604800'."),
    N_("the policy has no 'version' field"),
    N_("Add the line 'version: STSv1' (usually the first line)."),
    N_("the policy has no 'mode' field"),
    N_("Add 'mode: testing' (while you watch TLS reports) or 'mode: enforce'."),
    N_("the policy has no 'max_age' field"),
    N_("Add 'max_age: 604800' (one week) or longer, up to 31557600."),
    N_("the policy is empty"),
    N_(
        "max_age %(max_age)s is under a week with mode '%(mode)s': senders keep the policy only that long, and once it has expired an attacker who blocks the policy fetch can downgrade delivery (RFC 8461 §3.2 expects weeks or more)"
    ),
    N_(
        "max_age %(max_age)s is under a day with mode '%(mode)s': senders re-fetch the policy that often, and the value is too short to keep when switching to 'enforce'"
    ),
    N_("Use at least 604800 (one week) with 'enforce'; 86400 (one day) is fine while in 'testing'."),
    # --- check/render.py: the text output of 'mtasts check'
    N_("fix: "),
    N_("verdict: "),
    N_("enforce readiness: "),
    N_("no problems"),
    N_("domain"),
    N_("_mta-sts record"),
    N_("policy"),
    N_("MX hosts"),
    N_("TLS reporting"),
    N_("this machine"),
    N_("error"),
    N_("warning"),
    N_("info"),
)

PLURALS: tuple[tuple[str, str], ...] = (
    NP_("%(num)d error", "%(num)d errors"),
    NP_("%(num)d warning", "%(num)d warnings"),
)
