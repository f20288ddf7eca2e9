"""``mtasts lab``: a whole mail world on loopback, for tests, demos and third-party tools.

An authoritative nameserver, policy hosts, MX hosts and a TLSRPT sink, generated from
:mod:`scenarios <mtasts.lab.scenarios>` (a correct domain with one thing changed, each with its
expected outcome). Start one with ``async with Lab(...)`` or, from blocking code, with
:class:`mtasts.lab.testing.LabController`.
"""

from mtasts.lab._net import Limits
from mtasts.lab.scenarios import (
    CATALOGUE,
    FINDING_CODES,
    CertKind,
    Delivery,
    DnsFault,
    Expectation,
    MxFault,
    PolicyFault,
    Scenario,
    get_scenario,
)
from mtasts.lab.sink import Report
from mtasts.lab.smtp import Message
from mtasts.lab.world import DEFAULT_ZONE, Lab, Ports

__all__ = [
    "CATALOGUE",
    "DEFAULT_ZONE",
    "FINDING_CODES",
    "CertKind",
    "Delivery",
    "DnsFault",
    "Expectation",
    "Lab",
    "Limits",
    "Message",
    "MxFault",
    "PolicyFault",
    "Ports",
    "Report",
    "Scenario",
    "get_scenario",
]
