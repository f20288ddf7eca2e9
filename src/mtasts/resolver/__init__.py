"""The sending-side MTA-STS policy daemon for Postfix (``mtasts resolver``).

Layers, each its own module: :mod:`~mtasts.resolver.socketmap` (the netstring codec, sans-I/O),
:mod:`~mtasts.resolver.keys` (what a key is), :mod:`~mtasts.resolver.answers` (Postfix's answer
grammar per profile), :mod:`~mtasts.resolver.cache` (the cache rules, pure),
:mod:`~mtasts.resolver.service` (the driver), :mod:`~mtasts.resolver.store` (persistence;
:mod:`~mtasts.resolver.redis_store` for a fleet),
:mod:`~mtasts.resolver.sources` (DNS and HTTPS) and :mod:`~mtasts.resolver.server` (sockets).
"""

from mtasts.resolver.answers import Answer, AnswerSettings, Profile, render_answer
from mtasts.resolver.cache import CacheEntry, CacheRules
from mtasts.resolver.keys import Key, KeyKind, classify_key
from mtasts.resolver.redis_store import RedisStore
from mtasts.resolver.server import ListenSpec, SocketmapServer, parse_listen
from mtasts.resolver.service import PolicyResolver, ResolverSettings
from mtasts.resolver.sources import NetworkSources, Sources
from mtasts.resolver.store import MemoryStore, PolicyStore, SqliteStore, StoreError

__all__ = [
    "Answer",
    "AnswerSettings",
    "CacheEntry",
    "CacheRules",
    "Key",
    "KeyKind",
    "ListenSpec",
    "MemoryStore",
    "NetworkSources",
    "PolicyResolver",
    "PolicyStore",
    "Profile",
    "RedisStore",
    "ResolverSettings",
    "SocketmapServer",
    "Sources",
    "SqliteStore",
    "StoreError",
    "classify_key",
    "parse_listen",
    "render_answer",
]
