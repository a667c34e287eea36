#!/usr/bin/env python3
"""Cloud failover benchmark: the shard owner dies or hands off while sends to the Cloud API are in
flight; how long clients wait, and what happens to the sends in doubt.

A cluster in cloud mode (2 masters, 3 coreapps, 1 shard, 1 webapp; the tuned settings of
bench/failover.py) sends through the local Cloud API, which runs in a process of its own (as in
bench/cloud_pacing.py: served from a thread it would share the interpreter with the load) and
POSTs a signed `sent` status webhook for each accepted send to the webapp's Cloud webhook
endpoint, so a send in doubt can be settled by its webhook. The coreapps pace at `--cloud-rate`;
the Cloud API enforces the same rate (130429 beyond it) unless `--cloud-api-limit` sets another. A paced load (`--rate`, bounded in count and time) goes through the webapp. Each run
injects latency into the Cloud API's next sends, waits until all of them are in flight (the Cloud
API holds them), then signals the owner:

- coreapp_sigkill: SIGKILL, the sends held `--kill-latency` s;
- coreapp_sigterm: SIGTERM (planned handoff), held `--term-latency` s (shorter than the 2 s drain);
- coreapp_sigterm_slow: SIGTERM, held `--kill-latency` s (longer than the drain: cut off).

Per run: downtime (as bench/failover.py: last message accepted before the fault to the first
accepted after it, of those sent after it); the new owner's takeover; when the Cloud API saw the
first send of a message accepted after the fault; when every message stored before the fault was
settled; the sends in doubt (rows whose send had started, not settled when the new owner took
over), how many a status webhook settled (the webapp's log names them), how many were sent again
(`wacluster_cloud_in_doubt_resent_total`), and the duplicates the Cloud API saw. At the end, the
messages accepted and never sent (lost). Prints one JSON line; writes bench/results/<name>.json
with the load averages before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cloud_api import CloudApiControl, cloud_api_process, metric
from common import Bench, emit, summary
from failover import MODES, ready_standbys
from wacluster.api.interprocess import Env
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.cloudapi import DEFAULT_PHONE_NUMBER_ID
from wacluster_testenv.eventually import NotReached, eventually
from wacluster_testenv.processes import free_port

TOKEN = "bench-cloud-access-token"
APP_SECRET = "bench-cloud-app-secret"
WEBHOOK_PATH = "/cloud/webhook"  # the webapp's default (runtime/webapp/cloud_webhooks.py)
RESENT = "wacluster_cloud_in_doubt_resent_total"
THROTTLED = "wacluster_cloud_throttled_total"
PROBE = "+19999999999"  # a recipient no load message goes to: its fault is never taken, only listed
SETTINGS = MODES["tuned"]["settings"]
# The local Cloud API enforces the number's rate as Meta does (decided when a send arrives, so a
# send held by an injected latency keeps its place). `--cloud-api-limit N` sets another limit.
CLOUD_API_LIMIT = 0
SCENARIOS = ("coreapp_sigkill", "coreapp_sigterm", "coreapp_sigterm_slow")
SETTLED_BY_WEBHOOK = re.compile(r"message (\S+) was in doubt; a Cloud status webhook settled it (\w+)")
BACKLOG_LINE = re.compile(r"backlog of shard \d+: (\d+) message\(s\) to send, (\d+) already sent")
SELF_FENCED = re.compile(r"(stopped serving shard \d+ because its shard lease ran out)")
RENEWAL_FAILED = re.compile(r"(lease renewal failed)")
RESENT_LINE = re.compile(r"(\d+) message\(s\) were being sent when their session ended")


def load_average() -> dict:
    with open("/proc/loadavg") as f:
        one, five, fifteen = f.read().split()[:3]
    return {"1m": float(one), "5m": float(five), "15m": float(fifteen),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


class PacedLoad:
    """`threads` senders through the webapp at `rate` messages a second in all, each to a recipient
    of its own; stops after `max_messages` or `max_seconds`. A sender that fell behind (its request
    waited out a failover) skips the slots it missed instead of bursting."""

    def __init__(self, api: ApiClient, rate: float, max_messages: int, max_seconds: float, threads: int = 8) -> None:
        self.api, self.rate, self.threads = api, rate, threads
        self.max_messages, self.deadline = max_messages, time.monotonic() + max_seconds
        # (monotonic when sent, monotonic when accepted, wall clock when accepted, id)
        self.accepted: list[tuple[float, float, float, str]] = []
        self.refused: dict[int, int] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._workers = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(threads)]

    def start(self) -> "PacedLoad":
        self._running.set()
        for worker in self._workers:
            worker.start()
        return self

    def _next(self) -> int | None:
        with self._lock:
            if self._count >= self.max_messages:
                return None
            self._count += 1
            return self._count

    def _run(self, k: int) -> None:
        period = self.threads / self.rate
        due = time.monotonic() + k * period / self.threads
        while self._running.is_set() and time.monotonic() < self.deadline:
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            due = max(due + period, time.monotonic() - period)
            n = self._next()
            if n is None:
                return
            began = time.monotonic()
            reply = self.api.send_text(f"+1557{n:07d}", f"cloud failover {n}")
            with self._lock:
                if reply.status == 201:
                    self.accepted.append((began, time.monotonic(), time.time(), reply.body["messages"][0]["id"]))
                else:
                    self.refused[reply.status] = self.refused.get(reply.status, 0) + 1

    @property
    def alive(self) -> bool:
        return any(w.is_alive() for w in self._workers)

    def stop(self) -> None:
        self._running.clear()
        for worker in self._workers:
            worker.join(timeout=35)

    def downtime(self, fault_at: float) -> float | None:
        """bench/failover.py's downtime: from the last message accepted before the fault to the
        first accepted after it, among those sent after it (with several senders, a request sent
        before the fault can be answered just after it, which says nothing about the failover)."""
        with self._lock:
            before = [a for _, a, _, _ in self.accepted if a <= fault_at]
            after = [a for s, a, _, _ in self.accepted if s > fault_at]
        if not before or not after:
            return None
        return min(after) - max(before)

    def ids_after(self, fault_at: float) -> set[str]:
        """Messages sent after `fault_at` and accepted."""
        with self._lock:
            return {i for s, _, _, i in self.accepted if s > fault_at}


class CloudFailover:
    """The cluster, the Cloud API and the load of one benchmark run; `run` is one fault."""

    def __init__(self, cluster, base: str, coreapp_args: tuple[str, ...]) -> None:
        self.cluster, self.base, self.args = cluster, base, coreapp_args
        self.load: PacedLoad | None = None  # started once the cluster serves
        self.ports: dict[str, int] = {}
        self.spares = iter(range(1, 1000))
        self.duplicates_seen = 0

    def start_coreapp(self) -> str:
        name = f"wacore{next(self.spares)}"
        self.ports[name] = free_port()
        self.cluster.start_coreapp(name, (*self.args, "--metrics-port", str(self.ports[name])))
        return name

    def owner(self) -> str | None:
        return self.cluster.shard_owners().get(0, (None,))[0]

    def in_flight(self, owner: str) -> int:
        return self.cluster.query("SELECT count(*) FROM messages WHERE status = 'claimed' "
                                  "AND send_started_at IS NOT NULL AND claimed_by = %s", (owner,))[0][0]

    def in_doubt(self, old: str) -> set[str]:
        """Rows whose send some earlier session started and nothing settled yet: still the old
        owner's, or reclaimed by the new owner (reclaimed after the send had started)."""
        return {r[0] for r in self.cluster.query(
            "SELECT id FROM messages WHERE status = 'claimed' AND send_started_at IS NOT NULL "
            "AND (claimed_by = %s OR claimed_at > send_started_at)", (old,))}

    def coreapp_metric(self, name: str) -> dict[str, float]:
        """`name` of every live coreapp, by coreapp."""
        out = {}
        for coreapp, port in self.ports.items():
            if self.cluster.roles[coreapp].alive:
                try:
                    out[coreapp] = metric(port, name)
                except OSError:
                    pass
        return out

    def coreapp_log(self, pattern: re.Pattern, since: float) -> list[tuple]:
        """The groups of `pattern` in every coreapp's log lines stamped at or after `since` (wall clock)."""
        found = []
        for name in self.ports:
            for line in self.cluster.roles[name].output().splitlines():
                match = pattern.search(line)
                if match and _stamp(line) >= since - 0.001:
                    found.append(match.groups())
        return found

    def run(self, scenario: str, latency: float, held: int, settle_timeout: float) -> dict:
        cluster = self.cluster
        fresh = 1.5 * SETTINGS["heartbeat_interval"] + 0.25  # domain/ha.py healthy_standbys
        owner = eventually(self.owner, 120, what="a shard owner")
        eventually(lambda: ready_standbys(cluster, fresh) >= 2, 120, what="two standbys answering heartbeats")
        steady_from = time.monotonic()
        eventually(lambda: len(self.load.ids_after(steady_from)) >= self.load.rate, 60, what="a second of steady load")
        resent_before, throttled_before = self.coreapp_metric(RESENT), self.coreapp_metric(THROTTLED)
        # The next `held` sends are held `latency` s; once the Cloud API holds all of them (its
        # fault list shows it used up), they are in flight: the signal lands mid-request.
        CloudApiControl(self.base).call("POST", "/_control/faults", {"count": held, "latency": latency})
        eventually(lambda: not [f for f in CloudApiControl(self.base).call("POST", "/_control/faults", {"to": PROBE})["faults"]
                                if f["to"] is None], 30, interval=0.02, what=f"{held} sends held by the Cloud API")
        in_flight = self.in_flight(owner)
        sig = signal.SIGKILL if scenario == "coreapp_sigkill" else signal.SIGTERM
        fault_at, fault_wall = time.monotonic(), time.time()
        cluster.roles[owner].signal(sig)
        new = eventually(lambda: (o := self.owner()) not in (None, owner) and o, 120, interval=0.02,
                         what="a new owner connected")
        takeover_s = time.monotonic() - fault_at
        found = self.in_doubt(owner)
        eventually(lambda: self.load.ids_after(fault_at), 120, what="a message accepted after the fault")
        try:
            eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE status IN ('queued', 'claimed') "
                                             "AND created_at <= to_timestamp(%s)", (fault_wall,))[0][0] == 0,
                       settle_timeout, interval=0.1, what="every message stored before the fault settled")
            settled_s = round(time.monotonic() - fault_at, 3)
        except NotReached:
            settled_s = None  # reported as such; the next run starts anyway
        sends = CloudApiControl(self.base).call("GET", "/_control/sends")
        after_ids = self.load.ids_after(fault_at)
        resumed = [s["at"] for s in sends["sends"] if s["callback_data"] in after_ids]
        first_seen: dict[str, float] = {}
        for send in sends["sends"]:
            first_seen.setdefault(send["callback_data"], send["at"])
        webhook = dict(SETTLED_BY_WEBHOOK.findall(cluster.roles["webapp"].output()))
        unsettled = [i for i in found if i not in webhook]
        backlog = self.coreapp_log(BACKLOG_LINE, fault_wall)
        failovers = cluster.query("SELECT from_coreapp, to_coreapp, reason FROM failovers "
                                  "WHERE at >= to_timestamp(%s) ORDER BY at", (fault_wall,))
        resent_after, throttled_after = self.coreapp_metric(RESENT), self.coreapp_metric(THROTTLED)
        result = {
            "scenario": scenario, "signalled_at": _utc(fault_wall), "old_owner": owner, "new_owner": new,
            "latency_injected_s": latency,
            "held_sends": held, "downtime_s": _round(self.load.downtime(fault_at)),
            "takeover_s": round(takeover_s, 3),
            "first_send_after_fault_s": round(min(resumed) - fault_wall, 3) if resumed else None,
            "all_before_fault_settled_s": settled_s,
            "in_flight_at_signal": in_flight,
            "in_doubt_found": len(found),
            "in_doubt_settled_by_webhook": len(found) - len(unsettled),
            "in_doubt_settled_by_webhook_failed": len([i for i in found if webhook.get(i) == "failed"]),
            # Not settled by a webhook, and the Cloud API accepted no send of it until after the held
            # sends were answered: marked started, it had not left when its session ended (or the
            # Cloud API refused it), so no webhook could come; only the in-doubt window ends it.
            "in_doubt_unknown_to_cloud_api": len([i for i in unsettled
                                                  if first_seen.get(i, float("inf")) > fault_wall + latency + 2.0]),
            "resent_metric": sum(v - resent_before.get(k, 0.0) for k, v in resent_after.items()),
            "resent_log": sum(int(n) for (n,) in self.coreapp_log(RESENT_LINE, fault_wall)),
            "backlog_to_send": sum(int(b[0]) for b in backlog),
            "backlog_already_sent": sum(int(b[1]) for b in backlog),
            "throttled_130429": sum(v - throttled_before.get(k, 0.0) for k, v in throttled_after.items()),
            "failovers": [f"{a}->{b}: {why}" for a, b, why in failovers],
            # The owner lost its lease without a master's decision (and took its shard again, or not):
            # its own sends in flight are then in doubt for its next session.
            "self_fenced": len(self.coreapp_log(SELF_FENCED, fault_wall)),
            "lease_renewals_failed": len(self.coreapp_log(RENEWAL_FAILED, fault_wall)),
            "duplicates_seen_by_cloud_api": len(sends["duplicates"]) - self.duplicates_seen,
            "in_doubt_sent_twice": len([i for i in found if sends["counts"].get(i, 0) > 1]),
        }
        self.duplicates_seen = len(sends["duplicates"])
        cluster.roles[owner].wait(30)
        self.start_coreapp()  # a Deployment replaces it: the next run has two standbys again
        return result


