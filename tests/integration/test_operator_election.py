"""Two operator replicas: exactly one acts; a SIGTERM hands over through a release of the Lease."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from operator_harness import OPERATOR_NAMESPACE, OperatorProcess
from wacluster_testenv.build import bin_dir
from wacluster_testenv.eventually import eventually
from wacluster_testenv.leasewatch import LeaseWatch

pytestmark = pytest.mark.integration


def test_only_one_operator_replica_leads_and_sigterm_releases_the_lease_to_the_other(operator_config, kubeconfig,
                                                                                       tmp_path, k):
    lease = f"operator-election-{uuid.uuid4().hex[:6]}"
    # An empty namespace to watch: this test is about the election, not about reconciling.
    watch = f"idle-{uuid.uuid4().hex[:6]}"
    k("create", "namespace", watch)
    args = ["--namespace", watch, "--lease-name", lease]
    first = OperatorProcess(operator_config, tmp_path / "a.log", args, identity="replica-a").start()
    try:
        first.wait_log("leads the operator", timeout=60)
        second = OperatorProcess(operator_config, tmp_path / "b.log", args, identity="replica-b").start()
        try:
            second.wait_log("campaigning", timeout=60)
            # Deliberately lets time pass (two and a half 2 s retry periods): the standby must
            # stay a standby while the leader renews.
            time.sleep(5)
            assert not second.logged("leads the operator")
            holder = k("get", "lease", lease, "-n", OPERATOR_NAMESPACE, "-o", "jsonpath={.spec.holderIdentity}")
            assert holder == "replica-a"

            with LeaseWatch(str(bin_dir() / "kubectl"), kubeconfig, OPERATOR_NAMESPACE, lease,
                            tmp_path / "lease-watch.log") as history:
                eventually(history.states, 30, what="the Lease watch's first state")
                first.signal(signal.SIGTERM)
                first.wait_log("released the lease", timeout=60)
                second.wait_log("leads the operator", timeout=60)
                eventually(lambda: "replica-b" in history.holders(), 30, what="replica-b in the Lease watch")
            # Released, then taken: not a takeover after the 15 s lease expired.
            assert history.holders() == ["replica-a", "", "replica-b"]
        finally:
            second.stop()
    finally:
        first.stop()
        k("delete", "namespace", watch, "--wait=false", check=False)
