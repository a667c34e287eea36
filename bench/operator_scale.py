#!/usr/bin/env python3
"""Operator scale: N WhatsAppClusters applied at once on the kwok nodes; time until all are
Ready, reconciles per second and the operator's resident memory; then, with all Ready, the
operator at rest: its CPU (utime+stime from /proc over a window, as a fraction of one core), its
memory, and the server-side applies and reconciles it made in that window. Prints one JSON line.

`--operator-src DIR` runs the operator from another source tree (e.g. a git worktree of an older
commit), so old and new are measured in one session on the same machine and environment."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import ROOT, Bench, emit, rss_mib
from wacluster.api.interprocess import Env
from wacluster_testenv.crds import install_crd
from wacluster_testenv.processes import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_REQUEST_SAMPLE = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid` so far (its threads included)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat


def operator_metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        text = resp.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def server_side_applies(kubectl) -> int:
    """The API server's count of server-side applies so far (only the operator makes them here)."""
    total = 0.0
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        match = _REQUEST_SAMPLE.match(line)
        if match and 'verb="APPLY"' in match["labels"]:
            total += float(match["value"])
    return int(total)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10 clusters, a 30 s idle window")
    parser.add_argument("--idle-seconds", type=float, default=120.0, help="length of the idle window")
    parser.add_argument("--settle-seconds", type=float, default=30.0,
                        help="wait after all are Ready before the idle window opens")
    parser.add_argument("--operator-src", help="run the operator from this source tree (its operator/ folder)")
    parser.add_argument("--result-name", default="operator_scale", help="bench/results/<name>.json")
    args = parser.parse_args()
    count = 10 if args.quick else args.clusters
    idle_seconds = 30.0 if args.quick else args.idle_seconds
    operator_env = {**os.environ}
    if args.operator_src:
        operator_env["PYTHONPATH"] = os.pathsep.join(
            [os.path.join(os.path.abspath(args.operator_src), "operator"), os.environ.get("PYTHONPATH", "")])
    source = subprocess.run(["git", "-C", args.operator_src or str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    with Bench("operator-scale") as bench:
        kubeconfig = bench.summary["kubeconfig"]
        kubectl = bench.env.control_plane.kubectl
        # The CRD of the operator measured: an older operator's model refuses fields added since.
        install_crd(kubectl, Path(args.operator_src or ROOT) / "crds" / "whatsappcluster.yaml")
        kubectl("create", "namespace", "scale")
        metrics_port = free_port()
        log = open(f"/tmp/wacluster-operator-scale-{os.getpid()}.log", "wb")
        operator = subprocess.Popen([sys.executable, "-m", "wacluster", "operator", "--all-namespaces",
                                     "--metrics-port", str(metrics_port)],
                                    env={**operator_env, "KUBECONFIG": kubeconfig, Env.NAMESPACE: "default",
                                         Env.METRICS_ADDR: "127.0.0.1"}, stdout=log, stderr=subprocess.STDOUT)
        idle: dict = {}
        try:
            time.sleep(5)  # the operator takes its Lease and starts watching
            manifests = [{"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                          "metadata": {"name": f"wa{i:03d}", "namespace": "scale"}, "spec": {"version": "1.0.0"}}
                         for i in range(count)]
            load_at_apply = load_average()
            applied = time.monotonic()
            kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
            ready_at, ready = None, 0
            while time.monotonic() - applied < 900:
                items = json.loads(kubectl("get", "wac", "-n", "scale", "-o", "json"))["items"]
                ready = sum(1 for i in items if (i.get("status") or {}).get("phase") == "Ready")
                if ready == count:
                    ready_at = time.monotonic()
                    break
                time.sleep(1)
            reconciles = operator_metric(metrics_port, "wacluster_operator_reconciles_total")
            elapsed = (ready_at or time.monotonic()) - applied
            memory = rss_mib(operator.pid)
            if ready_at is not None:
                time.sleep(args.settle_seconds)  # a window in time is what is measured: nothing to wait for
                cpu0, applies0 = cpu_seconds(operator.pid), server_side_applies(kubectl)
                reconciles0, load0, t0 = operator_metric(metrics_port, "wacluster_operator_reconciles_total"), \
                    load_average(), time.monotonic()
                time.sleep(idle_seconds)
                window = time.monotonic() - t0
                idle = {"idle_window_s": round(window, 1),
                        "idle_cpu_core_fraction": round((cpu_seconds(operator.pid) - cpu0) / window, 4),
                        "idle_rss_mib": rss_mib(operator.pid),
                        "idle_server_side_applies": server_side_applies(kubectl) - applies0,
                        "idle_reconciles": int(operator_metric(metrics_port, "wacluster_operator_reconciles_total")
                                               - reconciles0),
                        "load_average_1_5_15": {"at_apply": load_at_apply, "idle_start": load0,
                                                "idle_end": load_average()}}
        finally:
            operator.terminate()
            operator.wait(timeout=60)
    emit(args.result_name, {"operator_source": source, "clusters": count, "all_ready": ready_at is not None,
                            "ready": ready, "time_to_all_ready_s": round(elapsed, 1),
                            "reconciles": int(reconciles), "reconciles_per_s": round(reconciles / elapsed, 2),
                            "operator_rss_mib": memory, **idle, "nodes": "3 kwok nodes"})


if __name__ == "__main__":
    main()
