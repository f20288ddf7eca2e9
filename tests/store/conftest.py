"""The store under test: every contract test runs on SQLite, on the real PostgreSQL and in memory
(``store_factory``); what only a SQL database has (its schema, rows written behind the store's
back) runs on the first two (``sql_store_factory``)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mtasts.store.interface import ReportStoreProtocol
from mtasts.store.memory import MemoryDatabase, MemoryReportStore
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


def _sql_factory(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> tuple[Callable[..., ReportStore], list[ReportStore]]:
    if backend == "sqlite":
        url, connect_args = f"sqlite:///{tmp_path / 'reports.sqlite3'}", {}
    else:
        url, connect_args = request.getfixturevalue("postgres_url")()
    made: list[ReportStore] = []

    def make(**options: Any) -> ReportStore:
        store = ReportStore(url, connect_args=connect_args, **options)
        made.append(store)
        return store

    return make, made


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ReportStoreProtocol]]:
    """Builds (unopened) stores on one fresh database: the same one for every call in a test
    (keyword arguments go to the store's constructor, e.g. ``create=False``)."""
    if request.param == "memory":
        database = MemoryDatabase()

        def memory(**options: Any) -> ReportStoreProtocol:
            return MemoryReportStore(database, **options)

        yield memory
        return
    make, made = _sql_factory(request, request.param, tmp_path)
    yield make
    for store in made:
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., ReportStore]]:
    """:func:`store_factory` for the SQL stores only."""
    make, made = _sql_factory(request, request.param, tmp_path)
    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(store_factory: Callable[..., ReportStoreProtocol]) -> Iterator[ReportStoreProtocol]:
    with store_factory() as opened:
        yield opened


@pytest.fixture
def sql_store(sql_store_factory: Callable[..., ReportStore]) -> Iterator[ReportStore]:
    with sql_store_factory() as opened:
        yield opened
