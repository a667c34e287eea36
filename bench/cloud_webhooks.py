#!/usr/bin/env python3
"""Inbound Cloud API webhooks: how many one webapp accepts a second, each checked against its
signature and stored durably before the 200 (runtime/webapp/cloud_webhooks.py), and how fast.

One webapp in cloud mode on the environment's PostgreSQL (durable: fsync and synchronous
commit on), relaying what it stores to a business webhook receiver on loopback as it would in
production. Closed-loop clients POST Meta's payload of one inbound text message each, every one
with its own wamid and its X-Hub-Signature-256, over keep-alive HTTPS; payloads are made and
signed before the clock starts, so the load generator's cost is the HTTP exchange only. Reported
per concurrency: accepted per second, latency p50/p99 (goal: p99 <= 50 ms), and at the end
whether every accepted payload was stored once and reached the receiver (and how long after the
load the relay caught up). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import ssl
import threading
import time
from pathlib import Path

from common import Bench, emit, percentile
from wacluster.api.interprocess import Env
from wacluster_testenv import cloudapi_inbound as cloud
from wacluster_testenv.eventually import eventually
from wacluster_testenv.webhook_receiver import webhook_receiver

SECRET = "bench-cloud-app-secret"
NUMBER = "106540352242922"
PATH = "/cloud/webhook"


def signed_payloads(count: int) -> list[tuple[bytes, str]]:
    found = []
    for n in range(count):
        body = json.dumps(cloud.inbound(cloud.message("text", body=f"inbound {n}"), NUMBER)).encode()
        found.append((body, "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()))
    return found


def load(port: int, payloads: list[tuple[bytes, str]], clients: int, seconds: float) -> dict:
    """Closed loop: `clients` connections, each POSTing the next payload as soon as it got its answer,
    until `seconds` passed or the payloads ran out."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    cursor = iter(range(len(payloads)))
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=30)
        mine, counted = [], {}
        try:
            while time.monotonic() < deadline:
                with lock:
                    n = next(cursor, None)
                if n is None:
                    break
                body, signature = payloads[n]
                started = time.monotonic()
                conn.request("POST", PATH, body=body, headers={"Content-Type": "application/json",
                                                               "X-Hub-Signature-256": signature})
                response = conn.getresponse()
                response.read()
                mine.append(time.monotonic() - started)
                counted[response.status] = counted.get(response.status, 0) + 1
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)
                for status, k in counted.items():
                    statuses[status] = statuses.get(status, 0) + k

    began, cpu_before = time.monotonic(), os.times()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    cpu = os.times()
    return {"clients": clients, "requests": len(latencies), "statuses": {str(k): v for k, v in statuses.items()},
            "accepted_per_s": round(statuses.get(200, 0) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
            "seconds": round(elapsed, 1),
            "generator_cpu_s": round(cpu.user + cpu.system - cpu_before.user - cpu_before.system, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--name", default="cloud_webhooks")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    with Bench(args.name) as bench, webhook_receiver() as (receiver, deliveries):
        cluster = bench.cluster(Path(f"/tmp/wacluster-bench-{args.name}-{os.getpid()}"))
        if cluster.dbupgrade().returncode != 0:
            raise RuntimeError("dbupgrade failed")
        cluster.configure(webhook_url=receiver)
        cluster.webapp_env = {Env.CLOUD_APP_SECRET: SECRET, Env.CLOUD_VERIFY_TOKEN: "bench-verify",
                              Env.CLOUD_PHONE_NUMBER_ID: NUMBER}
        role = cluster.start_webapp()
        # Enough for the fastest level seen here (about 1,000 a second) for the whole run.
        payloads = signed_payloads(int(1500 * args.seconds) * len(levels))
        try:
            results, offset = [], 0
            for clients in levels:
                result = load(role.port, payloads[offset:], clients, args.seconds)
                offset += result["requests"]
                results.append(result)
            accepted = sum(r["statuses"].get("200", 0) for r in results)
            stored = eventually(lambda: cluster.query("SELECT count(*) FROM cloud_notifications")[0][0] >= accepted
                                and cluster.query("SELECT count(*) FROM cloud_notifications")[0][0], 60,
                                what="every accepted payload stored")
            relayed = eventually(
                lambda: cluster.query("SELECT count(*) FROM cloud_notifications WHERE relayed_at IS NULL")[0][0] == 0
                and cluster.query("SELECT count(*) FROM cloud_notifications")[0][0], 600, interval=1,
                what="every stored payload relayed")
            started = time.monotonic()
            eventually(lambda: cluster.query("SELECT count(*) FROM webhook_events WHERE delivered_at IS NULL "
                                             "AND dead_at IS NULL")[0][0] == 0, 600, interval=1,
                       what="every relayed payload delivered to the business's receiver")
            delivered_after_s = round(time.monotonic() - started, 1)
        finally:
            cluster.stop_all()
        relayed_messages = sum(len(d.json().get("messages", [])) for d in deliveries)
    emit(args.name, {"settings": {"seconds": args.seconds, "postgres": "durable (fsync, synchronous_commit on)"},
                     "levels": results, "accepted": accepted, "stored": stored, "relayed_rows": relayed,
                     "relayed_messages_at_receiver": relayed_messages,
                     "receiver_caught_up_after_load_s": delivered_after_s})


if __name__ == "__main__":
    main()
