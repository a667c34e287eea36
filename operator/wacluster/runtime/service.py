"""What every runtime process shares: /metrics, /livez and /readyz, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, Awaitable, Callable, Coroutine

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from wacluster.api import log_format
from wacluster.api.interprocess import Env, Port


def metrics_app(ready: Callable[[], bool | str], registry: CollectorRegistry = REGISTRY) -> web.Application:
    """`ready` returns True, or False / a reason string when the process should not get traffic;
    `registry`: what /metrics shows (a webapp's worker pool shows its workers' metrics)."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        state = ready()
        if state is True:
            return web.Response(text="ok")
        return web.Response(status=503, text=state if isinstance(state, str) else "not ready")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return app


def add_role_parser(subparsers, name: str, help_text: str, run, control_port: bool = True) -> None:
    """The options the master and the coreapp share: listen address and metrics port; the
    coreapp's control port (a master serves no control endpoint: nothing calls a master)."""
    parser = subparsers.add_parser(name, help=help_text)
    if control_port:
        parser.add_argument("--port", type=int, default=Port.CONTROL)
    parser.add_argument("--host", default=os.environ.get(Env.LISTEN_HOST, "0.0.0.0"))
    parser.add_argument("--metrics-port", type=int, default=Port.METRICS)
    parser.set_defaults(func=run)


def run_loop(main: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run on uvloop when it is installed (less CPU per request for every role);
    Env.EVENT_LOOP=asyncio selects the standard loop (for comparison or as a fallback)."""
    if os.environ.get(Env.EVENT_LOOP, "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)


def configure_logging(role: str) -> None:
    """Log at INFO to stderr in the format Env.LOG_FORMAT names (text unless it says json)."""
    handler = logging.StreamHandler()
    handler.setFormatter(log_format.formatter(role, log_format.chosen_format()))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


async def first_of(*aws) -> None:
    """Wait until the first of `aws` finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_apps(apps: list[tuple[web.Application, str, int]],
                   main: Callable[[asyncio.Event], Awaitable[None]] | None = None) -> None:
    """Serve `apps` and run `main(stop)` until SIGTERM/SIGINT; then stop serving."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    runners = []
    for app, host, port in apps:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        runners.append(runner)
    try:
        if main is not None:
            await main(stop)
        else:
            await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
