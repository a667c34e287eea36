#!/usr/bin/env python3
"""Throughput benchmark: closed-loop senders, two paths measured at the same concurrency in the
same run, and overhead_ratio = direct / routed msgs/s.

*Routed*: HTTPS to the webapp: token check, validation, the durable INSERT, shard-map routing,
the hand-off of the ids to the coreapp owning the shard, which claims the rows and sends them to
the gateway. A message counts when the webapp answered 201.

*Direct*: the coreapp owning shard 0 alone, fed through its control port (`POST /messages`, one
id a request, the body built from wacluster.api.control). A coreapp sends only rows it can claim
in PostgreSQL: an id without a stored row is acknowledged (202, `"claimed": []`) and never sent,
so posting made-up ids, as this path once did, measured an acknowledgement and no send at all.
The rows are therefore stored first, outside the timed window, the way the webapp stores them
(the webapp's OutgoingMessage model, domain.sharding.route_hash, db.messages.insert_many;
recipients of shard 0): `--direct-rows-per-s` x duration rows per point, more than the load can
use. The direct path is then the coreapp's whole part of a message (claim, send to the gateway,
gateway ack, recorded delivered) with no webapp and no INSERT, and overhead_ratio says what the
webapp and the durable INSERT cost. One id a request, as a client sends one message a request:
the coreapp then claims row by row, where the webapp coalesces concurrent messages into one
INSERT and one hand-off (up to 256), so at higher concurrency the routed path can need fewer
claims per message than the direct one, and the ratio can fall below 1. A request counts only
when its answer says the id was claimed; any other 202 is reported as `unclaimed`, and a point
with unclaimed > 0 is not a valid measurement (the load ran past the stored rows, or something
else claimed them). Rows never handed off are withdrawn afterwards (queued -> cancelled, as the
webapp withdraws), so nothing sends them later.

Both paths answer before the gateway's ack, so after each load the benchmark waits until every
message it counted is recorded delivered: `drain_s` (time after the load ended) and
`delivered_msgs_per_s` (= sent / (duration + drain_s)) show the sends kept up, and the next load
starts on an empty outbox. The direct path's `delivered` can exceed `sent` by at most the
concurrency: requests still in flight when the load stopped are not counted.

The coreapps run with `--backlog-interval 86400` instead of every 5 s: the periodic backlog scan
claims every queued row of its shard, so it would take the direct path's stored rows itself and
turn their hand-offs into no-ops. The scan still runs at takeover and after any loss; in the
routed path it finds nothing when nothing is lost, so the routed numbers are those of the default.

Also reported: p50/p99 latency per shard count and concurrency, the CPU each process spends per
routed message (the two cores bound msgs/s at 2000 / total CPU ms per message), and each role's
resident memory. `--webapp-workers 1,auto` runs every shard count once per webapp worker setting
(`wacluster webapp --workers`), side by side; a webapp's CPU and memory are those of all its
processes. `--src old=DIR,new=DIR` runs the roles from other source trees (each DIR holds the
`wacluster` package, e.g. a `git archive` of a commit's operator/), each shard count once per tree,
side by side: a change measured against its parent on the same machine in one run. Every point records the machine's load averages (/proc/loadavg) when it started: the
machine is shared, and `--max-load` waits (up to `--load-wait` seconds) for a quieter machine
before each shard count. The load comes from wrk when it is installed (apt install wrk), else from a
Python client; roles run on uvloop unless `--loops` says otherwise. Prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg

import wrk_load
from common import Bench, emit, eventually, percentile, rss_mib, start_cluster
from wacluster.api.control import HandedMessage, HandOff
from wacluster.api.interprocess import Env
from wacluster.api.rest import OutgoingMessage
from wacluster.db import messages as messages_db
from wacluster.db.messages import Message
from wacluster.domain.sharding import route_hash, shard_of
from wacluster.runtime.webapp.workers import worker_count, workers_option

ROUTED_BODY = '{"to": "+1555%07d", "type": "text", "text": {"body": "bench"}}'
COREAPP_ARGS = ("--backlog-interval", "86400")  # why: the module docstring
DIRECT_SHARD = 0
STORE_CHUNK = 5000  # rows per INSERT statement when storing the direct path's rows
DRAIN_TIMEOUT = 120.0


async def closed_loop(url: str, headers: dict, body_template: str, concurrency: int, duration: float,
                      count_unclaimed: bool = False) -> dict:
    """Like wrk_load.run: `body_template`'s `%d` takes 1, 2, 3, ... in the order requests are made."""
    latencies: list[float] = []
    errors = unclaimed = 0
    numbers = itertools.count(1)
    deadline = time.monotonic() + duration
    context = ssl._create_unverified_context()
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    headers = {**headers, "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def sender() -> None:
            nonlocal errors, unclaimed
            while time.monotonic() < deadline:
                started = time.monotonic()
                async with session.post(url, data=body_template % next(numbers)) as resp:
                    body = await resp.read()
                    if resp.status not in (201, 202):
                        errors += 1
                    elif count_unclaimed and not json.loads(body).get("claimed"):
                        unclaimed += 1
                    else:
                        latencies.append(time.monotonic() - started)

        started = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    result = {"concurrency": concurrency, "msgs_per_s": round(len(latencies) / elapsed, 1),
              "p50_ms": round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
              "p99_ms": round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
              "errors": errors, "sent": len(latencies)}
    if count_unclaimed:
        result["unclaimed"] = unclaimed
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (and its waited-for children), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (a webapp with --workers is a parent and its workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def listening(pid: int, url: str) -> list[int]:
    """The processes of `pid`'s tree that hold a listening socket on `url`'s port."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    listeners = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                listeners.add(f"socket:[{fields[9]}]")
    found = []
    for member in process_tree(pid):
        try:
            targets = {os.readlink(fd) for fd in Path(f"/proc/{member}/fd").iterdir()}
        except OSError:
            continue
        if targets & listeners:
            found.append(member)
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


def load_averages() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (what `uptime` shows)."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def wait_for_quiet(max_load: float, max_wait: float) -> dict:
    """Wait until the 1-minute load average is at most `max_load`, or `max_wait` seconds passed."""
    started = time.monotonic()
    while load_averages()[0] > max_load and time.monotonic() - started < max_wait:
        time.sleep(5)  # the load average is a minute's mean: nothing to react to sooner
    return {"waited_s": round(time.monotonic() - started, 1), "load_average": load_averages()}


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


# Where a webapp sample goes: the innermost frame of its stack that one of these names (checked
# leaf first, rules in order); a sample whose leaf is the loop's run() is uvloop's own C code.
PROFILE_CATEGORIES = [
    ("TLS encryption and socket writes of responses", ("aiohttp/http_writer.py", "ssl.py", "sslproto")),
    ("JSON encoding and decoding", ("json/", "orjson")),
    ("validation (pydantic)", ("pydantic",)),
    ("database pool checkout (connection check round trip)", ("psycopg_pool/",)),
    ("durable INSERT (psycopg, db/messages.py)", ("psycopg/", "db/messages.py")),
    ("hand-off to the coreapp (aiohttp client)", ("aiohttp/client", "aiohttp/connector", "Router.deliver")),
    ("URL routing (aiohttp dispatcher)", ("web_urldispatcher",)),
    ("HTTP request parsing and reading", ("web_protocol.py", "http_parser", "web_request.py", "streams.py",
                                          "errors.py")),
    ("response objects (aiohttp web_response)", ("web_response.py",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("token check and user middleware", ("webapp/auth.py", "webapp/users.py")),
    ("message id (uuid4)", ("uuid.py",)),
    ("middlewares and handler code", ("wacluster/",)),
]
EVENT_LOOP = "event loop (uvloop's C code: epoll, socket reads, TLS reads, callbacks)"


def profile_breakdown(raw: Path) -> dict[str, float]:
    """Share of the webapp's samples per concern (PROFILE_CATEGORIES), largest first."""
    shares: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        category = "other"
        if frames[-1].startswith("Runner.run ") or frames[-1].startswith("run_until_complete"):
            category = EVENT_LOOP
        else:
            category = next((name for frame in reversed(frames) for name, needles in PROFILE_CATEGORIES
                             if any(n in frame for n in needles)), "other")
        shares[category] = shares.get(category, 0) + int(count)
        total += int(count)
    return {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])} if total else {}


