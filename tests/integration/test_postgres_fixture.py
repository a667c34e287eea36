"""The PostgreSQL fixtures give each test a real server connection and a database of its own."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.harness


def test_postgres_fixture_accepts_a_connection(pg_dsn):
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("select 1 + 1").fetchone() == (2,)
        assert conn.info.host == "127.0.0.1"


def test_two_databases_from_the_fixture_are_isolated(postgres_server):
    first, second = postgres_server.create_database(), postgres_server.create_database()
    try:
        assert first != second
        with psycopg.connect(first, autocommit=True) as conn:
            conn.execute("create table marker (x int)")
        with psycopg.connect(second) as conn:
            found = conn.execute("select to_regclass('public.marker')").fetchone()[0]
        assert found is None
    finally:
        postgres_server.drop_database(first)
        postgres_server.drop_database(second)
