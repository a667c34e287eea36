#!/usr/bin/env python3
"""Failover benchmark: under a steady message load, kill or stop the primary coreapp and the
primary master, repeatedly, and measure the downtime each time.

Coreapp scenarios: downtime = from the last message accepted before the fault to the first one
accepted after it (the webapp retries during the failover, so it is what a client sees).
Master scenarios: time from the fault until another master is primary (it holds the Lease and
has claimed its term in the database); messages keep flowing meanwhile.
Modes: seeds' defaults (heartbeat 5 s / unhealthy 30 s, Lease 15/10/2), tuned (1 s / 2 s, Lease
4/3/0.5) and db-only (one master; database rule). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from common import Bench, emit, eventually, start_cluster, summary

MODES = {
    "defaults": {"masters": 2, "settings": {"heartbeat_interval": 5.0, "unhealthy_interval": 30.0,
                                            "db_heartbeat_interval": 60.0, "db_unhealthy_after": 120.0,
                                            "lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}},
    "tuned": {"masters": 2, "settings": {"heartbeat_interval": 1.0, "unhealthy_interval": 2.0,
                                         "db_heartbeat_interval": 1.0, "db_unhealthy_after": 5.0,
                                         "lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}},
    "db_only": {"masters": 1, "settings": {"heartbeat_interval": 1.0, "unhealthy_interval": 2.0,
                                           "db_heartbeat_interval": 1.0, "db_unhealthy_after": 5.0,
                                           "lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}},
}
SCENARIOS = ["coreapp_sigkill", "coreapp_sigterm", "master_sigkill", "master_sigterm"]


def ready_standbys(cluster, fresh_s: float) -> int:
    """Coreapps a planned handoff or a failover can promote right now: registered, not stopping,
    owning no shard, and answered a master's heartbeat within `fresh_s` (domain/ha.py's rule).
    A Deployment keeps its replicas up; a run that starts before the replacement of the last
    run's victim is up measures how long a Python process takes to start, not the handoff."""
    rows = cluster.query(
        "SELECT count(DISTINCT n.name) FROM nodes n JOIN heartbeats h ON h.coreapp = n.name "
        "WHERE n.role = 'coreapp' AND NOT n.stopping "
        "AND n.name NOT IN (SELECT coreapp FROM shard_map WHERE coreapp IS NOT NULL) "
        "AND h.last_ok_at > now() - make_interval(secs => %s)", (fresh_s,))
    return rows[0][0]


class Load:
    """One closed-loop sender through the webapp; remembers when each message was accepted."""

    def __init__(self, api) -> None:
        self.api = api
        self.accepted: list[tuple[float, str]] = []
        self.failed = 0
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Load":
        self.running.set()
        self.thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while self.running.is_set():
            reply = self.api.send_text(f"+1555{i % 10_000_000:07d}", f"load {i}")
            if reply.status == 201:
                self.accepted.append((time.monotonic(), reply.body["messages"][0]["id"]))
            else:
                self.failed += 1
            i += 1

    def stop(self) -> None:
        self.running.clear()
        self.thread.join(timeout=30)

    def gap_around(self, fault_at: float) -> float | None:
        before = [t for t, _ in self.accepted if t <= fault_at]
        after = [t for t, _ in self.accepted if t > fault_at]
        if not before or not after:
            return None
        return after[0] - before[-1]


def run_mode(bench: Bench, mode: str, runs: int, workdir: Path, scenarios: list[str]) -> dict:
    config = MODES[mode]
    cluster = bench.cluster(workdir / mode)
    api = start_cluster(cluster, masters=config["masters"], coreapps=3, settings=config["settings"])
    load = Load(api).start()
    results: dict[str, list[float]] = {s: [] for s in scenarios}
    fresh = 1.5 * config["settings"]["heartbeat_interval"] + 0.25  # domain/ha.py healthy_standbys
    spares = iter(range(4, 1000))
    try:
        for scenario in scenarios:
            if scenario.startswith("master") and config["masters"] < 2:
                continue
            for _ in range(runs):
                time.sleep(1.0)
                if scenario.startswith("coreapp"):
                    owner = eventually(lambda: cluster.shard_owners()[0][0], 120, what="a shard owner")
                    eventually(lambda: ready_standbys(cluster, fresh) >= 2, 120, what="two standbys answering heartbeats")
                    sig = signal.SIGKILL if scenario.endswith("sigkill") else signal.SIGTERM
                    fault_at = time.monotonic()
                    cluster.roles[owner].signal(sig)
                    eventually(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 300,
                               what="a new owner")
                    eventually(lambda: any(t > fault_at for t, _ in load.accepted[-50:]), 120, what="traffic again")
                    gap = load.gap_around(fault_at)
                    if gap is not None:
                        results[scenario].append(gap)
                    cluster.roles[owner].wait(30)
                    cluster.start_coreapp(f"wacore{next(spares)}")  # keep a standby for the next run
                else:
                    primary = eventually(cluster.primary_master, 120, what="a primary")
                    sig = signal.SIGKILL if scenario.endswith("sigkill") else signal.SIGTERM
                    fault_at = time.monotonic()
                    cluster.roles[primary].signal(sig)
                    eventually(lambda: (p := cluster.primary_master()) not in (None, primary) and p, 300,
                               what="a new primary")
                    results[scenario].append(time.monotonic() - fault_at)
                    cluster.roles[primary].wait(30)
                    cluster.start_master(primary)
                    time.sleep(2)
    finally:
        load.stop()
        time.sleep(1)
        report = cluster.gateway("/inspect/deliveries")
        cluster.stop_all()
    delivered = {d["id"] for d in report["deliveries"]}
    accepted = [i for _, i in load.accepted]
    out = {name: summary(values) for name, values in results.items() if values}
    out["accepted"] = len(accepted)
    out["lost"] = len([i for i in accepted if i not in delivered])
    out["duplicated"] = len(report["duplicates"])
    out["conflicts"] = len(report["conflicts"])
    out["bans"] = len(report["bans"])
    out["rejected_503"] = load.failed
    out["settings"] = config["settings"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tuned mode only, one run per scenario (< 2 minutes)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="tuned,db_only,defaults")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="a subset of " + ",".join(SCENARIOS))
    parser.add_argument("--name", default="failover", help="results file name (bench/results/<name>.json)")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    modes = ["tuned"] if args.quick else args.modes.split(",")
    runs = 1 if args.quick else args.runs
    workdir = Path("/tmp") / f"wacluster-bench-failover-{int(time.time())}"
    results = {}
    with Bench("failover") as bench:
        for mode in modes:
            results[mode] = run_mode(bench, mode, runs, workdir, scenarios)
    emit(args.name, {"quick": args.quick, "runs_per_scenario": runs, "scenarios": scenarios, "modes": results})


if __name__ == "__main__":
    main()
