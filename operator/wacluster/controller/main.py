"""`wacluster operator`: one active replica at a time, chosen by a Lease, running kopf.

kopf's own peering makes replicas of equal priority all freeze; instead a standby here waits on
a Lease named after the operator and only the holder runs kopf. On SIGTERM the holder stops kopf
and releases the Lease, so a standby takes over within one retry period.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading

import kopf
from prometheus_client import start_http_server

from wacluster import __version__
from wacluster.api.interprocess import OPERATOR_APP, OPERATOR_LEASE, Env, Label, Port
from wacluster.controller import handlers  # noqa: F401  (registers the handlers)
from wacluster.controller import metrics
from wacluster.domain.election import LeaderElector, Timings
from wacluster.kube.connection import api_client
from wacluster.kube.lease import KubeLeaseStore, campaign

log = logging.getLogger("wacluster.operator")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("operator", help="run the WhatsAppCluster operator")
    parser.add_argument("--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: the operator's own namespace")
    parser.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--metrics-port", type=int, default=Port.OPERATOR_METRICS)
    parser.add_argument("--lease-name", default=OPERATOR_LEASE)
    parser.set_defaults(func=run)


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    own_namespace = os.environ.get(Env.NAMESPACE, "default")
    namespaces = [] if args.all_namespaces else (args.namespace or [own_namespace])
    return asyncio.run(_run(namespaces, own_namespace, args.metrics_port, args.lease_name))


def _run_kopf(namespaces: list[str], stop_flag: threading.Event, default_version: str, identity: str) -> None:
    """kopf in a thread of its own: there it installs no signal handlers and schedules no
    SIGKILL, so SIGTERM stays ours and we release the Lease after kopf has stopped.

    The identity is passed in: kopf would otherwise derive one from the user name, which a
    container running as a bare numeric UID (no passwd entry) does not have."""
    asyncio.run(kopf.operator(
        standalone=True, clusterwide=not namespaces, namespaces=namespaces, identity=identity,
        stop_flag=stop_flag, memo=kopf.Memo(default_version=default_version)))


async def _run(namespaces: list[str], lease_namespace: str, metrics_port: int, lease_name: str) -> int:
    if metrics_port:
        start_http_server(metrics_port, addr=os.environ.get(Env.METRICS_ADDR, "0.0.0.0"))
    identity = os.environ.get(Env.POD_NAME) or f"{socket.gethostname()}-{os.getpid()}"
    default_version = os.environ.get(Env.DEFAULT_VERSION, __version__)
    api = await api_client()
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)

    kopf_stop = threading.Event()
    kopf_thread: threading.Thread | None = None
    kopf_failed = False

    def kopf_main() -> None:
        nonlocal kopf_failed
        try:
            _run_kopf(namespaces, kopf_stop, default_version, identity)
        except BaseException:
            log.exception("kopf stopped with an error")
        if not kopf_stop.is_set():
            # A leader whose kopf is gone reconciles nothing: exit non-zero, release the Lease
            # and let the pod restart rather than hold the Lease idle.
            log.error("kopf exited while this replica leads; shutting down")
            kopf_failed = True
            loop.call_soon_threadsafe(shutdown.set)

    async def started(term: int) -> None:
        nonlocal kopf_thread
        metrics.IS_LEADER.set(1)
        log.info("%s leads the operator (term %d); watching %s", identity, term,
                 ", ".join(namespaces) or "all namespaces")
        kopf_thread = threading.Thread(target=kopf_main, name="kopf", daemon=True)
        kopf_thread.start()

    async def stopped() -> None:
        metrics.IS_LEADER.set(0)
        kopf_stop.set()
        if kopf_thread is not None:
            await loop.run_in_executor(None, kopf_thread.join, 20)
            if kopf_thread.is_alive():
                log.warning("kopf did not stop within 20s")
        if not shutdown.is_set():
            # Lost the Lease without being asked to stop: exit so a restart starts clean.
            log.error("lost the operator Lease; exiting so that only one replica acts")
            shutdown.set()

    store = KubeLeaseStore(api, lease_namespace, lease_name, {Label.NAME: OPERATOR_APP})
    elector = LeaderElector(store, identity, Timings(15, 10, 2))
    log.info("%s campaigning for Lease %s/%s", identity, lease_namespace, lease_name)
    await campaign(elector, store, started, stopped, shutdown)
    await api.close()
    return 1 if kopf_failed else 0
