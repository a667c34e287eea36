#!/usr/bin/env python3
"""Throughput benchmark: closed-loop senders against the webapp (routed: TLS, auth, durable
insert, shard-map routing, coreapp, gateway) and, in the same run, the same load sent straight to
the owning coreapp (no webapp, no insert): overhead_ratio = direct / routed throughput.
Reports msgs/s, p50/p99 latency per shard count and concurrency, and each role's resident memory.
Prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

from common import Bench, emit, percentile, rss_mib, start_cluster


async def closed_loop(url: str, headers: dict, make_body, concurrency: int, duration: float) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration
    context = ssl._create_unverified_context()
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def sender(worker: int) -> None:
            nonlocal errors
            i = 0
            while time.monotonic() < deadline:
                started = time.monotonic()
                async with session.post(url, json=make_body(worker, i)) as resp:
                    await resp.read()
                    if resp.status in (201, 202):
                        latencies.append(time.monotonic() - started)
                    else:
                        errors += 1
                i += 1

        started = time.monotonic()
        await asyncio.gather(*(sender(w) for w in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"concurrency": concurrency, "msgs_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
            "errors": errors, "sent": len(latencies)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its waited-for children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu(bench: Bench) -> float:
    """All PostgreSQL backends together (each connection is a process)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except (FileNotFoundError, PermissionError):
                continue
    return total


def profile_top(raw: Path, top: int = 12) -> list[dict]:
    """Leaf frames of py-spy's collapsed stacks, by share of samples: where the CPU goes."""
    leaves: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        leaves[leaf] = leaves.get(leaf, 0) + int(count)
        total += int(count)
    ranked = sorted(leaves.items(), key=lambda kv: -kv[1])[:top]
    return [{"frame": frame, "share": round(n / total, 3)} for frame, n in ranked] if total else []


def run_shards(bench: Bench, shards: int, concurrencies: list[int], duration: float, workdir: Path,
               profile: bool = False) -> dict:
    cluster = bench.cluster(workdir / f"shards-{shards}")
    api = start_cluster(cluster, masters=2, coreapps=shards + 1, shards=shards,
                        settings={"heartbeat_interval": 5.0, "unhealthy_interval": 30.0})
    try:
        routed_url = f"{api.base_url}/v1/messages"
        auth = {"Authorization": f"Bearer {api.token}"}
        owners = cluster.shard_owners()
        address = cluster.query("SELECT address FROM nodes WHERE name = %s", (owners[0][0],))[0][0]
        direct_url = f"http://{address}/messages"
        rows = []
        for concurrency in concurrencies:
            cpu_before = {name: cpu_seconds(role.proc.pid) for name, role in cluster.roles.items() if role.alive}
            cpu_before["postgres"] = postgres_cpu(bench)
            cpu_before["load_generator"] = cpu_seconds(os.getpid())
            spy = None
            if profile and concurrency == concurrencies[-1]:
                raw = workdir / f"webapp-profile-{shards}.txt"
                spy = (subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                                         "--duration", str(int(duration)), "--rate", "200", "--nonblocking",
                                         "--pid", str(cluster.roles["webapp"].proc.pid), "--output", str(raw)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), raw)
            routed = asyncio.run(closed_loop(
                routed_url, auth,
                lambda w, i: {"to": f"+1555{w:03d}{i:05d}", "type": "text", "text": {"body": "bench"}},
                concurrency, duration))
            cpu_after = {name: cpu_seconds(role.proc.pid) for name, role in cluster.roles.items() if role.alive}
            cpu_after["postgres"] = postgres_cpu(bench)
            cpu_after["load_generator"] = cpu_seconds(os.getpid())
            if spy is not None:
                spy[0].wait(timeout=60)
                routed["webapp_profile_top"] = profile_top(spy[1]) if spy[1].exists() else "py-spy produced nothing"
            routed["cpu_cores_used"] = {name: round((cpu_after[name] - cpu_before.get(name, 0)) / duration, 2)
                                        for name in cpu_after if name in cpu_before}
            direct = asyncio.run(closed_loop(
                direct_url, {},
                lambda w, i: {"shard": 0, "messages": [{"id": f"direct.{uuid.uuid4().hex}", "to": "+15550000000",
                                                        "body": {"type": "text", "text": {"body": "bench"}}}]},
                concurrency, duration))
            ratio = round(direct["msgs_per_s"] / routed["msgs_per_s"], 2) if routed["msgs_per_s"] else None
            rows.append({"routed": routed, "direct": direct, "overhead_ratio": ratio})
        memory = {name: rss_mib(role.proc.pid) for name, role in cluster.roles.items() if role.alive}
        report = cluster.gateway()
    finally:
        cluster.stop_all()
    return {"shards": shards, "results": rows, "rss_mib": memory,
            "gateway": {k: report[k] for k in ("delivered", "duplicates", "conflicts", "bans")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 shard, 2 concurrencies, 5 s each (< 2 minutes)")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--profile", action="store_true",
                        help="sample the webapp with py-spy during the highest-concurrency routed run")
    args = parser.parse_args()
    shard_counts = [1] if args.quick else [1, 2, 4]
    concurrencies = [4, 16] if args.quick else [4, 16, 64]
    duration = 5.0 if args.quick else args.duration
    workdir = Path("/tmp") / f"wacluster-bench-throughput-{int(time.time())}"
    with Bench("throughput") as bench:
        results = [run_shards(bench, n, concurrencies, duration, workdir, args.profile) for n in shard_counts]
    emit("throughput", {"quick": args.quick, "duration_s": duration, "transport": "HTTPS to the webapp, "
                        "HTTP to the coreapp", "by_shards": results})


if __name__ == "__main__":
    main()
