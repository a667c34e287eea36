#!/usr/bin/env python3
"""`make demo`: the local story, start to finish, in readable steps.

Brings up the local control plane and PostgreSQL, installs the CRD, runs the operator, applies
examples/minimal.yaml, waits until the cluster is Ready and prints what was created.
Everything it started is stopped at the end (pass --keep to leave the environment running).

Where this machine can run a real node (root, hack/host-setup.sh's packages, a Docker engine),
the story runs on real pods instead (hack/demo_pods.py); `--nodes kwok` keeps the process demo.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from wacluster.api.interprocess import Env  # noqa: E402
from wacluster_testenv.apiclient import ApiClient  # noqa: E402
from wacluster_testenv.build import bin_dir  # noqa: E402
from wacluster_testenv.crds import install_crd  # noqa: E402
from wacluster_testenv.environment import Environment  # noqa: E402
from wacluster_testenv.eventually import eventually  # noqa: E402
from wacluster_testenv.localcluster import LocalCluster  # noqa: E402

sys.path.insert(0, str(ROOT / "hack"))
from demo_story import seed_story  # noqa: E402

NAMESPACE = "demo"
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[demo {time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


class Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> str:
        proc = subprocess.run([str(bin_dir() / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, input=input)
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the environment running at the end")
    parser.add_argument("--nodes", choices=("auto", "kwok", "real"), default="auto",
                        help="real: every role in a container on a real node; kwok: simulated nodes and "
                             "the roles as local processes; auto: real when this machine can run it")
    args = parser.parse_args()

    import demo_pods  # next to this file

    if args.nodes == "real" or (args.nodes == "auto" and demo_pods.available()):
        return demo_pods.run(ROOT, say, Kubectl, NAMESPACE, args.keep)

    env = Environment("demo")
    if env.summary():
        say("stopping a previous demo environment")
        env.down()
    say("starting the local control plane (etcd, kube-apiserver, controllers, kwok nodes) and PostgreSQL")
    summary = env.up()
    say(f"ready in {summary['ready_in_s']}s: {summary['server']}, PostgreSQL on port {summary['postgres_port']}")
    kubectl = Kubectl(summary["kubeconfig"])
    print(kubectl("get", "nodes", "-L", "topology.kubernetes.io/zone"), flush=True)

    operator = None
    try:
        say("installing the WhatsAppCluster CRD from crds/")
        install_crd(kubectl, ROOT / "crds" / "whatsappcluster.yaml")
        kubectl("create", "namespace", NAMESPACE)

        say("starting the operator (watching namespace demo)")
        log_path = env.directory / "operator.log"
        operator = subprocess.Popen(
            [sys.executable, "-m", "wacluster", "operator", "--namespace", NAMESPACE, "--metrics-port", "0"],
            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": summary["kubeconfig"], Env.NAMESPACE: NAMESPACE},
        )

        say("applying examples/minimal.yaml")
        print(kubectl("apply", "-n", NAMESPACE, "-f", str(ROOT / "examples" / "minimal.yaml")), flush=True)

        def ready():
            out = kubectl("get", "wac", "-n", NAMESPACE, "-o", "json")
            items = json.loads(out)["items"]
            return items and all((i.get("status") or {}).get("phase") == "Ready" for i in items)

        eventually(ready, 180, interval=1.0, what="the WhatsAppCluster to become Ready")
        say("the cluster is Ready")
        print(kubectl("get", "wac", "-n", NAMESPACE), flush=True)
        print(kubectl("get", "deployments,statefulsets,jobs,services,pdb,pvc,secrets,configmaps,"
                      "serviceaccounts,roles,rolebindings", "-n", NAMESPACE,
                      "-l", "app.kubernetes.io/part-of=wacluster"), flush=True)
        print(kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"), flush=True)
        status = json.loads(kubectl("get", "wac", "-n", NAMESPACE, "-o", "json"))["items"][0]["status"]
        for cond in status["conditions"]:
            print(f"  {cond['type']:<18} {cond['status']:<6} {cond['reason']}: {cond['message']}")
        say(f"operator part done; operator log: {log_path}")
        runtime_story(env, summary)
        return 0
    finally:
        if operator is not None:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        if args.keep:
            say(f"environment kept: source {env.directory / 'env.sh'}; stop it with `wacluster testenv down --name demo`")
        else:
            say("stopping the environment")
            env.down()


def runtime_story(env: Environment, summary: dict) -> None:
    """The seeds' single-server developer setup, as local processes: 2 masters, 2 coreapps,
    a webapp and the sandbox, against the local control plane (Lease) and PostgreSQL."""
    say("runtime: 2 masters, 2 coreapps, 1 webapp and the sandbox as local processes")
    dsn = env.postgres.create_database("demo")
    cluster = LocalCluster(summary["kubeconfig"], dsn, NAMESPACE, env.directory)
    try:
        result = cluster.dbupgrade()
        if result.returncode != 0:
            raise RuntimeError(f"dbupgrade failed: {result.stderr[-500:]}")
        say("dbupgrade applied the schema and exited 0")
        cluster.configure(heartbeat_interval=1.0, unhealthy_interval=3.0)
        cluster.start_sandbox()
        for name in ("master1", "master2"):
            cluster.start_master(name)
        for name in ("wacore1", "wacore2"):
            cluster.start_coreapp(name)
        role = cluster.start_webapp(password="demo-password")
        api = ApiClient(f"https://127.0.0.1:{role.port}")
        api.login("admin", "demo-password")

        def fail(owner: str) -> None:
            say(f"stopping the connected coreapp {owner} (SIGKILL: an unplanned failure)")
            cluster.roles[owner].signal(signal.SIGKILL)

        def sandbox_counts() -> tuple[int, int, int]:
            report = cluster.gateway()
            return report["delivered"], report["conflicts"], report["bans"]

        seed_story(api, say, fail, sandbox_counts, timeout=30)
    finally:
        cluster.stop_all()


if __name__ == "__main__":
    sys.exit(main())
