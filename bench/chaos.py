#!/usr/bin/env python3
"""Chaos benchmark: a seeded schedule of faults under steady load, then the invariants.

Faults (bench/chaos_faults.py): SIGKILL, SIGSTOP/SIGCONT and SIGTERM of coreapps and masters,
PostgreSQL restart, API server restart, webapp restart; the gateway resetting a coreapp's
connection mid-batch; a coreapp black-holed from PostgreSQL only, from the masters only (webapps
still reach it), or losing every reply it sends (requests still arrive); the primary master
stopped mid-promotion for longer than its Lease; the shard count changed under load, with and
without a PostgreSQL restart right after; the webapp killed with requests in flight; the master
Lease deleted (the next failover must still work). `--quick` and full runs do every fault at
least once (a seeded shuffle), then draw at random until the time is up; `--smoke` draws a few
cheap ones and checks only the invariants.

At the end: accepted, delivered, lost, duplicated (every send of an id already delivered,
whatever the sandbox did with it), conflicts, bans, stale sends; requests that failed at the
client (no answer: the webapp died under them; `client_failures`), retried with the message's
Idempotency-Key (`settled_by_retry`), and the messages given up after RETRY_FOR seconds that were
delivered anyway (`failed_at_client_but_delivered`); `texts_stored_twice` counts messages the
database holds twice (0 when every retry kept its key); max downtime
and availability (the fraction of seconds in which every shard accepted a message); per fault
kind, the count and the problems seen after it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from chaos_faults import FAULTS, SHARD_COUNTS, SMOKE_FAULTS, Run
from common import Bench, emit, start_cluster
from wacluster.domain.sharding import shard_of
from wacluster_testenv import faults as network_faults

RETRY_FOR = 30.0  # how long a sender keeps retrying one message (with its key) before giving up


class Senders:
    """Closed-loop senders, `per_shard` threads per shard of the starting count. Thread t's i-th
    message goes to shard (t + i) mod the current shard count, so every shard keeps getting
    traffic across resizes; each text is unique, so a request that failed at the client can be
    found in the database afterwards."""

    def __init__(self, run_api, shards: int, per_shard: int) -> None:
        self.run_api = run_api
        self.shard_count = shards
        self.recipients = {n: [[f"+1555{k:07d}" for k in range(20_000) if shard_of(f"+1555{k:07d}", n) == s]
                               for s in range(n)] for n in SHARD_COUNTS}
        self.accepted: list[tuple[float, int, int, str]] = []   # (time, shard count, shard, id)
        self.failed_at_client: list[tuple[float, str]] = []     # (time, text): no answer, given up
        self.client_failures = 0    # requests that got no answer (retried with their key)
        self.settled_by_retry = 0   # messages accepted by a retry after a request got no answer
        self.rejected = 0
        self.in_flight = 0
        self.count_changes: list[tuple[float, int]] = [(time.time(), shards)]
        self.running = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(shards * per_shard)]

    def start(self) -> None:
        self.running.set()
        for thread in self.threads:
            thread.start()

    def set_shard_count(self, count: int) -> None:
        self.shard_count = count
        self.count_changes.append((time.time(), count))

    def _run(self, thread: int) -> None:
        """Each message carries its own Idempotency-Key and is retried with it, as a careful client
        does, after no answer, a 503 or a 409, for up to RETRY_FOR seconds: a request the webapp
        died under is then either the first one stored or it is stored now, never twice."""
        i = 0
        while self.running.is_set():
            count = self.shard_count
            shard = (thread + i) % count
            recipients = self.recipients[count][shard]
            text = f"chaos {thread}-{i}"
            to = recipients[(i // count) % len(recipients)]
            i += 1
            key, given_up_at = uuid.uuid4().hex, time.monotonic() + RETRY_FOR
            no_answer = False
            while self.running.is_set() and time.monotonic() < given_up_at:
                with self.lock:
                    self.in_flight += 1
                try:
                    reply = self.run_api().request("POST", "/v1/messages",
                                                   {"to": to, "type": "text", "text": {"body": text}},
                                                   headers={"Idempotency-Key": key})
                except (OSError, http.client.HTTPException) as exc:
                    if isinstance(getattr(exc, "reason", exc), ConnectionRefusedError):
                        self.rejected += 1  # it never reached a webapp: nothing can have been sent
                    else:
                        no_answer = True
                        self.client_failures += 1
                    time.sleep(0.1)
                    continue
                finally:
                    with self.lock:
                        self.in_flight -= 1
                if reply.status == 201:
                    self.accepted.append((time.time(), count, shard, reply.body["messages"][0]["id"]))
                    if no_answer:
                        self.settled_by_retry += 1
                    break
                self.rejected += 1
                if reply.status not in (401, 409, 502, 503):
                    break  # a refusal retrying cannot change
                time.sleep(0.5 if reply.status == 409 else 0.05)
            else:
                if no_answer:
                    self.failed_at_client.append((time.time(), text))

    def stop(self) -> None:
        self.running.clear()
        for thread in self.threads:
            thread.join(timeout=60)


def schedule(rng: random.Random, smoke: bool):
    """The fault kinds in order: smoke draws from the cheap ones; otherwise every kind once in a
    seeded shuffle, then draws from all of them."""
    if smoke:
        while True:
            yield rng.choice(SMOKE_FAULTS)
    first = list(FAULTS)
    rng.shuffle(first)
    yield from first
    while True:
        yield rng.choice(list(FAULTS))


def availability(senders: Senders, started: float, elapsed_s: int) -> tuple[float, float, dict | None]:
    """(availability, max downtime, where): per second, did every shard of the count in force
    accept a message; the longest gap between two accepted messages of a shard while its count
    held, and when it began (seconds from the start) on which shard."""
    changes = senders.count_changes

    def count_at(t: float) -> int:
        return [n for at, n in changes if at <= t][-1]

    seen = {(int(t - started), n, k) for t, n, k, _ in senders.accepted}
    available = sum(1 for s in range(elapsed_s)
                    if all((s, count_at(started + s), k) in seen for k in range(count_at(started + s))))
    max_gap, max_gap_at = 0.0, None
    periods = [(at, changes[i + 1][0] if i + 1 < len(changes) else float("inf"), n) for i, (at, n) in enumerate(changes)]
    for begin, end, n in periods:
        for shard in range(n):
            times = sorted(t for t, c, k, _ in senders.accepted if c == n and k == shard and begin <= t < end)
            for a, b in zip(times, times[1:]):
                if b - a > max_gap:
                    max_gap, max_gap_at = b - a, {"from_s": round(a - started, 1), "shard": shard, "shards": n}
    return round(available / max(1, elapsed_s), 3), round(max_gap, 2), max_gap_at


def by_fault(done: list[dict], problems: dict[str, list[float]]) -> dict:
    """Per fault kind: how many were done, and each problem counted against the last fault that
    started before it (its time: when the message was accepted, or when the gateway saw it)."""
    out: dict[str, dict] = {}
    for record in done:
        out.setdefault(record["fault"], {"count": 0, **{name: 0 for name in problems}})["count"] += 1
    starts = sorted((r["at_wall"], r["fault"]) for r in done)
    for name, times in problems.items():
        for t in times:
            before = [fault for at, fault in starts if at <= t]
            key = before[-1] if before else "before any fault"
            out.setdefault(key, {"count": 0, **{n: 0 for n in problems}})[name] += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--interval", type=float, default=8.0, help="mean seconds between faults")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--senders-per-shard", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="90 s of faults, and at least one of each kind")
    parser.add_argument("--smoke", action="store_true", help="a few faults, invariants only")
    args = parser.parse_args()
    duration = 25.0 if args.smoke else (90.0 if args.quick else args.duration)
    interval = 4.0 if args.smoke else (3.0 if args.quick else args.interval)
    rng = random.Random(args.seed)
    workdir = Path("/tmp") / f"wacluster-bench-chaos-{int(time.time())}"
    settings = {"heartbeat_interval": 1.0, "unhealthy_interval": 2.0, "db_heartbeat_interval": 1.0,
                "db_unhealthy_after": 5.0, "lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}
    done: list[dict] = []
    unavailable = network_faults.unavailable_reason()
    network = None if unavailable else network_faults.NetworkFaults()
    with Bench("chaos") as bench:
        cluster = bench.cluster(workdir)
        cluster.network = network.setup() if network else None
        try:
            run = Run(bench, cluster, network, unavailable, None, rng, settings)
            run.api = start_cluster(cluster, masters=3, coreapps=max(args.shards + 2, max(SHARD_COUNTS)),
                                    shards=args.shards, settings=settings)
            run.senders = senders = Senders(lambda: run.api, args.shards, args.senders_per_shard)
            senders.start()
            started = time.time()
            kinds = schedule(rng, args.smoke)
            first_round = set(SMOKE_FAULTS if args.smoke else FAULTS)
            try:
                while time.time() - started < duration or (not args.smoke and first_round - {r["fault"] for r in done}):
                    run.wait(interval if args.smoke else rng.expovariate(1 / interval))
                    run.resume_paused()
                    fault = next(kinds)
                    record = {"at_s": round(time.time() - started, 1), "at_wall": time.time(), "fault": fault}
                    FAULTS[fault](run, record)
                    record["took_s"] = round(time.time() - record["at_wall"], 1)
                    done.append(record)
                run.resume_paused()
                run.restart_due(force=True)
                run.wait(6)  # let the last failover finish before the final count
            finally:
                senders.stop()
                run.resume_paused()
                time.sleep(2)
                report = cluster.gateway("/inspect/deliveries")
                failed_texts = [text for _, text in senders.failed_at_client]
                failed_rows = cluster.query("SELECT id FROM messages WHERE body->'text'->>'body' = ANY(%s)",
                                            (failed_texts,))
                # Every text is unique: one stored twice is a message the client sent twice.
                stored_twice = cluster.query(
                    "SELECT count(*) FROM (SELECT 1 FROM messages WHERE status <> 'cancelled' "
                    "GROUP BY body->'text'->>'body' HAVING count(*) > 1) twice")[0][0]
                elapsed_s = int(time.time() - started)
        finally:
            cluster.stop_all()
            if network:
                network.teardown()
    delivered = {d["id"] for d in report["deliveries"]}
    accepted = senders.accepted
    accepted_ids = {i for _, _, _, i in accepted}
    lost = [(t, i) for t, _, _, i in accepted if i not in delivered]
    failed_but_delivered = [row[0] for row in failed_rows if row[0] in delivered]
    avail, max_gap, max_gap_at = availability(senders, started, elapsed_s)
    problems = {"lost": [t for t, _ in lost], "duplicated": [d["at"] for d in report["duplicates"]],
                "conflicts": [c["at"] for c in report["conflicts"]], "bans": [b["at"] for b in report["bans"]],
                "stale_sends": [s["at"] for s in report["stale_sends"]]}
    for record in done:
        record.pop("at_wall")
    emit("chaos", {
        "seed": args.seed, "smoke": args.smoke, "quick": args.quick, "duration_s": duration, "elapsed_s": elapsed_s, "shards": args.shards,
        "faults": len(done), "faults_by_kind": dict(Counter(r["fault"] for r in done)),
        "by_fault": by_fault([{**r, "at_wall": started + r["at_s"]} for r in done], problems),
        "schedule": done,
        "accepted": len(accepted), "delivered": len(delivered & accepted_ids),
        "lost": len(lost), "duplicated": len(report["duplicates"]), "conflicts": len(report["conflicts"]),
        "bans": len(report["bans"]), "stale_sends": len(report["stale_sends"]), "rejected": senders.rejected,
        "client_failures": senders.client_failures, "settled_by_retry": senders.settled_by_retry,
        "texts_stored_twice": stored_twice,
        "failed_at_client": len(senders.failed_at_client),
        "failed_at_client_but_delivered": len(failed_but_delivered),
        "lost_ids": [i for _, i in lost][:20], "duplicated_ids": [d["id"] for d in report["duplicates"]][:20],
        "network_faults": unavailable or "iptables on cgroup v2",
        "max_downtime_s": max_gap, "max_downtime_at": max_gap_at, "availability": avail, "workdir": str(workdir),
        "settings": settings,
    })


if __name__ == "__main__":
    main()
