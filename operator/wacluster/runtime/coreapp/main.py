"""`wacluster coreapp`: the entry point. Serves the control port and the metrics port, runs the
role until SIGTERM, and exits non-zero when a supervised task failed for good (so Kubernetes
restarts the pod while the shard fails over to a standby)."""

from __future__ import annotations

import argparse

from wacluster.api.interprocess import Role
from wacluster.db.connection import conninfo_from_env, open_pool
from wacluster.runtime.coreapp.control import control_app
from wacluster.runtime.coreapp.role import Coreapp, CoreappConfig
from wacluster.runtime.gateway import GatewayMode, cloud_settings, gateway_mode
from wacluster.runtime.internal_auth import internal_token
from wacluster.runtime.node import gateway_url, identity
from wacluster.runtime.service import add_role_parser, configure_logging, metrics_app, run_apps, run_loop

DEFAULTS = CoreappConfig()


def add_parser(subparsers) -> None:
    add_role_parser(subparsers, Role.COREAPP, "run a coreapp (standby until promoted for a shard)", run)
    parser = subparsers.choices[Role.COREAPP]
    parser.add_argument("--ack-timeout", type=float, default=DEFAULTS.ack_timeout,
                        help="seconds to wait for the gateway's ack of a batch before asking it again")
    parser.add_argument("--outbox-capacity", type=int, default=DEFAULTS.outbox_capacity,
                        help="unsent messages held at most; beyond, webapps are told to retry (503)")
    parser.add_argument("--backlog-page", type=int, default=DEFAULTS.backlog_page,
                        help="rows per page of the backlog scan")
    parser.add_argument("--backlog-interval", type=float, default=DEFAULTS.backlog_interval,
                        help="seconds between scans of the shard's backlog")
    parser.add_argument("--cloud-in-doubt-window", type=float, default=DEFAULTS.cloud_in_doubt_window,
                        help="Cloud API: seconds after a send started with no known outcome before it is sent again")
    parser.add_argument("--cloud-pause-check-interval", type=float, default=DEFAULTS.cloud_pause_check_interval,
                        help="Cloud API: seconds between credential checks while the account is refused")
    parser.add_argument("--media-dir", default=DEFAULTS.media_dir,
                        help="Cloud API: the shared media directory the webapps store uploads in (media sent by id "
                             "is uploaded from it)")


def run(args: argparse.Namespace) -> int:
    configure_logging(Role.COREAPP)
    token = internal_token()  # before anything starts: without it the control port cannot be guarded
    config = CoreappConfig(ack_timeout=args.ack_timeout, outbox_capacity=args.outbox_capacity,
                           backlog_page=args.backlog_page, backlog_interval=args.backlog_interval,
                           cloud_in_doubt_window=args.cloud_in_doubt_window,
                           cloud_pause_check_interval=args.cloud_pause_check_interval,
                           media_dir=args.media_dir)
    cloud = cloud_settings() if gateway_mode() is GatewayMode.CLOUD else None

    async def main() -> None:
        pool = await open_pool(conninfo_from_env(), max_size=6)
        coreapp = Coreapp(identity(args.port), pool, gateway_url(), config, cloud)
        apps = [(control_app(coreapp, token), args.host, args.port)]
        if args.metrics_port:
            apps.append((metrics_app(coreapp.ready), args.host, args.metrics_port))
        try:
            await run_apps(apps, coreapp.run)
        finally:
            await pool.close()

    run_loop(main())
    return 0
