"""Two operator replicas: exactly one acts; a SIGTERM hands over within seconds."""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from operator_harness import OperatorProcess

pytestmark = pytest.mark.integration


def test_only_one_operator_replica_leads_and_sigterm_hands_over(operator_config, tmp_path, k):
    lease = f"operator-election-{uuid.uuid4().hex[:6]}"
    # An empty namespace to watch: this test is about the election, not about reconciling.
    watch = f"idle-{uuid.uuid4().hex[:6]}"
    k("create", "namespace", watch)
    args = ["--namespace", watch, "--lease-name", lease]
    first = OperatorProcess(operator_config, tmp_path / "a.log", args, identity="replica-a").start()
    try:
        assert first.wait_log("leads the operator", timeout=60), first.log()[-2000:]
        second = OperatorProcess(operator_config, tmp_path / "b.log", args, identity="replica-b").start()
        try:
            assert second.wait_log("campaigning", timeout=60), second.log()[-2000:]
            time.sleep(5)  # two and a half retry periods: the standby must stay a standby
            assert "leads the operator" not in second.log()
            holder = k("get", "lease", lease, "-n", "wacluster-system", "-o", "jsonpath={.spec.holderIdentity}")
            assert holder == "replica-a"

            first.signal(signal.SIGTERM)
            released_at = time.monotonic()
            assert first.wait_log("released the lease", timeout=30), first.log()[-2000:]
            assert second.wait_log("leads the operator", timeout=20), second.log()[-2000:]
            # Generous bound (the retry period is 2 s): a handover, not a lease expiry (15 s).
            assert time.monotonic() - released_at < 12
            holder = k("get", "lease", lease, "-n", "wacluster-system", "-o", "jsonpath={.spec.holderIdentity}")
            assert holder == "replica-b"
        finally:
            second.stop()
    finally:
        first.stop()
        k("delete", "namespace", watch, "--wait=false", check=False)
