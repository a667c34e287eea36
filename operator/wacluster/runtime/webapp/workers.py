"""Several webapp processes in one pod (`wacluster webapp --workers N`): one Python process uses
at most one core, and the webapp's CPU per message made one process the throughput limit.

The parent starts N workers (`wacluster webapp --pool-worker`), each a whole webapp with its own
database pool and shard-map cache, all listening on the API port with SO_REUSEPORT: the kernel
spreads new connections over them. The parent serves the pod's one metrics port: the workers
write their metrics to files (prometheus_client's multiprocess mode) and the parent sums them, so
a scrape sees the whole pod under the same series names, and the dashboards and alerts stay
valid. /readyz answers ok once every worker has loaded its shard map.

A worker that exits while the pod is not stopping is logged and restarted (runtime/supervision.py:
too many in a row bring the pod down, and Kubernetes restarts it). SIGTERM is passed to every
worker, each stops accepting, finishes the requests under way and exits; the parent exits 0 only
if every worker did."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, multiprocess

from wacluster.api.interprocess import Role
from wacluster.runtime.service import install_stop_signals, metrics_app
from wacluster.runtime.supervision import Policy, Supervisor

log = logging.getLogger("wacluster.webapp")

AUTO = "auto"
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: the container's CPU limit
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for its files' folder
READY_MARKER = "ready-{pid}"  # a worker's file in that folder once its shard map is loaded
WORKER_STOP_TIMEOUT = 75.0  # aiohttp gives requests under way 60 s to finish on shutdown


def workers_option(text: str) -> int | str:
    """argparse type of --workers: a positive count or `auto`."""
    if text == AUTO:
        return AUTO
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"--workers takes a positive number or {AUTO!r}, not {text!r}")
    return count


def cpus_from_cpu_max(text: str) -> int | None:
    """Whole CPUs a cgroup v2 `cpu.max` ("<quota> <period>", or "max <period>": no limit) allows,
    rounded up (a 1.5-CPU limit gets 2 workers: the half core is usable); None without a limit."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def worker_count(requested: int | str, cpu_max: Path = CPU_MAX,
                 cpu_count: Callable[[], int | None] = os.cpu_count) -> int:
    """`requested` as is, or for `auto` the container's CPU limit (cgroup v2 cpu.max), else the
    machine's CPUs; `auto` never gives more workers than the machine has CPUs."""
    cpus = cpu_count() or 1
    if requested != AUTO:
        return int(requested)
    try:
        limit = cpus_from_cpu_max(cpu_max.read_text())
    except OSError:  # cgroup v1, or no cgroup file system mounted
        limit = None
    return min(limit, cpus) if limit is not None else cpus


def mark_ready() -> None:
    """In a pool worker: tell the parent this worker serves (its shard map is loaded)."""
    folder = os.environ.get(MULTIPROC_DIR_ENV)
    if folder:
        (Path(folder) / READY_MARKER.format(pid=os.getpid())).touch()


class WorkerDied(RuntimeError):
    """A worker exited while the pod was not stopping."""


class WorkerPool:
    """Runs `count` workers from `argv` until SIGTERM; serves their metrics on `metrics_port`."""

    def __init__(self, argv: list[str], count: int, host: str, metrics_port: int) -> None:
        self.argv, self.count, self.host, self.metrics_port = argv, count, host, metrics_port
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.exit_codes: list[int] = []
        self.folder = Path(tempfile.mkdtemp(prefix="wacluster-webapp-metrics-"))

    def ready(self) -> bool | str:
        alive = [p for p in self.procs.values() if p.returncode is None]
        if len(alive) < self.count:
            return f"{len(alive)} of {self.count} webapp workers running"
        loaded = sum((self.folder / READY_MARKER.format(pid=p.pid)).exists() for p in alive)
        return True if loaded == self.count else f"{loaded} of {self.count} webapp workers have loaded the shard map"

    async def run(self) -> int:
        """0 when every worker exited 0 after SIGTERM; raises RoleFailed when workers keep dying."""
        os.environ[MULTIPROC_DIR_ENV] = str(self.folder)  # the workers inherit it
        install_stop_signals(self.stopping)
        runner = await self._serve_metrics()
        supervisor = Supervisor(log)
        finished = asyncio.Event()
        for index in range(self.count):
            supervisor.add(f"worker-{index}", lambda index=index: self._keep(index), Policy.RESTART,
                           finished=finished)
        try:
            await supervisor.run(lambda: self._stop_on_signal(finished), name="webapp-workers")
        finally:
            await self._terminate(signal.SIGKILL)  # after a failure: no worker outlives the pod
            if runner is not None:
                await runner.cleanup()
            shutil.rmtree(self.folder, ignore_errors=True)
        return 0 if all(code == 0 for code in self.exit_codes) else 1

    async def _keep(self, index: int) -> None:
        if self.stopping.is_set():  # a restart that came due during the stop
            return
        proc = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.DEVNULL)
        self.procs[index] = proc
        log.info("webapp worker %d started (pid %d)", index, proc.pid)
        code = await proc.wait()
        if self.stopping.is_set():
            return
        multiprocess.mark_process_dead(proc.pid, str(self.folder))
        (self.folder / READY_MARKER.format(pid=proc.pid)).unlink(missing_ok=True)
        raise WorkerDied(f"webapp worker {index} (pid {proc.pid}) exited with {code} while the pod was serving")

    async def _stop_on_signal(self, finished: asyncio.Event) -> None:
        await self.stopping.wait()
        log.info("stopping %d webapp workers: each finishes the requests under way", len(self.procs))
        finished.set()
        await self._terminate(signal.SIGTERM)

    async def _terminate(self, sig: int) -> None:
        procs = [p for p in self.procs.values() if p.returncode is None]
        for proc in procs:
            proc.send_signal(sig)
        for proc in procs:
            try:
                code = await asyncio.wait_for(proc.wait(), WORKER_STOP_TIMEOUT)
            except asyncio.TimeoutError:
                log.error("webapp worker pid %d did not stop within %gs; killing it", proc.pid, WORKER_STOP_TIMEOUT)
                proc.kill()
                code = await proc.wait()
            if sig == signal.SIGTERM:
                if code == -signal.SIGTERM and not (self.folder / READY_MARKER.format(pid=proc.pid)).exists():
                    # Stopped while still importing, before it could handle the signal: it never
                    # served a request, so nothing was cut off.
                    log.info("webapp worker pid %d stopped before it was serving", proc.pid)
                    code = 0
                self.exit_codes.append(code)
                if code != 0:
                    log.error("webapp worker pid %d exited with %d on stop", proc.pid, code)

    async def _serve_metrics(self) -> web.AppRunner | None:
        if not self.metrics_port:
            return None
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.folder))
        app = metrics_app(self.ready, registry)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.metrics_port, reuse_address=True).start()
        return runner


def worker_argv(args) -> list[str]:
    """The command line of one pool worker: this webapp's options, no metrics port of its own."""
    argv = [sys.executable, "-m", "wacluster", Role.WEBAPP, "--pool-worker", "--host", args.host,
            "--port", str(args.port), "--metrics-port", "0", "--media-dir", args.media_dir,
            "--media-max-bytes", str(args.media_max_bytes), "--token-ttl", str(args.token_ttl)]
    return argv + (["--plain-http"] if args.plain_http else [])