def load(generator: str, url: str, headers: dict, body_template: str, concurrency: int, duration: float,
         count_unclaimed: bool = False) -> dict:
    """One closed-loop run; `body_template`'s `%d` (1, 2, 3, ...) makes every request body unique."""
    if generator == "wrk":
        return wrk_load.run(url, headers, body_template, concurrency, duration, count_unclaimed)
    return asyncio.run(closed_loop(url, headers, body_template, concurrency, duration, count_unclaimed))


def shard_recipients(shard: int, shards: int, count: int = 1000) -> list[str]:
    """Recipients the webapp would route to `shard` (in the routed path's number range)."""
    recipients = (f"+1555{n:07d}" for n in itertools.count())
    return list(itertools.islice((r for r in recipients if shard_of(r, shards) == shard), count))


async def _store(dsn: str, rows: list[tuple[Message, int]]) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for start in range(0, len(rows), STORE_CHUNK):
            await messages_db.insert_many(conn, rows[start:start + STORE_CHUNK])


def store_direct_rows(cluster, prefix: str, count: int, shards: int) -> float:
    """Store the rows `prefix`1 .. `prefix`count of shard DIRECT_SHARD as the webapp would, queued
    for their owner; returns the seconds it took (not part of any measurement)."""
    started = time.monotonic()
    content = {r: OutgoingMessage.model_validate({"to": r, "type": "text", "text": {"body": "bench"}})
               .model_dump(exclude_none=True) for r in shard_recipients(DIRECT_SHARD, shards)}
    recipients = list(content)
    rows = []
    for n in range(1, count + 1):
        recipient = recipients[n % len(recipients)]
        rows.append((Message(f"{prefix}{n}", recipient, DIRECT_SHARD, content[recipient]), route_hash(recipient)))
    asyncio.run(_store(cluster.dsn, rows))
    return time.monotonic() - started


