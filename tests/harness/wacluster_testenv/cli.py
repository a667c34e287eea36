"""`wacluster testenv build|up|down|status`: the local control plane and PostgreSQL."""

from __future__ import annotations

import argparse
import json
import sys

from wacluster_testenv import cloudapi
from wacluster_testenv.build import bin_dir, build_all
from wacluster_testenv.controlplane import NODE_MODES
from wacluster_testenv.environment import Environment


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
    images = actions.add_parser(
        "images", help="build the base, project, PostgreSQL and local Cloud API images with Docker from Debian "
                       "packages and import them into a real-node environment's containerd")
    images.add_argument("--name", default="default", help="environment (started with --nodes real) to import into")
    images.add_argument("--tag", default="e2e", help="tag of the project image (wacluster:<tag>)")
    images.add_argument("--extra-tag", action="append", default=[], help="further tags of the same build")
    images.add_argument("--no-import", action="store_true", help="build only")
    actions.add_parser("bin-dir", help="print the directory holding kubectl, helm and the other binaries")
    cloudapi.add_parser(actions)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    action = args.testenv_action
    if action == "cloudapi":
        return cloudapi.serve(args)
    if action == "build":
        build_all()
        return 0
    if action == "bin-dir":
        print(bin_dir())
        return 0
    env = Environment(args.name)
    if action == "images":
        return _images(env, args)
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


def _images(env: Environment, args: argparse.Namespace) -> int:
    from wacluster_testenv.images import build_images, import_into_containerd

    built = build_images(tag=args.tag, extra_tags=args.extra_tag)
    if args.no_import:
        return 0
    control_plane = env.control_plane
    if not control_plane.real_node_running():
        print(f"environment {args.name!r} has no real node: start it with "
              f"`wacluster testenv up --nodes real --name {args.name}`, or pass --no-import", file=sys.stderr)
        return 1
    import_into_containerd([*built["project_tags"], built["postgres"], built["cloudapi"]],
                           str(control_plane.node.socket))
    return 0
