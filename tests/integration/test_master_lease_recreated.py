"""A master Lease deleted and created again (`kubectl delete lease`, a namespace deleted around an
external database, a new Kubernetes cluster on the same database) starts its leaseTransitions at
1 again, below the term the database already recorded. Its new holder must still lead: failover
goes on, and the term keeps moving forward."""

from __future__ import annotations

import signal

import pytest

from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration


def _owner_of_shard_0(cluster) -> str | None:
    owners = cluster.shard_owners()
    return owners.get(0, (None, 0))[0]


def _recorded_term(cluster) -> tuple[int, str] | None:
    rows = cluster.query("SELECT term, holder FROM master_term")
    return rows[0] if rows else None


def test_the_standby_is_promoted_after_the_master_lease_was_recreated(cluster, k):
    for name in ("master1", "master2"):
        cluster.start_master(name)
    for name in ("wacore1", "wacore2"):
        cluster.start_coreapp(name)
    primary = eventually(cluster.primary_master, 30, what="a primary master")
    cluster.register()
    owner = eventually(lambda: _owner_of_shard_0(cluster), 30, what="shard 0 connected")
    old_term, _ = _recorded_term(cluster)
    other = "master2" if primary == "master1" else "master1"

    # The primary is paused while its Lease is deleted, so the other master creates the new Lease
    # (leaseTransitions 1, not above the recorded term) while the old holder still believes it
    # holds the deleted one; it resumes before the shard owner dies.
    cluster.roles[primary].signal(signal.SIGSTOP)
    try:
        k("delete", "lease", cluster.lease_name, "-n", cluster.namespace)
        eventually(lambda: cluster.lease_holder() == other, 30, what=f"the re-created Lease held by {other}")
    finally:
        cluster.roles[primary].signal(signal.SIGCONT)

    cluster.roles[owner].signal(signal.SIGKILL)
    new_owner = eventually(lambda: (o := _owner_of_shard_0(cluster)) not in (None, owner) and o, 60,
                           what=f"shard 0 connected by another coreapp than {owner}",
                           details=lambda: cluster.roles[other].output()[-2000:])
    from_, to = cluster.query("SELECT from_coreapp, to_coreapp FROM failovers ORDER BY id DESC LIMIT 1")[0]
    assert (from_, to) == (owner, new_owner)
    # The new holder promoted, with a term above the one recorded before, written back into the
    # Lease; the old holder, resumed, did not act on its old term.
    term, holder = _recorded_term(cluster)
    assert holder == other and term > old_term
    assert cluster.query("SELECT master_term FROM shard_map WHERE shard = 0") == [(term,)]
    transitions = k("get", "lease", cluster.lease_name, "-n", cluster.namespace,
                    "-o", "jsonpath={.spec.leaseTransitions}")
    assert int(transitions) == term
