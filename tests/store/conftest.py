"""The store under test: every contract test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mtasts.store.store import ReportStore

PG_HOST = os.environ.get("MTASTS_TEST_PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MTASTS_TEST_PGPORT", "5432"))
PG_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[Callable[[], tuple[str, dict[str, str]]]]:
    """A factory of fresh PostgreSQL schemas (URL, connect_args); all are dropped at the end."""
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (trust auth, user postgres, database test)")
    import psycopg

    schemas: list[str] = []

    def make() -> tuple[str, dict[str, str]]:
        schema = f"mtasts_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        return PG_URL, {"options": f"-csearch_path={schema}"}

    yield make
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test", autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ReportStore]]:
    """Builds (unopened) stores on one fresh database: the same one for every call in a test
    (keyword arguments go to :class:`ReportStore`, e.g. ``create=False``)."""
    if request.param == "sqlite":
        url, connect_args = f"sqlite:///{tmp_path / 'reports.sqlite3'}", {}
    else:
        url, connect_args = request.getfixturevalue("postgres_url")()
    made: list[ReportStore] = []

    def make(**options: Any) -> ReportStore:
        store = ReportStore(url, connect_args=connect_args, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(store_factory: Callable[..., ReportStore]) -> Iterator[ReportStore]:
    with store_factory() as opened:
        yield opened
