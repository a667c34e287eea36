#!/usr/bin/env python3
"""Switchover benchmark: under a steady message load, ask for a switchover of shard 0 to a
standby (the `wacluster.io/switchover` annotation on the WhatsAppCluster, as `kubectl wac
switchover` writes it), repeatedly, and measure each planned handoff.

Per run, all from the moment before the annotation is written:
- downtime: the longest wait between two accepted messages from the request until the new owner
  serves (the webapp retries meanwhile, so it is what a client sees). The owner keeps accepting
  until the master asks it to hand off, so failover.py's measure (last message accepted before
  the fault to the first after it) is reported too, as gap_at_request, but can miss the handoff;
- serving: until the chosen standby owns shard 0 and is connected (shard_owners);
- completed: until the master's answer on its Lease says Completed for this request.
The target alternates between the standbys, so every run moves the shard and every coreapp takes
its turn. Masters follow the WhatsAppCluster (the CRD object exists, Env.CLUSTER names it) and
every coreapp has a Pod object labelled as the operator would create it, else the master would
count it as gone. Modes: failover.py's tuned and defaults. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import pykube

from common import ROOT, Bench, emit, eventually, start_cluster, summary
from failover import MODES, Load, ready_standbys
from wacluster.api.interprocess import SWITCHOVER_ANNOTATION, SWITCHOVER_STATUS_ANNOTATION, Env, Label, Role
from wacluster.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from wacluster.domain.maintenance import switchover_request
from wacluster_testenv.crds import install_crd
from wacluster_testenv.eventually import NotReached

COREAPPS = ("wacore1", "wacore2", "wacore3")
NAMESPACE = "default"
PLANNED = "because it handed the shard off for maintenance"  # a failover row's reason for a planned handoff


class ClusterObjects:
    """The API objects the masters read: the WhatsAppCluster (its annotations) and the coreapps'
    Pods; and the master Lease, where the primary answers a switchover request."""

    def __init__(self, kubeconfig: str, kubectl, name: str) -> None:
        self.api = pykube.HTTPClient(pykube.KubeConfig.from_file(kubeconfig))
        self.kubectl = kubectl
        self.name = name

    def create(self) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
             "metadata": {"name": self.name, "namespace": NAMESPACE}, "spec": {}}))
        pods = [{"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": coreapp, "namespace": NAMESPACE,
                              "labels": {Label.CLUSTER: self.name, Label.COMPONENT: Role.COREAPP}},
                 "spec": {"containers": [{"name": "coreapp", "image": "wacluster:bench"}]}} for coreapp in COREAPPS]
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))

    def delete(self) -> None:
        self.kubectl("delete", "pod", *COREAPPS, "-n", NAMESPACE, "--ignore-not-found", "--wait=false", check=False)
        self.kubectl("delete", KIND.lower(), self.name, "-n", NAMESPACE, "--ignore-not-found", "--wait=false",
                     check=False)

    def request_switchover(self, request: str) -> None:
        reply = self.api.patch(version=f"{GROUP}/{VERSION}", namespace=NAMESPACE, url=f"{PLURAL}/{self.name}",
                               headers={"Content-Type": "application/merge-patch+json"},
                               data=json.dumps({"metadata": {"annotations": {SWITCHOVER_ANNOTATION: request}}}))
        reply.raise_for_status()

    def switchover_answer(self, lease: str) -> dict | None:
        reply = self.api.get(version="coordination.k8s.io/v1", namespace=NAMESPACE, url=f"leases/{lease}")
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        text = (reply.json()["metadata"].get("annotations") or {}).get(SWITCHOVER_STATUS_ANNOTATION)
        return json.loads(text) if text else None


def longest_gap(accepted: list[float], start: float, end: float) -> float:
    """The longest wait between two accepted messages while the shard moves: over every pair of
    consecutive acceptances that spans a moment of [start, end]. Unlike a fault, a request does not
    stop the owner at once (it keeps accepting until the master asks it to hand off), so the gap
    around the request alone (failover.py's measure) can miss the handoff."""
    pairs = [(a, b) for a, b in zip(accepted, accepted[1:]) if b > start and a < end]
    return max((b - a for a, b in pairs), default=0.0)


def run_mode(bench: Bench, mode: str, runs: int, workdir: Path, messages_per_run: int) -> dict:
    config = MODES[mode]
    name = f"swo-{mode.replace('_', '-')}"
    objects = ClusterObjects(bench.summary["kubeconfig"], bench.env.control_plane.kubectl, name)
    objects.create()
    cluster = bench.cluster(workdir / mode)
    cluster.lease_name = f"{name}-master"  # the name `kubectl wac` derives from the cluster's
    start_master = cluster.start_master
    # Told the cluster's name, a master watches its annotations and lists its coreapps' pods.
    cluster.start_master = lambda master, env=None, args=(): start_master(master, {Env.CLUSTER: name, **(env or {})},
                                                                          args)
    api = start_cluster(cluster, masters=config["masters"], coreapps=len(COREAPPS), settings=config["settings"])
    load = Load(api).start()
    fresh = 1.5 * config["settings"]["heartbeat_interval"] + 0.25  # domain/ha.py healthy_standbys
    downtime, at_request, serving, completed, writes, moves = [], [], [], [], [], []
    previous_owner = None
    try:
        eventually(lambda: load.accepted, 60, what="messages accepted before the first switchover")
        for _ in range(runs):
            owner = eventually(lambda: cluster.shard_owners()[0][0], 120, what="a shard owner")
            eventually(lambda: ready_standbys(cluster, fresh) >= 2, 120, what="two standbys answering heartbeats")
            # Not the coreapp that gave the shard up last run: the shard goes round all three.
            target = next(c for c in sorted(set(COREAPPS) - {owner}) if c != previous_owner)
            request = switchover_request(0, target, dt.datetime.now(dt.timezone.utc))
            requested_at = time.monotonic()
            objects.request_switchover(request)
            writes.append(time.monotonic() - requested_at)
            seen: dict[str, float] = {}
            last_answer: list[dict | None] = [None]

            def moved_and_answered() -> bool:
                if "serving" not in seen and cluster.shard_owners()[0][0] == target:
                    seen["serving"] = time.monotonic()
                if "completed" not in seen:
                    answer = last_answer[0] = objects.switchover_answer(cluster.lease_name)
                    if answer and answer["request"] == request:
                        if answer["state"] == "Refused":
                            raise RuntimeError(f"switchover to {target} refused: {answer['message']}")
                        if answer["state"] == "Completed":
                            seen["completed"] = time.monotonic()
                return len(seen) == 2

            eventually(moved_and_answered, 180, interval=0.02, what=f"{target} serving shard 0 and the answer Completed",
                       details=lambda: f"seen {sorted(seen)}, answer {last_answer[0]}")
            # Enough traffic through the new owner that "lost" below says something about each move.
            eventually(lambda: sum(t > requested_at for t, _ in load.accepted[-messages_per_run:]) >= messages_per_run,
                       120, what=f"{messages_per_run} messages accepted after the switchover")
            gap = load.gap_around(requested_at)
            if gap is not None:
                at_request.append(gap)
            longest = longest_gap([t for t, _ in load.accepted], requested_at, seen["serving"])
            downtime.append(longest)
            serving.append(seen["serving"] - requested_at)
            completed.append(seen["completed"] - requested_at)
            moved_from, moved_to, reason = cluster.query(
                "SELECT from_coreapp, to_coreapp, reason FROM failovers ORDER BY id DESC LIMIT 1")[0]
            moves.append({"from": moved_from, "to": moved_to, "planned": PLANNED in reason,
                          "downtime_s": round(longest, 4), "gap_at_request_s": round(gap, 4) if gap is not None else None,
                          "serving_s": round(seen["serving"] - requested_at, 4),
                          "completed_s": round(seen["completed"] - requested_at, 4)})
            previous_owner = owner
    finally:
        load.stop()
        # An accepted message still queued or claimed is in flight, not lost: wait for those before
        # asking the gateway what it received (one that never leaves counts as lost below).
        try:
            eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE status NOT IN "
                                             "('delivered', 'cancelled')")[0][0] == 0, 60, what="no message in flight")
        except NotReached as stuck:
            print(f"# {stuck}", flush=True)
        report = cluster.gateway("/inspect/deliveries")
        cluster.stop_all()
        objects.delete()
    delivered = {d["id"] for d in report["deliveries"]}
    accepted = [i for _, i in load.accepted]
    times = [t for t, _ in load.accepted]
    # What one message costs when nothing moves: a downtime near it means the client saw none.
    between = sorted(b - a for a, b in zip(times, times[1:]))
    return {
        "between_messages_p50_s": round(between[len(between) // 2], 4) if between else None,
        "downtime": summary(downtime), "gap_at_request": summary(at_request), "serving": summary(serving), "completed": summary(completed),
        "annotation_write": summary(writes), "moves": moves,
        "accepted": len(accepted), "lost": len([i for i in accepted if i not in delivered]),
        "duplicated": len(report["duplicates"]), "conflicts": len(report["conflicts"]), "bans": len(report["bans"]),
        "rejected_503": load.failed, "settings": config["settings"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tuned mode only, two runs (< 2 minutes)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--modes", default="tuned,defaults", help="a subset of tuned,defaults")
    parser.add_argument("--messages-per-run", type=int, default=200,
                        help="messages accepted after each switchover before the next one")
    parser.add_argument("--name", default="switchover", help="results file name (bench/results/<name>.json)")
    args = parser.parse_args()
    modes = ["tuned"] if args.quick else args.modes.split(",")
    unknown = set(modes) - {"tuned", "defaults"}
    if unknown:
        parser.error(f"unknown mode(s) {sorted(unknown)}; choose from tuned, defaults")
    # Two runs even when quick: the second moves the shard onward from a coreapp that has just
    # handed it off, the case a single run never shows.
    runs = 2 if args.quick else args.runs
    workdir = Path("/tmp") / f"wacluster-bench-switchover-{int(time.time())}"
    results = {}
    with Bench("switchover") as bench:
        kubectl = bench.env.control_plane.kubectl
        # Unchecked: right after the apply, the CRD's status has no conditions yet and kubectl's
        # jsonpath fails on it; install_crd's wait must read that as "not yet", not raise. A failed
        # apply still surfaces, as the CRD never established.
        install_crd(lambda *args, **kw: kubectl(*args, check=False, **kw), ROOT / "crds" / "whatsappcluster.yaml")
        for mode in modes:
            results[mode] = run_mode(bench, mode, runs, workdir, args.messages_per_run)
    emit(args.name, {"quick": args.quick, "runs_per_mode": runs, "messages_per_run": args.messages_per_run,
                     "modes": results})


if __name__ == "__main__":
    main()
