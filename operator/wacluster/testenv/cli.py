"""`wacluster testenv build|up|down|status`: the local control plane and PostgreSQL."""

from __future__ import annotations

import argparse
import json
import sys

from wacluster.testenv.build import bin_dir, build_all
from wacluster.testenv.controlplane import NODE_MODES
from wacluster.testenv.environment import Environment


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("testenv", help="local Kubernetes control plane and PostgreSQL for tests and the demo")
    actions = parser.add_subparsers(dest="testenv_action", required=True)
    actions.add_parser("build", help="build and cache the control-plane binaries (instant when cached)")
    up = actions.add_parser("up", help="start a control plane (etcd, apiserver, controllers, kwok) and PostgreSQL")
    up.add_argument("--name", default="default", help="environment name; distinct names run side by side")
    up.add_argument("--no-postgres", action="store_true", help="start the control plane only")
    up.add_argument("--nodes", choices=NODE_MODES, default="kwok",
                    help="kwok: three simulated nodes (pods run no containers); real: one node with "
                         "containerd, kubelet, kube-proxy and CoreDNS (root, Linux)")
    down = actions.add_parser("down", help="stop every process of an environment and delete its state")
    down.add_argument("--name", default="default")
    status = actions.add_parser("status", help="print the environment's kubeconfig, server and DSN as JSON")
    status.add_argument("--name", default="default")
    actions.add_parser("bin-dir", help="print the directory holding kubectl, helm and the other binaries")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    action = args.testenv_action
    if action == "build":
        build_all()
        return 0
    if action == "bin-dir":
        print(bin_dir())
        return 0
    env = Environment(args.name)
    if action == "up":
        summary = env.up(with_postgres=not args.no_postgres, nodes=args.nodes)
        print(f"control plane ready at {summary['server']} in {summary['ready_in_s']}s")
        print(f"  kubeconfig: {summary['kubeconfig']}")
        if "postgres_dsn" in summary:
            print(f"  postgres:   {summary['postgres_dsn']}")
        print(f"  use it:     source {env.directory / 'env.sh'}")
        return 0
    if action == "down":
        stopped = env.down()
        print(f"stopped {', '.join(stopped) if stopped else 'nothing (no environment running)'}")
        return 0
    summary = env.summary()
    if summary is None:
        print(f"no environment named {args.name!r} is running", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0
