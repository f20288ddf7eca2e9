"""Fixtures for the report adapters: a trustme CA shared by the run."""

from __future__ import annotations

import ssl

import pytest
import trustme


@pytest.fixture(scope="session")
def report_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def report_cert(report_ca: trustme.CA) -> trustme.LeafCert:
    return report_ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture(scope="session")
def client_ssl(report_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    report_ca.configure_trust(context)
    return context
