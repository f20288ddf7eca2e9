"""What a reload (SIGHUP) of ``mtasts resolver serve`` changes, decided from two configurations.

Pure: :func:`plan_reload` compares the configuration in force with the one just read and says
which parts are applied in place and which need a restart. A running daemon can change how it
answers without dropping a connection: the zones and their settings, the overrides, the network
settings (nameserver, CA file, timeout, ...) and the connection cap. It cannot move its sockets
or its cache: the listen addresses (Postfix is connected to them; under socket activation
systemd owns them), the admin address, and the store (the entries in memory came from it, and
a fleet's daemons share it) keep their old values until a restart, and the plan says so.

The file is read, and every problem in it found, before anything is applied (the caller refuses
a configuration with a problem as a whole, so a reload never leaves half a configuration in
force).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mtasts.resolver.config import ResolverConfig

__all__ = ["APPLIED", "RESTART_ONLY", "ReloadPlan", "plan_reload"]

APPLIED = ("zones", "network", "overrides", "max_connections")
"""The parts of the configuration a reload applies in place (field names of ResolverConfig)."""
RESTART_ONLY = ("listen", "admin", "store")
"""The parts a reload keeps as they are: changing them takes a restart."""


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The configuration in force after the reload (``config``: the new one, with the
    restart-only parts kept from the old), the parts that changed and are applied
    (``changed``, in :data:`APPLIED` order), and the parts that changed but need a restart
    (``needs_restart``, in :data:`RESTART_ONLY` order)."""

    config: ResolverConfig
    changed: tuple[str, ...]
    needs_restart: tuple[str, ...]


def plan_reload(current: ResolverConfig, new: ResolverConfig, *, inherited_sockets: bool = False) -> ReloadPlan:
    """How to go from ``current`` to ``new``. Under socket activation (``inherited_sockets``)
    the daemon serves the sockets systemd passed, whatever ``listen`` says, so a changed
    ``listen`` needs no restart of the daemon (it is systemd's socket unit to change)."""
    changed = tuple(name for name in APPLIED if getattr(current, name) != getattr(new, name))
    restart_only = tuple(name for name in RESTART_ONLY if not (name == "listen" and inherited_sockets))
    needs_restart = tuple(name for name in restart_only if getattr(current, name) != getattr(new, name))
    kept = {name: getattr(current, name) for name in RESTART_ONLY}
    return ReloadPlan(dataclasses.replace(new, **kept), changed, needs_restart)
