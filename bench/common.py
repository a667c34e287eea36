"""What every benchmark shares: a private environment, a local cluster, load, and the result line."""

from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from wacluster.runtime.sandbox import registration_code  # noqa: E402
from wacluster_testenv.apiclient import ApiClient  # noqa: E402
from wacluster_testenv.environment import Environment  # noqa: E402
from wacluster_testenv.eventually import eventually  # noqa: E402
from wacluster_testenv.localcluster import LocalCluster  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return {"cores": os.cpu_count(), "memory_gib": round(total_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release()}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 4)


def summary(values: list[float]) -> dict:
    return {"runs": len(values), "p50_s": percentile(values, 0.5), "p99_s": percentile(values, 0.99),
            "max_s": round(max(values), 4) if values else None,
            "mean_s": round(statistics.fmean(values), 4) if values else None}


def emit(name: str, result: dict) -> None:
    """Write bench/results/<name>.json and print the result as the last line (one JSON line)."""
    result = {"benchmark": name, "machine": machine(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              **result}
    # Tests that run a benchmark point this elsewhere, so they never overwrite published results.
    results = Path(os.environ.get("WACLUSTER_BENCH_RESULTS", RESULTS))
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result), flush=True)


class Bench:
    """A private control plane + PostgreSQL for one benchmark run, torn down at the end."""

    def __init__(self, name: str) -> None:
        self.env = Environment(f"bench-{name}-{os.getpid()}")
        self.summary: dict = {}

    def __enter__(self) -> "Bench":
        # SIGTERM (a timeout, a CI stop) unwinds through __exit__, so the environment is stopped.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.summary = self.env.up()
        return self

    def __exit__(self, *exc) -> None:
        self.env.down()

    def cluster(self, workdir: Path) -> LocalCluster:
        dsn = self.env.postgres.create_database("bench")
        workdir.mkdir(parents=True, exist_ok=True)
        return LocalCluster(self.summary["kubeconfig"], dsn, "default", workdir)


def start_cluster(cluster: LocalCluster, masters: int, coreapps: int, shards: int = 1, settings: dict | None = None,
                  webapp: bool = True, plain_http: bool = False,
                  coreapp_args: tuple[str, ...] = (), webapp_args: tuple[str, ...] = ()) -> ApiClient | None:
    """`coreapp_args`, `webapp_args`: further command-line options of every `wacluster coreapp`,
    of the `wacluster webapp`."""
    result = cluster.dbupgrade()
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    cluster.configure(shards=shards, **(settings or {}))
    cluster.start_sandbox(ban_threshold=3)
    for i in range(1, masters + 1):
        cluster.start_master(f"master{i}")
    for i in range(1, coreapps + 1):
        cluster.start_coreapp(f"wacore{i}", coreapp_args)
    api = None
    if webapp:
        role = cluster.start_webapp(password="bench", plain_http=plain_http, args=webapp_args)
        api = ApiClient(f"{'http' if plain_http else 'https'}://127.0.0.1:{role.port}")
        api.login("admin", "bench")
        api.request("POST", "/v1/account", {"cc": "1", "phone_number": "5550001111"})
        api.request("POST", "/v1/account/verify", {"code": registration_code("+15550001111")})
    else:
        cluster.register()
    eventually(lambda: len(cluster.shard_owners()) == shards and all(o[0] for o in cluster.shard_owners().values()),
               60, what=f"{shards} shard(s) connected")
    return api


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except FileNotFoundError:
        return None
    return None
