#!/usr/bin/env python3
"""Database outage benchmark: what clients see while PostgreSQL is down for a long while, and how
soon the cluster serves again once it is back.

Under a steady closed-loop load (each message with its own Idempotency-Key, retried with the
same key after a 503 or a connection error, as a careful client does), the environment's durable
PostgreSQL is stopped abruptly for `--down-for` seconds and started again. Reported: the answers
by status during the outage and their latency (a 503 should come after the webapp's 2 s pool
wait, never a 500 or a hang), the time from the database's return to the first accepted message
and to the shard served again, and the invariants (every accepted message delivered once).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from common import Bench, emit, percentile, start_cluster

TUNED = {"heartbeat_interval": 1.0, "unhealthy_interval": 2.0, "db_heartbeat_interval": 1.0,
         "db_unhealthy_after": 5.0, "lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}


class CarefulClient:
    """One sender; a message keeps its key until it is accepted (or the run ends)."""

    def __init__(self, api) -> None:
        self.api = api
        self.answers: list[tuple[float, float, int]] = []  # (sent at, latency s, status; 0 = no answer)
        self.accepted: list[tuple[float, str]] = []
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "CarefulClient":
        self.running.set()
        self.thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while self.running.is_set():
            key = uuid.uuid4().hex
            body = {"to": f"+1555{i % 10_000_000:07d}", "type": "text", "text": {"body": f"outage {i}"}}
            while self.running.is_set():
                sent = time.monotonic()
                try:
                    reply = self.api.request("POST", "/v1/messages", body, headers={"Idempotency-Key": key})
                    status = reply.status
                except OSError:
                    reply, status = None, 0
                self.answers.append((sent, time.monotonic() - sent, status))
                if status == 201:
                    self.accepted.append((time.monotonic(), reply.body["messages"][0]["id"]))
                    break
                if status not in (0, 409, 503):
                    raise RuntimeError(f"unexpected answer {status}: {reply.body if reply else None}")
                time.sleep(0.2)
            i += 1

    def stop(self) -> None:
        self.running.clear()
        self.thread.join(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--down-for", type=float, default=30.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--name", default="db_outage")
    args = parser.parse_args()
    workdir = Path("/tmp") / f"wacluster-bench-db-outage-{int(time.time())}"
    with Bench("db-outage") as bench:
        cluster = bench.cluster(workdir)
        api = start_cluster(cluster, masters=2, coreapps=3, shards=1, settings=TUNED)
        client = CarefulClient(api).start()
        try:
            time.sleep(args.warmup)
            down_at = time.monotonic()
            bench.env.postgres.restart(down_for=args.down_for)  # returns once it accepts connections
            up_at = time.monotonic()
            first_accepted = _first_after(client, up_at, timeout=120)
            served_again = time.monotonic() if cluster.shard_owners()[0][0] else None
            time.sleep(5)
        finally:
            client.stop()
            time.sleep(2)
            report = cluster.gateway("/inspect/deliveries")
            cluster.stop_all()
    during = [(latency, status) for sent, latency, status in client.answers if down_at <= sent < up_at]
    statuses = Counter(str(status) for _, status in during)
    refusals = [latency for latency, status in during if status == 503]
    accepted_ids = [i for _, i in client.accepted]
    delivered = [d["id"] for d in report["deliveries"]]
    emit(args.name, {
        "down_for_s": args.down_for, "settings": TUNED,
        "during_outage": {"answers": len(during), "by_status": dict(statuses),
                          "p50_503_latency_s": percentile(refusals, 0.5),
                          "p99_503_latency_s": percentile(refusals, 0.99),
                          "max_latency_s": round(max((latency for latency, _ in during), default=0.0), 3)},
        "recovery": {"database_back_to_first_accepted_s": round(first_accepted - up_at, 3) if first_accepted else None,
                     "shard_served_when_first_accepted": served_again is not None},
        "accepted": len(accepted_ids), "lost": len(set(accepted_ids) - set(delivered)),
        "duplicated": len(report["duplicates"]), "conflicts": len(report["conflicts"]),
        "accepted_ids_repeated": len(accepted_ids) - len(set(accepted_ids)),
    })


def _first_after(client: CarefulClient, instant: float, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        after = [t for t, _ in client.accepted[-20:] if t > instant]
        if after:
            return after[0]
        time.sleep(0.05)
    return None


if __name__ == "__main__":
    main()
