"""A short seeded chaos run (kills, pauses, database and webapp restarts, gateway resets, the webapp
killed with requests in flight, under load): the safety invariants hold. Timing is reported by
the benchmark, never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_chaos_smoke_loses_duplicates_and_conflicts_nothing(kubeconfig, tmp_path):
    # kubeconfig: the binaries are built; the run brings up an environment of its own.
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "chaos.py"), "--smoke", "--seed", "11"],
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "WACLUSTER_BENCH_RESULTS": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["faults"] >= 4 and report["accepted"] > 100
    assert report["lost"] == 0 and report["duplicated"] == 0
    assert report["conflicts"] == 0 and report["bans"] == 0 and report["stale_sends"] == 0
    # Every fault is counted by kind. A request the client got no answer to is retried with its
    # Idempotency-Key, so no message is stored twice, whatever died under it.
    assert sum(report["faults_by_kind"].values()) == report["faults"]
    assert report["texts_stored_twice"] == 0
    assert 0 <= report["failed_at_client_but_delivered"] <= report["failed_at_client"]
    assert json.loads((tmp_path / "chaos.json").read_text())["seed"] == 11  # not bench/results
