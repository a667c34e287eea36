#!/usr/bin/env python3
"""Chaos benchmark: a seeded random schedule of faults under steady load, then the invariants.

Faults: SIGKILL, SIGSTOP/SIGCONT and SIGTERM of coreapps and masters, PostgreSQL restart, API
server restart, webapp restart. Killed or terminated roles come back after a pause, as a
Deployment would bring them back. At the end: accepted, delivered, lost, duplicated, conflicts,
bans, max downtime and availability (the fraction of seconds in which every shard accepted a
message). `--smoke` runs a few faults and checks only the invariants. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import random
import signal
import threading
import time
from pathlib import Path

from common import Bench, emit, start_cluster
from wacluster.domain.sharding import shard_of

FAULTS = ["kill_coreapp", "stop_coreapp", "term_coreapp", "kill_master", "term_master", "stop_master",
          "restart_postgres", "restart_apiserver", "restart_webapp"]


class Senders:
    """One closed-loop sender per shard (recipients chosen so each shard gets traffic)."""

    def __init__(self, cluster, api_factory, shards: int) -> None:
        self.cluster, self.api_factory, self.shards = cluster, api_factory, shards
        self.accepted: list[tuple[float, int, str]] = []
        self.rejected = 0
        self.running = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in range(shards)]

    def start(self) -> None:
        self.running.set()
        for thread in self.threads:
            thread.start()

    def _run(self, shard: int) -> None:
        recipients = [f"+1555{n:07d}" for n in range(20_000) if shard_of(f"+1555{n:07d}", self.shards) == shard]
        i = 0
        while self.running.is_set():
            try:
                reply = self.api_factory().send_text(recipients[i % len(recipients)], f"chaos {i}")
            except OSError:
                self.rejected += 1
                time.sleep(0.1)
                continue
            if reply.status == 201:
                self.accepted.append((time.monotonic(), shard, reply.body["messages"][0]["id"]))
            else:
                self.rejected += 1
                if reply.status in (401, 502, 503):
                    time.sleep(0.05)
            i += 1

    def stop(self) -> None:
        self.running.clear()
        for thread in self.threads:
            thread.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--interval", type=float, default=8.0, help="mean seconds between faults")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="90 s of faults")
    parser.add_argument("--smoke", action="store_true", help="a few faults, invariants only")
    args = parser.parse_args()
    duration = 25.0 if args.smoke else (90.0 if args.quick else args.duration)
    rng = random.Random(args.seed)
    workdir = Path("/tmp") / f"wacluster-bench-chaos-{int(time.time())}"
    settings = {"heartbeat_interval": 1.0, "unhealthy_interval": 2.0, "db_heartbeat_interval": 1.0,
                "db_unhealthy_after": 5.0, "lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}
    faults_done: list[dict] = []
    with Bench("chaos") as bench:
        cluster = bench.cluster(workdir)
        api = start_cluster(cluster, masters=3, coreapps=args.shards + 2, shards=args.shards, settings=settings)
        state = {"api": api}

        def current_api():
            return state["api"]

        senders = Senders(cluster, current_api, args.shards)
        senders.start()
        paused: list = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < duration:
                time.sleep(rng.expovariate(1 / args.interval) if not args.smoke else 4.0)
                for role in paused:
                    role.signal(signal.SIGCONT)
                paused.clear()
                fault = rng.choice(FAULTS)
                record = {"at_s": round(time.monotonic() - started, 1), "fault": fault}
                if fault.endswith("coreapp") or fault.endswith("master"):
                    kind = "coreapp" if fault.endswith("coreapp") else "master"
                    alive = [r for r in cluster.roles.values() if r.kind == kind and r.alive]
                    if not alive:
                        continue
                    role = rng.choice(alive)
                    record["target"] = role.name
                    if fault.startswith("stop"):
                        role.signal(signal.SIGSTOP)
                        paused.append(role)
                    else:
                        role.signal(signal.SIGKILL if fault.startswith("kill") else signal.SIGTERM)
                        role.wait(30)
                        threading.Timer(2.0, lambda r=role: (cluster.start_coreapp(r.name) if r.kind == "coreapp"
                                                             else cluster.start_master(r.name))).start()
                elif fault == "restart_postgres":
                    # The environment's server runs with production durability (Postgres' default;
                    # `restart` refuses a fast one): what was acknowledged with a 201 survives this.
                    bench.env.postgres.restart(down_for=1.0)
                elif fault == "restart_apiserver":
                    from wacluster_testenv.processes import ProcessTable
                    ProcessTable(bench.env.control_plane.state_dir).restart("kube-apiserver", signal.SIGKILL, 1.0)
                elif fault == "restart_webapp":
                    old = cluster.roles["webapp"]
                    old.signal(signal.SIGKILL)
                    old.wait(30)
                    role = cluster.start_webapp(password="bench")
                    from wacluster_testenv.apiclient import ApiClient
                    fresh = ApiClient(f"https://127.0.0.1:{role.port}")
                    fresh.login("admin", "bench")
                    state["api"] = fresh
                faults_done.append(record)
            for role in paused:
                role.signal(signal.SIGCONT)
            time.sleep(6)  # let the last failover finish before the final count
        finally:
            senders.stop()
            time.sleep(2)
            report = cluster.gateway("/inspect/deliveries")
            cluster.stop_all()
    elapsed_s = int(duration)
    delivered = {d["id"] for d in report["deliveries"]}
    accepted = [a for a in senders.accepted]
    lost = [i for _, _, i in accepted if i not in delivered]
    seconds = {(int(t - started), shard) for t, shard, _ in accepted}
    available = sum(1 for s in range(elapsed_s) if all((s, k) in seconds for k in range(args.shards)))
    max_gap = 0.0
    for shard in range(args.shards):
        times = sorted(t for t, k, _ in accepted if k == shard)
        gaps = [b - a for a, b in zip(times, times[1:])]
        max_gap = max([max_gap, *gaps])
    emit("chaos", {
        "seed": args.seed, "smoke": args.smoke, "quick": args.quick, "duration_s": duration, "shards": args.shards,
        "faults": len(faults_done), "schedule": faults_done,
        "accepted": len(accepted), "delivered": len(delivered & {i for _, _, i in accepted}),
        "lost": len(lost), "duplicated": len(report["duplicates"]), "conflicts": len(report["conflicts"]),
        "bans": len(report["bans"]), "stale_sends": len(report["stale_sends"]), "rejected": senders.rejected,
        "max_downtime_s": round(max_gap, 2), "availability": round(available / max(1, elapsed_s), 3),
        "settings": settings,
    })


if __name__ == "__main__":
    main()