def _stamp(line: str) -> float:
    """The wall-clock time of a role's log line (logging's default `asctime`, local time)."""
    try:
        return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
    except ValueError:
        return float("-inf")


def _utc(wall: float) -> str:
    """A wall-clock time as the roles' logs can be matched against (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall)) + f",{int(wall % 1 * 1000):03d} UTC"


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def start(cluster, base: str, args) -> tuple[CloudFailover, ApiClient]:
    """The cluster in cloud mode, the Cloud API's status webhooks pointed at its webapp."""
    if cluster.dbupgrade().returncode != 0:
        raise RuntimeError("dbupgrade failed")
    cluster.configure(shards=1, **SETTINGS)
    cluster.use_cloud_api(base, TOKEN, DEFAULT_PHONE_NUMBER_ID, args.cloud_rate)
    cluster.webapp_env = {Env.CLOUD_APP_SECRET: APP_SECRET, Env.CLOUD_VERIFY_TOKEN: "bench-verify-token",
                          Env.CLOUD_PHONE_NUMBER_ID: DEFAULT_PHONE_NUMBER_ID}
    role = cluster.start_webapp(password="bench")
    CloudApiControl(base).call("POST", "/_control/config", {
        "webhook_url": f"https://127.0.0.1:{role.port}{WEBHOOK_PATH}", "webhook_verify_tls": False,
        "auto_statuses": args.statuses.split(",")})
    api = ApiClient(f"https://127.0.0.1:{role.port}")
    api.login("admin", "bench")
    for i in (1, 2):
        cluster.start_master(f"master{i}")
    bench_run = CloudFailover(cluster, base, ("--cloud-in-doubt-window", str(args.in_doubt_window)))
    for _ in range(3):
        bench_run.start_coreapp()
    eventually(cluster.primary_master, 60, what="a primary master")
    cluster.register()
    eventually(bench_run.owner, 60, what="shard 0 served through the Cloud API")
    return bench_run, api


