"""`wacluster master`: the command that wires a Master to its database, its Lease and its pods."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wacluster.api.interprocess import MANAGED_BY, Env, Label, Role, master_lease, selector
from wacluster.db.connection import conninfo_from_env, open_pool
from wacluster.kube.connection import api_client
from wacluster.kube.lease import KubeLeaseStore
from wacluster.runtime.internal_auth import internal_token
from wacluster.runtime.master.loop import Master
from wacluster.runtime.node import identity
from wacluster.runtime.service import add_role_parser, configure_logging, metrics_app, run_apps, run_loop


def add_parser(subparsers) -> None:
    add_role_parser(subparsers, Role.MASTER, "run a master (Lease-elected primary or secondary)", run,
                    control_port=False)


def run(args: argparse.Namespace) -> int:
    configure_logging(Role.MASTER)
    token = internal_token()  # before anything starts: without it no coreapp answers a heartbeat

    async def main() -> None:
        pool = await open_pool(conninfo_from_env(), max_size=6)
        api = await api_client()
        namespace = os.environ.get(Env.NAMESPACE, "default")
        lease_name = os.environ.get(Env.LEASE_NAME, master_lease("wacluster"))
        cluster = os.environ.get(Env.CLUSTER, "")
        # The operator watches Leases by these labels to re-read the holder and the shard map.
        store = KubeLeaseStore(api, namespace, lease_name,
                               {**selector(cluster, Role.MASTER), Label.MANAGED_BY: MANAGED_BY} if cluster else None)
        settings_file = os.environ.get(Env.SETTINGS_FILE)
        master = Master(identity(None), pool, store, Path(settings_file) if settings_file else None,
                        pod_api=api, namespace=namespace, cluster=cluster, internal_token=token)
        apps = [(metrics_app(master.ready), args.host, args.metrics_port)] if args.metrics_port else []
        try:
            await run_apps(apps, master.run)
        finally:
            await api.close()
            await pool.close()

    run_loop(main())
    return 0
