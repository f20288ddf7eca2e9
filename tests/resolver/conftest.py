"""The resolver against the lab: network settings that point at its nameserver, CA and HTTPS port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mtasts.net.settings import NetworkSettings


@pytest.fixture(scope="session")
def resolver_settings(lab: Any) -> NetworkSettings:
    """Network settings that point the resolver at the running lab (as tests/check does)."""
    info = lab.info()
    return NetworkSettings(
        nameserver=lab.nameserver,
        ca_file=Path(info["ca_file"]),
        timeout=2.0,
        https_port=lab.https_port,
    )


@pytest.fixture(scope="session")
def resolver_options(lab: Any) -> list[str]:
    """The same, as ``mtasts resolver`` options."""
    info = lab.info()
    return ["--nameserver", info["nameserver"], "--ca-file", info["ca_file"], "--https-port", str(info["https_port"])]