def run_all(bench: Bench, args, workdir: Path) -> dict:
    scenarios = args.scenarios.split(",")
    runs = 1 if args.quick else args.runs
    latencies = {"coreapp_sigkill": args.kill_latency, "coreapp_sigterm": args.term_latency,
                 "coreapp_sigterm_slow": args.kill_latency}
    settle_timeout = args.in_doubt_window + 150
    max_seconds = len(scenarios) * runs * (settle_timeout + 120) + 120
    results: list[dict] = []
    with cloud_api_process(args.cloud_api_limit or args.cloud_rate, TOKEN, APP_SECRET, workdir / "cloudapi.log") as cloud:
        base = cloud.base
        cluster = bench.cluster(workdir)
        try:
            bench_run, api = start(cluster, base, args)
            load = bench_run.load = PacedLoad(api, args.rate, args.max_messages, max_seconds).start()
            try:
                for scenario in scenarios:
                    for _ in range(runs):
                        if not load.alive:
                            raise RuntimeError("the load reached its bound before the runs ended: raise --max-messages")
                        result = bench_run.run(scenario, latencies[scenario], args.held, settle_timeout)
                        print(json.dumps(result), file=sys.stderr, flush=True)
                        results.append(result)
            finally:
                load.stop()
            try:
                eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE status IN ('queued', 'claimed')")
                           [0][0] == 0, settle_timeout, interval=0.5, what="every message settled")
            except NotReached as exc:
                print(f"not every message settled: {exc}", file=sys.stderr)
            sends = CloudApiControl(base).call("GET", "/_control/sends")
            statuses = dict(cluster.query("SELECT status, count(*) FROM messages GROUP BY status"))
            failovers = cluster.query("SELECT count(*) FROM failovers WHERE from_coreapp IS NOT NULL")[0][0]
        finally:
            cluster.stop_all()
    accepted = [i for _, _, _, i in load.accepted]
    counts = sends["counts"]
    return {"runs": results, "accepted": len(accepted), "refused": load.refused,
            "sent_once": sum(1 for i in accepted if counts.get(i) == 1),
            "duplicated": sum(1 for i in accepted if counts.get(i, 0) > 1),
            "lost": sum(1 for i in accepted if i not in counts), "statuses_in_database": statuses,
            "faults": len(results), "failovers": failovers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one run per scenario (development)")
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="a subset of " + ",".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=60.0, help="messages a second the load sends")
    parser.add_argument("--max-messages", type=int, default=100_000, help="the load's bound in messages")
    parser.add_argument("--cloud-rate", type=int, default=80, help="the number's messagesPerSecond (the coreapps' pace)")
    parser.add_argument("--cloud-api-limit", type=int, default=CLOUD_API_LIMIT,
                        help="sends a second the local Cloud API accepts before 130429 (0: --cloud-rate)")
    parser.add_argument("--held", type=int, default=30, help="sends held by the Cloud API when the signal lands")
    parser.add_argument("--kill-latency", type=float, default=3.0, help="how long they are held (SIGKILL, slow SIGTERM)")
    parser.add_argument("--term-latency", type=float, default=0.5, help="how long they are held (SIGTERM)")
    parser.add_argument("--in-doubt-window", type=float, default=30.0, help="the coreapps' --cloud-in-doubt-window")
    parser.add_argument("--statuses", default="sent", help="status webhooks the Cloud API sends after each send")
    parser.add_argument("--name", default="cloud_failover", help="results file name (bench/results/<name>.json)")
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {SCENARIOS}")
    workdir = Path("/tmp") / f"wacluster-bench-cloud-failover-{int(time.time())}"
    workdir.mkdir(parents=True)
    load_before = load_average()
    with Bench("cloud-failover") as bench:
        out = run_all(bench, args, workdir)
    runs = out.pop("runs")
    scenarios = {}
    for scenario in args.scenarios.split(","):
        mine = [r for r in runs if r["scenario"] == scenario]
        scenarios[scenario] = {
            "downtime": summary([r["downtime_s"] for r in mine if r["downtime_s"] is not None]),
            "takeover": summary([r["takeover_s"] for r in mine]),
            "first_send_after_fault": summary([r["first_send_after_fault_s"] for r in mine
                                               if r["first_send_after_fault_s"] is not None]),
            "all_before_fault_settled": summary([r["all_before_fault_settled_s"] for r in mine
                                                 if r["all_before_fault_settled_s"] is not None]),
            **{key: sum(r[key] for r in mine) for key in (
                "in_flight_at_signal", "in_doubt_found", "in_doubt_settled_by_webhook",
                "in_doubt_settled_by_webhook_failed", "in_doubt_unknown_to_cloud_api", "resent_metric", "resent_log",
                "backlog_already_sent", "throttled_130429", "self_fenced", "lease_renewals_failed",
                "duplicates_seen_by_cloud_api", "in_doubt_sent_twice")},
            "failovers_per_fault": [len(r["failovers"]) for r in mine],
            "unsettled_runs": len([r for r in mine if r["all_before_fault_settled_s"] is None])}
    emit(args.name, {"quick": args.quick, "runs_per_scenario": 1 if args.quick else args.runs,
                     "load_per_s": args.rate, "cloud_messages_per_second": args.cloud_rate,
                     "cloud_api_limit": args.cloud_api_limit or args.cloud_rate, "held_sends": args.held,
                     "kill_latency_s": args.kill_latency, "term_latency_s": args.term_latency,
                     "in_doubt_window_s": args.in_doubt_window, "status_webhooks": args.statuses.split(","),
                     "settings": SETTINGS, "load_average_before": load_before, "load_average_after": load_average(),
                     "logs": str(workdir), "scenarios": scenarios, "totals": out, "per_run": runs})


if __name__ == "__main__":
    main()
