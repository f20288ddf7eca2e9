"""Fixtures of the CLI tests: real PostgreSQL databases, named by URL as a user gives them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.store.conftest import PG_HOST, PG_PORT, postgres_reachable


@pytest.fixture
def pg() -> Iterator[Callable[[], str]]:
    """A factory of URLs of fresh, empty PostgreSQL schemas (as a user would give them to --db);
    the schemas are dropped at the end."""
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (trust auth, user postgres, database test)")
    import psycopg

    made: list[str] = []

    def make() -> str:
        schema = f"mtasts_cli_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        made.append(schema)
        return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test?options=-csearch_path%3D{schema}"

    yield make
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test", autocommit=True) as conn:
        for schema in made:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_tables(url: str) -> list[str]:
    import psycopg

    schema = url.rpartition("%3D")[2]
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test") as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))
        return sorted(row[0] for row in rows)
