from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mtasts.lab.world import check_options as lab_check_options
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
    return lab_check_options(lab.info(), timeout=2)
