from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mtasts.net.settings import NetworkSettings


@pytest.fixture(scope="session")
def lab_settings(lab: Any) -> NetworkSettings:
    """Network settings that point mtasts at the running lab (its nameserver, CA and ports)."""
    info = lab.info()
    return NetworkSettings(
        nameserver=lab.nameserver,
        ca_file=Path(info["ca_file"]),
        timeout=2.0,
        https_port=lab.https_port,
        smtp_port=lab.smtp_port,
    )


@pytest.fixture(scope="session")
def lab_options(lab: Any) -> list[str]:
    """The same, as ``mtasts check`` options."""
    info = lab.info()
    return [
        "--nameserver",
        info["nameserver"],
        "--ca-file",
        info["ca_file"],
        "--https-port",
        str(info["https_port"]),
        "--smtp-port",
        str(info["smtp_port"]),
        "--timeout",
        "2",
    ]
