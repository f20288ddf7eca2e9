"""mtasts: MTA-STS (RFC 8461) and SMTP TLS Reporting (RFC 8460), from record to report.

The public API re-exports the sans-I/O core: parse and serialise ``_mta-sts`` records, policy
files and ``_smtp._tls`` records, and match MX host names against policy patterns. Every
parser raises :class:`ParseError` (a :class:`ValueError`) with a stable ``code``.
"""

from mtasts._version import __version__
from mtasts.core import *  # noqa: F403
from mtasts.core import __all__ as _core_all

__all__ = ["__version__", *_core_all]  # noqa: PLE0604

for _name in _core_all:
    _value = globals()[_name]
    if isinstance(_value, type) or callable(_value):
        _value.__module__ = "mtasts"
