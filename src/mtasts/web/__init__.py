"""The web inspector: server-rendered pages (no JavaScript needed) and their JSON API, as a
mountable Starlette app (:func:`create_app`), in English and Japanese. See docs/web.md."""

from __future__ import annotations

from mtasts.web.app import create_app
from mtasts.web.settings import PUBLIC_DEFAULTS, WebSettings

__all__ = ["PUBLIC_DEFAULTS", "WebSettings", "create_app"]
