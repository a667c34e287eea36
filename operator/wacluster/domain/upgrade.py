"""Which version the roles run, given the target version and the dbupgrade Job's state.

The seeds' upgrade order, made a rule: the database schema is upgraded first; the roles move to
the new version only after the dbupgrade Job succeeded. A failed Job stops the rollout where it
is (roles keep the version they run) until the spec changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

JobPhase = Literal["Absent", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class Rollout:
    run_version: str        # the version the Deployments carry now
    job_version: str        # the dbupgrade Job that must exist
    upgrading: bool         # a version change is in flight
    blocked: bool           # the dbupgrade Job failed
    reason: str
    message: str
    deployed: str | None = None       # the version recorded in status before this plan
    job_phase: JobPhase = "Absent"

    def settled_version(self, rolled_and_ready: bool) -> str | None:
        """The version to record in status: it changes only once the new one is fully in place."""
        if self.deployed is None:
            return self.job_version if self.job_phase == "Succeeded" else None
        if self.upgrading:
            done = self.job_phase == "Succeeded" and rolled_and_ready
            return self.job_version if done else self.deployed
        return self.deployed


def plan_rollout(target: str, deployed: str | None, job_phase: JobPhase) -> Rollout:
    """`deployed` is the version recorded in status (None for a new cluster)."""
    plan = _plan(target, deployed, job_phase)
    return Rollout(**{**plan.__dict__, "deployed": deployed, "job_phase": job_phase})


def _plan(target: str, deployed: str | None, job_phase: JobPhase) -> Rollout:
    if deployed is None:
        # A new cluster starts every role at once; they wait for the schema themselves.
        if job_phase == "Failed":
            return Rollout(target, target, False, True, "DBUpgradeFailed",
                           f"the dbupgrade Job for {target} failed; see its pod logs, then fix spec.version")
        return Rollout(target, target, False, False, "Creating", f"creating the cluster at version {target}")
    if target == deployed:
        return Rollout(target, target, False, False, "UpToDate", f"every role runs {target}")
    if job_phase == "Succeeded":
        return Rollout(target, target, True, False, "RollingOut",
                       f"database upgraded to {target}; rolling masters, coreapps and webapps from {deployed}")
    if job_phase == "Failed":
        return Rollout(deployed, target, True, True, "DBUpgradeFailed",
                       f"the dbupgrade Job for {target} failed, so the roles stay on {deployed}; "
                       f"see the Job's pod logs, then fix spec.version")
    return Rollout(deployed, target, True, False, "WaitingForDBUpgrade",
                   f"upgrading the database schema to {target} before rolling the roles from {deployed}")
