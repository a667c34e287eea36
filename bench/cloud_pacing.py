#!/usr/bin/env python3
"""Cloud API pacing benchmark: a burst accepted at once, sent at the number's pace.

For each configured rate (`spec.gateway.cloud.messagesPerSecond`), a cluster in cloud mode (one
master, two coreapps, one shard, a webapp) sends through the local Cloud API, which enforces that
same rate per number as Meta does (130429 beyond it, counted by arrival in a sliding second). The
Cloud API runs in a process of its own (`wacluster testenv cloudapi`): served from a thread of
this one it shared the interpreter with the 32 clients and stamped requests late and bunched. A burst of `--burst` messages to distinct
recipients is sent through the webapp by 32 concurrent clients. Reported per rate: the accept
latency during the burst (p50/p99) and how long accepting took; the achieved send rate over the
middle 80 % of the sends (goal: within 2 % of the configured rate); the 130429 answers the
coreapp met (goal: 0 in steady state); the time until the whole backlog was delivered; and the
invariants (each message sent once). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import threading
import time
from pathlib import Path

from cloud_api import cloud_api_process, metric
from common import Bench, emit, percentile
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.cloudapi import DEFAULT_PHONE_NUMBER_ID
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port

TOKEN = "bench-cloud-access-token"
CLIENTS = 32


def burst(api: ApiClient, count: int) -> tuple[list[float], list[str], int, float]:
    """(accept latencies, accepted ids, refused, seconds it took) for `count` messages."""
    latencies: list[float] = []
    ids: list[str] = []
    refused = [0]
    lock = threading.Lock()

    def client(k: int) -> None:
        for n in range(k, count, CLIENTS):
            started = time.monotonic()
            reply = api.send_text(f"+1556{n:07d}", f"pacing {n}")
            with lock:
                if reply.status == 201:
                    latencies.append(time.monotonic() - started)
                    ids.append(reply.body["messages"][0]["id"])
                else:
                    refused[0] += 1

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, ids, refused[0], time.monotonic() - began


def run_rate(bench: Bench, rate: int, count: int, workdir: Path) -> dict:
    # Ahead of the cluster for the CPU (nice -10): Meta's servers do not share our two cores, and
    # a Cloud API starved by the burst it measures stamps arrivals late and bunched.
    with cloud_api_process(rate, TOKEN, "bench-app-secret", nice=-10) as cloud:
        base = cloud.base
        cluster = bench.cluster(workdir / f"rate-{rate}")
        if cluster.dbupgrade().returncode != 0:
            raise RuntimeError("dbupgrade failed")
        cluster.configure()
        cluster.use_cloud_api(base, TOKEN, DEFAULT_PHONE_NUMBER_ID, rate)
        cluster.start_master("master1")
        ports = {}
        for name in ("wacore1", "wacore2"):
            ports[name] = free_port()
            cluster.start_coreapp(name, ("--metrics-port", str(ports[name])))
        eventually(cluster.primary_master, 60, what="a primary master")
        cluster.register()
        eventually(lambda: cluster.shard_owners().get(0, (None,))[0], 60, what="shard 0 served")
        role = cluster.start_webapp(password="bench")
        api = ApiClient(f"https://127.0.0.1:{role.port}")
        api.login("admin", "bench")
        try:
            latencies, ids, refused, accept_s = burst(api, count)
            accepted_at = time.monotonic()
            eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE status = 'delivered'")[0][0]
                       >= len(ids), count / rate * 3 + 120, interval=1, what=f"{len(ids)} messages delivered")
            drained_s = time.monotonic() - accepted_at
            accepted = cloud.call("GET", "/_control/sends")
            sends = sorted(s["at"] for s in accepted["sends"])
            lo, hi = int(len(sends) * 0.1), int(len(sends) * 0.9)
            achieved = (hi - lo) / (sends[hi] - sends[lo]) if hi > lo and sends[hi] > sends[lo] else None
            arrivals = sorted(accepted["arrivals"])
            busiest = max((bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals)), default=0)
            if os.environ.get("WACLUSTER_BENCH_ARRIVALS"):
                Path(os.environ["WACLUSTER_BENCH_ARRIVALS"], f"arrivals-{rate}.json").write_text(json.dumps(arrivals))
            throttled = sum(metric(p, "wacluster_cloud_throttled_total") for p in ports.values())
            counts = accepted["counts"]
        finally:
            cluster.stop_all()
    return {
        "configured_per_s": rate, "burst": count, "accepted": len(ids), "refused": refused,
        "accept_s": round(accept_s, 2), "accept_p50_ms": _ms(percentile(latencies, 0.5)),
        "accept_p99_ms": _ms(percentile(latencies, 0.99)),
        "achieved_per_s": round(achieved, 1) if achieved else None,
        "achieved_vs_configured": round(achieved / rate, 3) if achieved else None,
        "throttled_130429": int(throttled), "most_requests_in_a_second": busiest, "drained_after_accept_s": round(drained_s, 1),
        "sent_once": sum(1 for i in ids if counts.get(i) == 1), "duplicated": sum(1 for n in counts.values() if n > 1),
        "lost": sum(1 for i in ids if i not in counts),
    }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", default="80,250,1000")
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="rate 80 only, a burst of 1,000")
    parser.add_argument("--name", default="cloud_pacing")
    args = parser.parse_args()
    rates = [80] if args.quick else [int(r) for r in args.rates.split(",")]
    count = 1_000 if args.quick else args.burst
    workdir = Path("/tmp") / f"wacluster-bench-cloud-pacing-{int(time.time())}"
    with Bench("cloud-pacing") as bench:
        results = [run_rate(bench, rate, count, workdir) for rate in rates]
    emit(args.name, {"quick": args.quick, "clients": CLIENTS, "rates": results})


if __name__ == "__main__":
    main()