def withdraw(cluster, prefix: str) -> int:
    """The rows of `prefix` never claimed: queued -> cancelled (db.messages.cancel, for all of them)."""
    return cluster.query("WITH w AS (UPDATE messages SET status = 'cancelled' WHERE status = 'queued' "
                         "AND id LIKE %s RETURNING 1) SELECT count(*) FROM w", (prefix + "%",))[0][0]


def drain(cluster, prefix: str, timeout: float = DRAIN_TIMEOUT) -> tuple[float | None, int]:
    """Wait until no message of `prefix` is queued or claimed: every one taken was sent and
    acknowledged by the gateway (or withdrawn). Returns (seconds waited or None, left unsettled)."""
    started = time.monotonic()
    while True:
        left = cluster.query("SELECT count(*) FROM messages WHERE status IN ('queued', 'claimed') AND id LIKE %s",
                             (prefix + "%",))[0][0]
        if left == 0:
            return round(time.monotonic() - started, 2), 0
        if time.monotonic() - started > timeout:
            return None, left
        time.sleep(0.2)


def settle(result: dict, duration: float, drained: tuple[float | None, int]) -> None:
    drain_s, left = drained
    result["drain_s"] = drain_s
    if left:
        result["undelivered_after_drain_timeout"] = left
    result["delivered_msgs_per_s"] = round(result["sent"] / (duration + drain_s), 1) if drain_s is not None else None


