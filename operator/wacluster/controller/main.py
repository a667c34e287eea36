"""`wacluster operator`: one active replica at a time, chosen by a Lease, running kopf.

kopf's own peering makes replicas of equal priority all freeze; instead a standby here waits on
a Lease named after the operator and only the holder runs kopf. On SIGTERM the holder stops kopf
and releases the Lease, so a standby takes over within one retry period.

/healthz and /readyz on the health port answer from controller/health.py's decisions; this module
only wires the reports in (the Lease store's answers, kopf's heartbeat, kopf's sightings of the
operator Lease) and serves them with aiohttp on the main loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from typing import Callable

import kopf
from aiohttp import web
from prometheus_client import start_http_server

from wacluster import __version__
from wacluster.api import log_format
from wacluster.api.interprocess import OPERATOR_APP, OPERATOR_LEASE, Env, Label, Port
from wacluster.controller import handlers  # noqa: F401  (registers the handlers)
from wacluster.controller import metrics
from wacluster.controller.health import HealthLimits, ObservedLeaseStore, OperatorHealth, Verdict
from wacluster.domain.election import LeaderElector, Timings
from wacluster.kube.connection import api_client
from wacluster.kube.lease import KubeLeaseStore, campaign

log = logging.getLogger("wacluster.operator")

ROLE = "operator"
ELECTION = Timings(15, 10, 2)
KOPF_HEARTBEAT_SECONDS = 1.0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("operator", help="run the WhatsAppCluster operator")
    parser.add_argument("--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: the operator's own namespace")
    parser.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--metrics-port", type=int, default=Port.OPERATOR_METRICS)
    parser.add_argument("--health-port", type=int, default=Port.OPERATOR_HEALTH,
                        help="serve /healthz and /readyz here (0: not at all)")
    parser.add_argument("--log-format", choices=log_format.LOG_FORMATS, default=None,
                        help=f"text (default) or json, one object a line; default: ${Env.LOG_FORMAT}")
    parser.add_argument("--lease-name", default=OPERATOR_LEASE)
    parser.set_defaults(func=run)


def run(args) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(log_format.formatter(ROLE, log_format.chosen_format(args.log_format)))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    own_namespace = os.environ.get(Env.NAMESPACE, "default")
    namespaces = [] if args.all_namespaces else (args.namespace or [own_namespace])
    return asyncio.run(_run(namespaces, own_namespace, args.metrics_port, args.health_port, args.lease_name))


def _run_kopf(namespaces: list[str], stop_flag: threading.Event, memo: kopf.Memo, identity: str) -> None:
    """kopf in a thread of its own: there it installs no signal handlers and schedules no
    SIGKILL, so SIGTERM stays ours and we release the Lease after kopf has stopped.

    The identity is passed in: kopf would otherwise derive one from the user name, which a
    container running as a bare numeric UID (no passwd entry) does not have."""
    asyncio.run(_kopf_with_heartbeat(memo.health, kopf.operator(
        standalone=True, clusterwide=not namespaces, namespaces=namespaces, identity=identity,
        stop_flag=stop_flag, memo=memo)))


async def _kopf_with_heartbeat(health: OperatorHealth, operator) -> None:
    """Run kopf with a heartbeat on its own loop: a loop that stops answering stops beating."""
    async def beat() -> None:
        while True:
            health.kopf_heartbeat()
            await asyncio.sleep(KOPF_HEARTBEAT_SECONDS)

    async with asyncio.TaskGroup() as group:
        beating = group.create_task(beat(), name="kopf-heartbeat")
        try:
            await operator
        finally:
            beating.cancel()


@kopf.index("coordination.k8s.io", "v1", "leases", labels={Label.NAME: OPERATOR_APP}, id="operator_lease_canary")
def operator_lease_seen(name: str, namespace: str, memo: kopf.Memo, **_) -> None:
    """The watch canary: the main loop renews this Lease every retry period; kopf must see it.

    An indexer that indexes nothing (it returns None) rather than an event handler: kopf runs it
    on every event too, but logs it only when it fails, not "succeeded" every two seconds."""
    if (namespace, name) == memo.get("operator_lease") and "health" in memo:
        memo.health.kopf_saw_lease()


async def _serve_health(health: OperatorHealth, port: int) -> web.AppRunner:
    def answer(decide: Callable[[], Verdict]):
        async def respond(_: web.Request) -> web.Response:
            verdict = decide()
            return web.Response(status=200 if verdict.ok else 503, text=verdict.reason + "\n")
        return respond

    app = web.Application()
    app.router.add_get("/healthz", answer(health.liveness))
    app.router.add_get("/readyz", answer(health.readiness))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, os.environ.get(Env.METRICS_ADDR, "0.0.0.0"), port, reuse_address=True).start()
    return runner


async def _run(namespaces: list[str], lease_namespace: str, metrics_port: int, health_port: int,
               lease_name: str) -> int:
    if metrics_port:
        start_http_server(metrics_port, addr=os.environ.get(Env.METRICS_ADDR, "0.0.0.0"))
    identity = os.environ.get(Env.POD_NAME) or f"{socket.gethostname()}-{os.getpid()}"
    default_version = os.environ.get(Env.DEFAULT_VERSION, __version__)
    api = await api_client()
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    kopf_stop = threading.Event()
    kopf_thread: threading.Thread | None = None
    kopf_failed = False
    # kopf sees the operator Lease only where it watches: every namespace, or the Lease's own.
    health = OperatorHealth(HealthLimits(lease_renewal=ELECTION.lease_duration),
                            watch_canary=not namespaces or lease_namespace in namespaces,
                            kopf_alive=lambda: kopf_thread is not None and kopf_thread.is_alive())
    health_runner = await _serve_health(health, health_port) if health_port else None

    def stop() -> None:
        health.stopping = True
        shutdown.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    memo = kopf.Memo(default_version=default_version, health=health, operator_lease=(lease_namespace, lease_name))

    def kopf_main() -> None:
        nonlocal kopf_failed
        try:
            _run_kopf(namespaces, kopf_stop, memo, identity)
        except BaseException:
            log.exception("kopf stopped with an error")
        if not kopf_stop.is_set():
            # A leader whose kopf is gone reconciles nothing: exit non-zero, release the Lease
            # and let the pod restart rather than hold the Lease idle.
            log.error("kopf exited while this replica leads; shutting down")
            kopf_failed = True
            loop.call_soon_threadsafe(stop)

    async def started(term: int) -> None:
        nonlocal kopf_thread
        metrics.IS_LEADER.set(1)
        log.info("%s leads the operator (term %d); watching %s", identity, term,
                 ", ".join(namespaces) or "all namespaces", extra={"term": term})
        kopf_thread = threading.Thread(target=kopf_main, name="kopf", daemon=True)
        kopf_thread.start()
        health.started_leading(term)

    async def stopped() -> None:
        metrics.IS_LEADER.set(0)
        health.stopped_leading()
        kopf_stop.set()
        if kopf_thread is not None:
            await loop.run_in_executor(None, kopf_thread.join, 20)
            if kopf_thread.is_alive():
                log.warning("kopf did not stop within 20s")
        if not shutdown.is_set():
            # Lost the Lease without being asked to stop: exit so a restart starts clean.
            log.error("lost the operator Lease; exiting so that only one replica acts")
            stop()

    store = KubeLeaseStore(api, lease_namespace, lease_name, {Label.NAME: OPERATOR_APP})
    elector = LeaderElector(ObservedLeaseStore(store, health), identity, ELECTION)
    log.info("%s campaigning for Lease %s/%s", identity, lease_namespace, lease_name)
    await campaign(elector, store, started, stopped, shutdown)
    if health_runner is not None:
        await health_runner.cleanup()
    await api.close()
    return 1 if kopf_failed else 0
