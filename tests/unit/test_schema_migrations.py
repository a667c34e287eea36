"""Expand and contract (db/schema.py): which roles a schema serves, and the rules every migration
in the list keeps so old roles go on working while an upgrade rolls."""

from __future__ import annotations

import pytest

from wacluster.db.schema import MIGRATIONS, SCHEMA_VERSION, SchemaState, incompatibility

pytestmark = pytest.mark.unit


def test_a_schema_serves_its_own_roles():
    assert incompatibility(SchemaState(SCHEMA_VERSION, SCHEMA_VERSION)) is None


def test_old_roles_keep_working_after_an_expand_migration():
    # The new release's dbupgrade ran (version + 1) and still serves this release's roles.
    assert incompatibility(SchemaState(SCHEMA_VERSION + 1, SCHEMA_VERSION)) is None


def test_a_contract_migration_stops_the_roles_it_no_longer_serves():
    reason = incompatibility(SchemaState(SCHEMA_VERSION + 1, SCHEMA_VERSION + 1))
    assert reason is not None and "no longer serves roles" in reason


def test_roles_need_the_schema_of_their_own_release():
    reason = incompatibility(SchemaState(SCHEMA_VERSION - 1, SCHEMA_VERSION - 1))
    assert reason is not None and "run `wacluster dbupgrade`" in reason
    assert "older" in incompatibility(SchemaState(0, 0))


def test_migrations_are_numbered_one_by_one_from_one():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_no_migration_serves_roles_newer_than_itself_nor_takes_back_what_an_earlier_one_dropped():
    previous = 1
    for migration in MIGRATIONS:
        assert migration.roles_from <= migration.version, migration.version
        assert migration.roles_from >= previous, f"migration {migration.version} serves roles an earlier one stopped serving"
        previous = migration.roles_from