def run_direct(generator: str, cluster, url: str, prefix: str, shards: int, concurrency: int, duration: float,
               rows_per_s: float) -> dict:
    stored = math.ceil(rows_per_s * duration)
    store_s = store_direct_rows(cluster, prefix, stored, shards)
    body = HandOff(shard=DIRECT_SHARD, messages=[HandedMessage(id=f"{prefix}%d")]).model_dump_json()
    direct = load(generator, url, cluster.control_headers(), body, concurrency, duration, count_unclaimed=True)
    withdrawn = withdraw(cluster, prefix)
    settle(direct, duration, drain(cluster, prefix))
    delivered = cluster.query("SELECT count(*) FROM messages WHERE status = 'delivered' AND id LIKE %s",
                              (prefix + "%",))[0][0]
    direct.update({"stored": stored, "store_s": round(store_s, 1), "withdrawn": withdrawn, "delivered": delivered})
    if direct["unclaimed"]:
        print(f"warning: {direct['unclaimed']} direct hand-off(s) at concurrency {concurrency} claimed nothing "
              f"({stored} rows stored): not a valid point; raise --direct-rows-per-s if the load used them all",
              file=sys.stderr, flush=True)
    return direct


def cpu_snapshot(bench: Bench, cluster) -> dict[str, float]:
    """CPU seconds so far of every live role, all PostgreSQL backends and this process (with wrk)."""
    seconds = {name: tree_cpu_seconds(role.proc.pid) for name, role in cluster.roles.items() if role.alive}
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
               profile: bool = False, loop: str = "uvloop", generator: str = "wrk",
               direct_rows_per_s: float = 10_000, webapp_workers: str = "1", direct: bool = True) -> dict:
    os.environ[Env.EVENT_LOOP] = loop  # the roles inherit it (LocalCluster passes os.environ)
    cluster = bench.cluster(workdir / f"shards-{shards}-{loop}-workers-{webapp_workers}")
    api = start_cluster(cluster, masters=2, coreapps=shards + 1, shards=shards,
                        settings={"heartbeat_interval": 5.0, "unhealthy_interval": 30.0}, coreapp_args=COREAPP_ARGS,
                        webapp_args=("--workers", webapp_workers))
    webapp_pid = cluster.roles["webapp"].proc.pid
    count = worker_count(workers_option(webapp_workers))
    # wrk keeps the connections it opens first: every worker must listen before the load starts.
    eventually(lambda: len(listening(webapp_pid, api.base_url)) == count, 60, what=f"{count} webapp worker(s) listening")
    run_id = uuid.uuid4().hex[:12]  # direct ids must never repeat: a row is claimed (and sent) once
    try:
        routed_url = f"{api.base_url}/v1/messages"
        auth = {"Authorization": f"Bearer {api.token}"}
        owners = cluster.shard_owners()
        address = cluster.query("SELECT address FROM nodes WHERE name = %s", (owners[DIRECT_SHARD][0],))[0][0]
        direct_url = f"http://{address}/messages"
        rows = []
        for concurrency in concurrencies:
            load_at_start = load_averages()
            cpu_before = cpu_snapshot(bench, cluster)
            spy = None
            if profile and concurrency == concurrencies[-1]:
                raw = workdir / f"webapp-profile-{shards}-workers-{webapp_workers}.txt"
                spy = (subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                                         "--duration", str(int(duration)), "--rate", "200", "--nonblocking",
                                         "--subprocesses",
                                         "--pid", str(cluster.roles["webapp"].proc.pid), "--output", str(raw)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), raw)
            routed = load(generator, routed_url, auth, ROUTED_BODY, concurrency, duration)
            cpu_after = cpu_snapshot(bench, cluster)
            if spy is not None:
                spy[0].wait(timeout=60)
                routed["webapp_profile_top"] = profile_top(spy[1]) if spy[1].exists() else "py-spy produced nothing"
                if spy[1].exists():
                    routed["webapp_profile_by_concern"] = profile_breakdown(spy[1])
            routed["cpu_cores_used"] = {name: round((cpu_after[name] - cpu_before.get(name, 0)) / duration, 3)
                                        for name in cpu_after if name in cpu_before}
            routed["cpu_ms_per_msg"] = cpu_per_message(routed["cpu_cores_used"], duration, routed["sent"])
            routed["load_average_at_start"] = load_at_start
            settle(routed, duration, drain(cluster, "wamid."))
            if not direct:
                rows.append({"routed": routed})
                continue
            direct_point = run_direct(generator, cluster, direct_url, f"direct.{run_id}.{concurrency}.", shards,
                                      concurrency, duration, direct_rows_per_s)
            ratio = round(direct_point["msgs_per_s"] / routed["msgs_per_s"], 2) if routed["msgs_per_s"] else None
            rows.append({"routed": routed, "direct": direct_point, "overhead_ratio": ratio})
        memory = {name: round(sum(rss_mib(p) or 0 for p in process_tree(role.proc.pid)), 1)
                  for name, role in cluster.roles.items() if role.alive}
        webapp_processes = len(process_tree(webapp_pid))
        report = cluster.gateway()
    finally:
        cluster.stop_all()
    return {"shards": shards, "event_loop": loop, "webapp_workers": webapp_workers,
            "webapp_processes": webapp_processes, "results": rows, "rss_mib": memory,
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
    parser.add_argument("--direct-rows-per-s", type=float, default=10_000,
                        help="rows stored for each direct point, per second of load: more than the load can "
                             "hand off, or the point reports unclaimed hand-offs")
    parser.add_argument("--webapp-workers", default="1",
                        help="wacluster webapp --workers settings, compared side by side: e.g. 1,auto")
    parser.add_argument("--src", default="",
                        help="NAME=DIR,...: run the roles from these source trees (DIR contains the wacluster "
                             "package), side by side; default: the tree this script imports")
    parser.add_argument("--skip-direct", action="store_true",
                        help="measure the routed path only (the direct path does not involve the webapp)")
    parser.add_argument("--max-load", type=float, default=3.0,
                        help="before each shard count, wait for the 1-minute load average to fall to this")
    parser.add_argument("--load-wait", type=float, default=600.0, help="the longest wait for --max-load (s)")
    parser.add_argument("--name", default="throughput", help="results file name (bench/results/<name>.json)")
    args = parser.parse_args()
    shard_counts = [int(n) for n in (args.shards or ("1" if args.quick else "1,2,4")).split(",")]
    concurrencies = [int(n) for n in (args.concurrency or ("4,16" if args.quick else "4,16,64")).split(",")]
    duration = 5.0 if args.quick else args.duration
    workdir = Path("/tmp") / f"wacluster-bench-throughput-{int(time.time())}"
    sources = [tuple(item.split("=", 1)) for item in args.src.split(",")] if args.src else [("this", "")]
    results = []
    with Bench("throughput") as bench:
        durable = bench.env.postgres.started_durable()  # fsync and synchronous_commit as users run them
        for loop in args.loops.split(","):
            for n in shard_counts:
                quiet = wait_for_quiet(args.max_load, args.load_wait)
                for src_name, src_dir in sources:
                    if src_dir:  # every role LocalCluster starts imports wacluster from there
                        os.environ["PYTHONPATH"] = src_dir
                    for workers in args.webapp_workers.split(","):
                        result = run_shards(bench, n, concurrencies, duration, workdir / src_name, args.profile,
                                            loop, args.generator, args.direct_rows_per_s, workers,
                                            not args.skip_direct)
                        results.append({"src": src_name, **result, "before_shard_count": quiet})
    emit(args.name, {"quick": args.quick, "duration_s": duration, "generator": args.generator,
                     "transport": "HTTPS to the webapp; HTTP to the coreapp, ids of rows stored beforehand",
                     "coreapp_args": list(COREAPP_ARGS), "src": dict(sources), "postgres_durable": durable,
                     "by_shards": results})


if __name__ == "__main__":
    main()
