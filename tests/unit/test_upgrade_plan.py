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


def _observation(rollout, ready=2):
    from wacluster.domain.cluster_status import Observation, RoleCounts
    roles = {r: RoleCounts(2, ready, 2) for r in ("master", "coreapp")}
    return Observation(generation=3, rollout=rollout, roles=roles, database_ready=True, primary_master="m-0")


def test_new_cluster_is_not_ready_before_its_schema_exists():
    from wacluster.domain.cluster_status import compute_status
    status = compute_status(_observation(plan_rollout("2.1", None, "Running")))
    assert status["phase"] == "Progressing" and status["version"] is None
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False" and "dbupgrade Job for 2.1" in ready["message"]


def test_cluster_is_ready_once_schema_and_roles_are():
    from wacluster.domain.cluster_status import compute_status
    status = compute_status(_observation(plan_rollout("2.1", None, "Succeeded")))
    assert status["phase"] == "Ready" and status["version"] == "2.1"
    assert status["readySummary"] == "4/4" and status["primaryMaster"] == "m-0"


def test_blocked_upgrade_is_failed_and_degraded():
    from wacluster.domain.cluster_status import compute_status
    status = compute_status(_observation(plan_rollout("2.2", "2.1", "Failed")))
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Failed" and status["version"] == "2.1" and status["targetVersion"] == "2.2"
    assert conditions["Degraded"]["reason"] == "DBUpgradeFailed"
