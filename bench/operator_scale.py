#!/usr/bin/env python3
"""Operator scale: N WhatsAppClusters applied at once on the kwok nodes; time until all are
Ready, reconciles per second and the operator's resident memory. Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

from common import ROOT, Bench, emit, rss_mib
from wacluster.api.interprocess import Env
from wacluster_testenv.crds import install_crd
from wacluster_testenv.processes import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10 clusters")
    args = parser.parse_args()
    count = 10 if args.quick else args.clusters
    with Bench("operator-scale") as bench:
        kubeconfig = bench.summary["kubeconfig"]
        kubectl = bench.env.control_plane.kubectl
        install_crd(kubectl, ROOT / "crds" / "whatsappcluster.yaml")
        kubectl("create", "namespace", "scale")
        metrics_port = free_port()
        log = open(f"/tmp/wacluster-operator-scale-{os.getpid()}.log", "wb")
        operator = subprocess.Popen([sys.executable, "-m", "wacluster", "operator", "--all-namespaces",
                                     "--metrics-port", str(metrics_port)],
                                    env={**os.environ, "KUBECONFIG": kubeconfig, Env.NAMESPACE: "default",
                                         Env.METRICS_ADDR: "127.0.0.1"}, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(5)  # the operator takes its Lease and starts watching
            manifests = [{"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                          "metadata": {"name": f"wa{i:03d}", "namespace": "scale"}, "spec": {"version": "1.0.0"}}
                         for i in range(count)]
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
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
                metrics_text = resp.read().decode()
            reconciles = sum(float(line.split()[-1]) for line in metrics_text.splitlines()
                             if line.startswith("wacluster_operator_reconciles_total{"))
            elapsed = (ready_at or time.monotonic()) - applied
            memory = rss_mib(operator.pid)
        finally:
            operator.terminate()
            operator.wait(timeout=60)
    emit("operator_scale", {"clusters": count, "all_ready": ready_at is not None, "ready": ready,
                            "time_to_all_ready_s": round(elapsed, 1),
                            "reconciles": int(reconciles), "reconciles_per_s": round(reconciles / elapsed, 2),
                            "operator_rss_mib": memory, "nodes": "3 kwok nodes"})


if __name__ == "__main__":
    main()
