"""The `kubectl-wac` console script: kubectl finds it on PATH and runs it as `kubectl wac`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from kubernetes_asyncio import config

from wacluster.controller import support_bundle
from wacluster.plugin import logs, maintenance, status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl wac", description="Operate a WhatsAppCluster.")
    parser.add_argument("-n", "--namespace", help="the cluster's namespace (default: the kubeconfig context's)")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("status", help="conditions, primary master, shard map, nodes and backlog in one screen")
    p.add_argument("cluster")
    p.set_defaults(run=status.run)

    p = verbs.add_parser("switchover", help="move one shard to another coreapp with a planned handoff")
    p.add_argument("cluster")
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--to", help="the coreapp to take the shard (default: the best healthy standby)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer (0: do not wait)")
    p.set_defaults(run=maintenance.switchover)

    for verb, helptext, run in (
            ("fence", "take a coreapp out of promotion; if it owns a shard it hands it off", maintenance.fence),
            ("unfence", "let a fenced coreapp be promoted again", maintenance.unfence)):
        p = verbs.add_parser(verb, help=helptext)
        p.add_argument("cluster")
        p.add_argument("coreapp", help="the coreapp's name (its pod's name)")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the handoff (0: do not wait)")
        p.set_defaults(run=run)

    p = verbs.add_parser("logs", help="the logs of every pod of the cluster, each line prefixed with its pod")
    p.add_argument("cluster")
    p.add_argument("--role", choices=["master", "coreapp", "webapp", "sandbox", "database"],
                   help="only this role's pods")
    p.add_argument("--tail", type=int, default=100, help="lines per container")
    p.set_defaults(run=logs.run)

    p = verbs.add_parser("bundle", help="the support bundle: the cluster, events, Lease, pods, logs, health")
    p.add_argument("cluster")
    p.add_argument("--output", "-o", help="file to write (default: <cluster>-support-<time>.txt)")
    p.add_argument("--tail", type=int, default=2000, help="log lines per container")
    p.set_defaults(run=None)
    return parser


def context_namespace() -> str:
    """kubectl does not pass its namespace to plugins: read the current context's, as kubectl would."""
    try:
        _, active = config.list_kube_config_contexts(os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None)
    except Exception:  # no kubeconfig (in a pod): the default namespace, as kubectl would use
        return "default"
    return ((active or {}).get("context") or {}).get("namespace") or "default"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.namespace = args.namespace or context_namespace()
    if args.verb == "bundle":
        from pathlib import Path
        args.output = Path(args.output) if args.output else None
        return support_bundle.run(args)
    try:
        return asyncio.run(args.run(args))
    except maintenance.Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
