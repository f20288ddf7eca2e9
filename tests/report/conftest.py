"""Fixtures for the report adapters: a trustme CA shared by the run, throwaway PostgreSQL databases."""

from __future__ import annotations

import os
import socket
import ssl
import uuid
from collections.abc import Iterator

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


PG_HOST = os.environ.get("MTASTS_TEST_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MTASTS_TEST_PGPORT", "5432"))


def _admin_dsn() -> str:
    return f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"


@pytest.fixture
def pg_database() -> Iterator[tuple[str, str]]:
    """A throwaway PostgreSQL database (URL, name), dropped with its connections at the end; a
    test may terminate its backends or refuse connections to it (an outage) without touching
    any other test's data."""
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            pass
    except OSError:
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (trust auth, user postgres, database test)")
    import psycopg

    name = f"mtasts_ingest_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}", name
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_outage(name: str) -> None:
    """The database ``name`` goes away mid-run: no new connections, every backend terminated."""
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


def pg_recover(name: str) -> None:
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
