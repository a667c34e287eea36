"""The upgrade order: database schema first, roles after, blocked on a failed dbupgrade Job."""

from __future__ import annotations

import pytest

from wacluster.domain.upgrade import plan_rollout

pytestmark = pytest.mark.unit


def test_new_cluster_runs_the_target_version_at_once():
    plan = plan_rollout("2.1", None, "Absent")
    assert plan.run_version == "2.1" and plan.job_version == "2.1" and not plan.upgrading


def test_new_cluster_records_its_version_only_after_the_schema_job_succeeded():
    assert plan_rollout("2.1", None, "Running").settled_version(True) is None
    assert plan_rollout("2.1", None, "Succeeded").settled_version(True) == "2.1"


def test_roles_stay_on_the_old_version_until_the_dbupgrade_job_succeeds():
    plan = plan_rollout("2.2", "2.1", "Running")
    assert plan.run_version == "2.1" and plan.job_version == "2.2" and plan.upgrading
    assert plan.reason == "WaitingForDBUpgrade"


def test_roles_roll_to_the_new_version_after_the_job_succeeded():
    plan = plan_rollout("2.2", "2.1", "Succeeded")
    assert plan.run_version == "2.2" and plan.reason == "RollingOut"
    assert plan.settled_version(rolled_and_ready=False) == "2.1"
    assert plan.settled_version(rolled_and_ready=True) == "2.2"


def test_failed_job_blocks_the_rollout_and_says_why():
    plan = plan_rollout("2.2", "2.1", "Failed")
    assert plan.blocked and plan.run_version == "2.1"
    assert "dbupgrade Job for 2.2 failed" in plan.message


def test_fixing_the_version_back_unblocks():
    plan = plan_rollout("2.1", "2.1", "Absent")
    assert not plan.blocked and not plan.upgrading and plan.reason == "UpToDate"
