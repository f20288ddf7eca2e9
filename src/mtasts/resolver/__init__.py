"""The sending-side MTA-STS policy daemon for Postfix (``mtasts resolver``).

Layers, each its own module: :mod:`~mtasts.resolver.socketmap` (the netstring codec, sans-I/O),
:mod:`~mtasts.resolver.keys` (what a key is), :mod:`~mtasts.resolver.answers` (Postfix's answer
grammar per profile), :mod:`~mtasts.resolver.cache` (the cache rules, pure),
:mod:`~mtasts.resolver.service` (the driver), :mod:`~mtasts.resolver.store` (persistence;
:mod:`~mtasts.resolver.redis_store` and :mod:`~mtasts.resolver.pg_store` for a fleet),
:mod:`~mtasts.resolver.sources` (DNS and HTTPS), :mod:`~mtasts.resolver.server` (sockets),
:mod:`~mtasts.resolver.config` (the TOML file), :mod:`~mtasts.resolver.zones` (answer zones) and
:mod:`~mtasts.resolver.grammar` (what each Postfix version accepts, for ``selftest``).
"""

from mtasts.resolver.answers import Answer, AnswerSettings, Profile, render_answer
from mtasts.resolver.cache import CacheEntry, CacheRules
from mtasts.resolver.config import ConfigError, ResolverConfig, parse_config
from mtasts.resolver.keys import Key, KeyKind, classify_key
from mtasts.resolver.pg_store import PostgresStore
from mtasts.resolver.redis_store import RedisStore
from mtasts.resolver.server import ListenSpec, SocketmapServer, parse_listen
from mtasts.resolver.service import PolicyResolver, ResolverSettings
from mtasts.resolver.sources import NetworkSources, Sources
from mtasts.resolver.store import MemoryStore, PolicyStore, SqliteStore, StoreError
from mtasts.resolver.zones import Zone, ZonedResolver

__all__ = [
    "Answer",
    "AnswerSettings",
    "CacheEntry",
    "CacheRules",
    "ConfigError",
    "Key",
    "KeyKind",
    "ListenSpec",
    "MemoryStore",
    "NetworkSources",
    "PolicyResolver",
    "PolicyStore",
    "PostgresStore",
    "Profile",
    "RedisStore",
    "ResolverConfig",
    "ResolverSettings",
    "SocketmapServer",
    "Sources",
    "SqliteStore",
    "StoreError",
    "Zone",
    "ZonedResolver",
    "classify_key",
    "parse_config",
    "parse_listen",
    "render_answer",
]
