#!/usr/bin/env python3
"""Throughput benchmark: closed-loop senders against the webapp (routed: TLS, auth, durable
insert, shard-map routing, coreapp, gateway) and, in the same run, the same load sent straight to
the owning coreapp (no webapp, no insert): overhead_ratio = direct / routed throughput.
Reports msgs/s, p50/p99 latency per shard count and concurrency, the CPU each process spends per
routed message (the two cores bound msgs/s at 2000 / total CPU ms per message), and each role's
resident memory. The load comes from wrk when it is installed (apt install wrk), else from a
Python client; roles run on uvloop unless `--loops` says otherwise. Prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp

import wrk_load
from common import Bench, emit, percentile, rss_mib, start_cluster
from wacluster.api.interprocess import Env

ROUTED_BODY = '{"to": "+1555%07d", "type": "text", "text": {"body": "bench"}}'


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


def load(generator: str, url: str, headers: dict, body_template: str, concurrency: int, duration: float) -> dict:
    """One closed-loop run; `body_template`'s `%d` makes every request body unique."""
    if generator == "wrk":
        return wrk_load.run(url, headers, body_template, concurrency, duration)
    return asyncio.run(closed_loop(url, headers, lambda w, i: json.loads(body_template % (w * 100_000 + i)),
                                   concurrency, duration))


def cpu_snapshot(bench: Bench, cluster) -> dict[str, float]:
    """CPU seconds so far of every live role, all PostgreSQL backends and this process (with wrk)."""
    seconds = {name: cpu_seconds(role.proc.pid) for name, role in cluster.roles.items() if role.alive}
    seconds["postgres"] = postgres_cpu(bench)
    seconds["load_generator"] = cpu_seconds(os.getpid())
    return seconds


def cpu_per_message(cores_used: dict[str, float], duration: float, sent: int) -> dict:
    """CPU milliseconds each process spent per routed message, and the ceiling that implies."""
    if not sent:
        return {}
    per = {name: round(cores * duration * 1000 / sent, 3) for name, cores in cores_used.items()}
    total = round(sum(per.values()), 3)
    return {"by_process": per, "total": total,
            "cpu_bound_msgs_per_s": round((os.cpu_count() or 1) * 1000 / total, 0) if total else None}


def run_shards(bench: Bench, shards: int, concurrencies: list[int], duration: float, workdir: Path,
               profile: bool = False, loop: str = "uvloop", generator: str = "wrk") -> dict:
    os.environ[Env.EVENT_LOOP] = loop  # the roles inherit it (LocalCluster passes os.environ)
    cluster = bench.cluster(workdir / f"shards-{shards}-{loop}")
    api = start_cluster(cluster, masters=2, coreapps=shards + 1, shards=shards,
                        settings={"heartbeat_interval": 5.0, "unhealthy_interval": 30.0})
    run_id = uuid.uuid4().hex[:12]  # direct ids must never repeat, or the coreapp would skip them
    try:
        routed_url = f"{api.base_url}/v1/messages"
        auth = {"Authorization": f"Bearer {api.token}"}
        owners = cluster.shard_owners()
        address = cluster.query("SELECT address FROM nodes WHERE name = %s", (owners[0][0],))[0][0]
        direct_url = f"http://{address}/messages"
        rows = []
        for concurrency in concurrencies:
            cpu_before = cpu_snapshot(bench, cluster)
            spy = None
            if profile and concurrency == concurrencies[-1]:
                raw = workdir / f"webapp-profile-{shards}.txt"
                spy = (subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                                         "--duration", str(int(duration)), "--rate", "200", "--nonblocking",
                                         "--pid", str(cluster.roles["webapp"].proc.pid), "--output", str(raw)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), raw)
            routed = load(generator, routed_url, auth, ROUTED_BODY, concurrency, duration)
            cpu_after = cpu_snapshot(bench, cluster)
            if spy is not None:
                spy[0].wait(timeout=60)
                routed["webapp_profile_top"] = profile_top(spy[1]) if spy[1].exists() else "py-spy produced nothing"
            routed["cpu_cores_used"] = {name: round((cpu_after[name] - cpu_before.get(name, 0)) / duration, 3)
                                        for name in cpu_after if name in cpu_before}
            routed["cpu_ms_per_msg"] = cpu_per_message(routed["cpu_cores_used"], duration, routed["sent"])
            direct = load(
                generator, direct_url, {},
                f'{{"shard": 0, "messages": [{{"id": "direct.{run_id}.{concurrency}.%d", "to": "+15550000000", '
                f'"body": {{"type": "text", "text": {{"body": "bench"}}}}}}]}}', concurrency, duration)
            ratio = round(direct["msgs_per_s"] / routed["msgs_per_s"], 2) if routed["msgs_per_s"] else None
            rows.append({"routed": routed, "direct": direct, "overhead_ratio": ratio})
        memory = {name: rss_mib(role.proc.pid) for name, role in cluster.roles.items() if role.alive}
        report = cluster.gateway()
    finally:
        cluster.stop_all()
    return {"shards": shards, "event_loop": loop, "results": rows, "rss_mib": memory,
            "gateway": {k: report[k] for k in ("delivered", "duplicates", "conflicts", "bans")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 shard, 2 concurrencies, 5 s each (< 2 minutes)")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--profile", action="store_true",
                        help="sample the webapp with py-spy during the highest-concurrency routed run")
    parser.add_argument("--shards", default=None, help="comma-separated shard counts (default 1,2,4; quick 1)")
    parser.add_argument("--concurrency", default=None, help="comma-separated (default 4,16,64; quick 4,16)")
    parser.add_argument("--loops", default="uvloop",
                        help="event loops of the roles, compared side by side: uvloop,asyncio")
    parser.add_argument("--generator", choices=["wrk", "python"], default="wrk" if wrk_load.available() else "python")
    parser.add_argument("--name", default="throughput", help="results file name (bench/results/<name>.json)")
    args = parser.parse_args()
    shard_counts = [int(n) for n in (args.shards or ("1" if args.quick else "1,2,4")).split(",")]
    concurrencies = [int(n) for n in (args.concurrency or ("4,16" if args.quick else "4,16,64")).split(",")]
    duration = 5.0 if args.quick else args.duration
    workdir = Path("/tmp") / f"wacluster-bench-throughput-{int(time.time())}"
    with Bench("throughput") as bench:
        results = [run_shards(bench, n, concurrencies, duration, workdir, args.profile, loop, args.generator)
                   for loop in args.loops.split(",") for n in shard_counts]
    emit(args.name, {"quick": args.quick, "duration_s": duration, "generator": args.generator,
                     "transport": "HTTPS to the webapp, HTTP to the coreapp", "by_shards": results})


if __name__ == "__main__":
    main()
