"""The faults of the chaos benchmark (bench/chaos.py), one function each.

A fault function gets the run (`Run`: cluster, environment, network faults, senders, the seeded
random generator) and the fault's `record`, a dict it fills with what it did and saw (target,
timings, outcome); the record goes into the JSON line's schedule. Roles that are killed come back
after a pause, as a Deployment would bring them back; stopped ones are resumed before the next
fault. Network faults need root, iptables and cgroup v2 (wacluster_testenv.faults); without them
the fault records why it was skipped. With the Cloud API driver (`CLOUD_FAULTS`) the sandbox's
fault is replaced by the local Cloud API's own (5xx answers, latency), a coreapp black-holed from
the Cloud API's port, and a shard owner killed while the Cloud API holds its sends (in doubt).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlparse

import psycopg

from cloud_api import CloudApiControl
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.faults import NetworkFaults
from wacluster_testenv.localcluster import LocalCluster
from wacluster_testenv.processes import ProcessTable

RESTART_AFTER_S = 2.0       # a killed role is started again after this pause
PARTITION_S = 7.0           # longer than the shard lease (unhealthy - heartbeat) and db_unhealthy_after
SHARD_COUNTS = (1, 2, 4)    # what resize_shards moves between


@dataclass
class Run:
    bench: Any
    cluster: LocalCluster
    network: NetworkFaults | None
    network_unavailable: str | None
    senders: Any
    rng: Any
    settings: dict
    password: str = "bench"
    api: ApiClient | None = None
    paused: list = field(default_factory=list)
    restarts: list[tuple[float, Any]] = field(default_factory=list)
    # The registered account as /v1/account/shards wants it (cc, phone_number).
    account: tuple[str, str] = ("1", "5550001111")
    # Further command-line options of a coreapp when it is started again (its metrics port).
    coreapp_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The local Cloud API in cloud mode; None with the sandbox.
    cloud: CloudApiControl | None = None
    # Called with each webapp started in place of a killed one (the Cloud API's webhooks follow it).
    on_webapp: Callable[[Any], None] | None = None

    def wait(self, seconds: float) -> None:
        """Sleep, starting the killed roles whose pause is over meanwhile (no timer threads: a
        restart can never fire after the run stopped everything)."""
        deadline = time.time() + seconds
        while True:
            self.restart_due()
            left = deadline - time.time()
            if left <= 0:
                return
            time.sleep(min(0.05, left))

    def restart_due(self, force: bool = False) -> None:
        now = time.time()
        for due, role in list(self.restarts):
            if force or due <= now:
                self.restarts.remove((due, role))
                if not role.alive and role.kind == "coreapp":
                    self.cluster.start_coreapp(role.name, self.coreapp_args.get(role.name, ()))
                elif not role.alive:
                    self.cluster.start_master(role.name)

    def kill(self, role, sig: int = signal.SIGKILL) -> None:
        role.signal(sig)
        role.wait(30)
        self.restarts.append((time.time() + RESTART_AFTER_S, role))

    def resume_paused(self) -> None:
        for role in self.paused:
            role.signal(signal.SIGCONT)
        self.paused.clear()

    def alive(self, kind: str) -> list:
        return [r for r in self.cluster.roles.values() if r.kind == kind and r.alive]

    def shard_owner(self) -> tuple[int, Any] | None:
        """A shard and its serving owner's role, drawn at random; None when no shard is served."""
        owners = [(shard, owner) for shard, (owner, _) in sorted(self.cluster.shard_owners().items())
                  if owner and owner in self.cluster.roles and self.cluster.roles[owner].alive]
        if not owners:
            return None
        shard, owner = self.rng.choice(owners)
        return shard, self.cluster.roles[owner]

    def new_owner_within(self, shard: int, old_epoch: int, timeout: float) -> float | None:
        """Seconds until `shard` is served at an epoch newer than `old_epoch`, or None."""
        started = time.time()
        while time.time() - started < timeout:
            owner, epoch = self.cluster.shard_owners().get(shard, (None, 0))
            if owner and epoch > old_epoch:
                return round(time.time() - started, 2)
            self.wait(0.05)
        return None


# --- processes ---------------------------------------------------------------------------------

def _signal_role(kind: str, how: str) -> Callable[[Run, dict], None]:
    def fault(run: Run, record: dict) -> None:
        alive = run.alive(kind)
        if not alive:
            record["skipped"] = f"no {kind} alive"
            return
        role = run.rng.choice(alive)
        record["target"] = role.name
        if how == "stop":
            role.signal(signal.SIGSTOP)
            run.paused.append(role)
        else:
            run.kill(role, signal.SIGKILL if how == "kill" else signal.SIGTERM)
    return fault


def restart_postgres(run: Run, record: dict) -> None:
    # The environment's server runs with production durability (Postgres' default; `restart`
    # refuses a fast one): what was acknowledged with a 201 survives this.
    run.bench.env.postgres.restart(down_for=1.0)


def restart_apiserver(run: Run, record: dict) -> None:
    ProcessTable(run.bench.env.control_plane.state_dir).restart("kube-apiserver", signal.SIGKILL, 1.0)


def _replace_webapp(run: Run) -> None:
    old = run.cluster.roles["webapp"]
    old.signal(signal.SIGKILL)
    old.wait(30)
    role = run.cluster.start_webapp(password=run.password)
    if run.on_webapp is not None:
        run.on_webapp(role)
    fresh = ApiClient(f"https://127.0.0.1:{role.port}")
    fresh.login("admin", run.password)
    run.api = fresh


def restart_webapp(run: Run, record: dict) -> None:
    _replace_webapp(run)


def kill_webapp_in_flight(run: Run, record: dict) -> None:
    """SIGKILL the webapp at a moment when at least two requests are in flight."""
    deadline = time.time() + 5
    while run.senders.in_flight < 2 and time.time() < deadline:
        time.sleep(0.001)
    record["in_flight"] = run.senders.in_flight
    failed_before = len(run.senders.failed_at_client)
    _replace_webapp(run)
    record["failed_at_client"] = len(run.senders.failed_at_client) - failed_before


# --- the gateway -------------------------------------------------------------------------------

def drop_gateway_connection(run: Run, record: dict) -> None:
    """The sandbox delivers the first half of the next batch it gets and resets the connection."""
    before = len(run.cluster.gateway_faults(reset_on_send=1)["resets"])
    deadline = time.time() + 10
    while time.time() < deadline:
        resets = run.cluster.gateway_faults()["resets"]
        if len(resets) > before:
            last = resets[-1]
            record.update(target=last["node"], shard=last["shard"], batch=len(last["ids"]),
                          delivered_of_batch=len(last["delivered"]))
            return
        run.wait(0.05)
    run.cluster.gateway_faults(reset_on_send=0)
    record["skipped"] = "no batch was sent within 10 s"


# --- the local Cloud API (cloud mode) -----------------------------------------------------------

CLOUD_ERRORS_FOR = 20       # sends answered with a 5xx by cloud_server_errors
CLOUD_SLOW_FOR = 40         # sends held by cloud_latency...
CLOUD_SLOW_S = 3.0          # ...this long: below the driver's 20 s request timeout, so no send is in doubt


def cloud_server_errors(run: Run, record: dict) -> None:
    """The Cloud API answers its next sends with a 500 or 503 (Meta's transient error): retried."""
    status = run.rng.choice((500, 503))
    run.cloud.call("POST", "/_control/faults", {"count": CLOUD_ERRORS_FOR, "status": status})
    record.update(status=status, sends=CLOUD_ERRORS_FOR)


def cloud_latency(run: Run, record: dict) -> None:
    """The Cloud API holds its next sends before answering them."""
    run.cloud.call("POST", "/_control/faults", {"count": CLOUD_SLOW_FOR, "latency": CLOUD_SLOW_S})
    record.update(latency_s=CLOUD_SLOW_S, sends=CLOUD_SLOW_FOR)


def kill_owner_sends_in_flight(run: Run, record: dict) -> None:
    """SIGKILL a shard owner while the Cloud API holds sends it started (latency injected first):
    those rows stay in doubt for the next owner, to be settled by their status webhooks or sent
    again after the in-doubt window."""
    picked = run.shard_owner()
    if picked is None:
        record["skipped"] = "no shard is served"
        return
    shard, role = picked
    record.update(target=role.name, shard=shard)
    run.cloud.call("POST", "/_control/faults", {"count": CLOUD_SLOW_FOR, "latency": CLOUD_SLOW_S})
    deadline = time.time() + CLOUD_SLOW_S
    in_flight = 0
    while time.time() < deadline and in_flight == 0:
        in_flight = run.cluster.query("SELECT count(*) FROM messages WHERE status = 'claimed' "
                                      "AND send_started_at IS NOT NULL AND claimed_by = %s", (role.name,))[0][0]
        run.wait(0.02)
    record["in_flight"] = in_flight
    run.kill(role)


# --- partitions (iptables on cgroups) ----------------------------------------------------------

def _partition(run: Run, record: dict, cut: Callable[[NetworkFaults, Any], Any]) -> None:
    if run.network is None:
        record["skipped"] = run.network_unavailable
        return
    picked = run.shard_owner()
    if picked is None:
        record["skipped"] = "no shard is served"
        return
    shard, role = picked
    record.update(target=role.name, shard=shard, epoch=run.cluster.shard_owners()[shard][1], for_s=PARTITION_S)
    fault = cut(run.network, role)
    try:
        run.wait(PARTITION_S)
    finally:
        run.network.heal(fault)
    owner, epoch = run.cluster.shard_owners().get(shard, (None, 0))
    record["after"] = {"owner": owner, "epoch": epoch}


def partition_coreapp_from_postgres(run: Run, record: dict) -> None:
    pg_port = urlparse(run.cluster.dsn).port
    _partition(run, record, lambda net, role: net.black_hole(net.cgroup("coreapp", role.name), pg_port))


def partition_coreapp_from_masters(run: Run, record: dict) -> None:
    _partition(run, record, lambda net, role: net.black_hole(net.cgroup("master"), role.port))


def lose_coreapp_replies(run: Run, record: dict) -> None:
    _partition(run, record, lambda net, role: net.drop_replies(net.cgroup("coreapp", role.name), role.port))


def partition_coreapp_from_cloudapi(run: Run, record: dict) -> None:
    """A shard owner black-holed from the Cloud API's port (both ways) for less than the driver's
    request timeout: its sends stall, and those already received are answered after the heal."""
    _partition(run, record, lambda net, role: net.black_hole(net.cgroup("coreapp", role.name), run.cloud.port))


# --- the masters' authority --------------------------------------------------------------------

def stop_primary_mid_promotion(run: Run, record: dict) -> None:
    """Kill a shard owner, and SIGSTOP the primary master as soon as the shard may be moved (its
    lease expired, or it was revoked or already given a new epoch; polled every 2 ms): the
    primary is then between reading a world in which the shard needs a new owner and writing the
    promotion, or just past it. Keep it stopped for longer than the master Lease, then resume it:
    whatever it was about to write must be fenced off by its successor's term."""
    primary = run.cluster.primary_master()
    picked = run.shard_owner()
    if primary not in run.cluster.roles or not run.cluster.roles[primary].alive or picked is None:
        record["skipped"] = f"primary {primary!r}, shard owner {picked!r}"
        return
    master = run.cluster.roles[primary]
    shard, owner = picked
    epoch = run.cluster.shard_owners()[shard][1]
    record.update(target=primary, shard=shard, owner=owner.name, epoch=epoch)
    stopped_for = float(run.settings["lease_duration"]) + 3.0
    with psycopg.connect(run.cluster.dsn, autocommit=True) as conn:
        term_before = conn.execute("SELECT term FROM master_term WHERE id = 1").fetchone()[0]
        run.kill(owner)
        killed = time.time()
        seen = None
        while time.time() - killed < 30:
            revoked, expired, now_epoch = conn.execute(
                "SELECT revoked, lease_until <= now(), epoch FROM shard_map WHERE shard = %s", (shard,)).fetchone()
            if revoked or expired or now_epoch != epoch:
                master.signal(signal.SIGSTOP)
                seen = "promoted" if now_epoch != epoch else ("revoked" if revoked else "lease expired")
                break
            time.sleep(0.002)
        if seen is None:
            record["skipped"] = "no promotion began within 30 s"
            return
        stopped = time.time()
        run.paused.append(master)
        db_stopped, = conn.execute("SELECT now()").fetchone()
        record.update(trigger=seen, stopped_after_kill_s=round(stopped - killed, 3), stopped_for_s=stopped_for)
        record["new_owner_after_s"] = run.new_owner_within(shard, epoch, stopped_for)
        run.wait(max(0.0, stopped_for - (time.time() - stopped)))
        run.resume_paused()
        promotion = conn.execute(
            "SELECT f.at, s.master_term FROM failovers f JOIN shard_map s ON s.shard = f.shard "
            "WHERE f.shard = %s AND f.epoch = %s", (shard, epoch + 1)).fetchone()
    if promotion is not None:
        # failovers.at is the promoting transaction's start (database time).
        before = (db_stopped - promotion[0]).total_seconds()
        record["promotion_vs_stop_s"] = round(-before, 3)
        record["promoted_by"] = (f"the stopped primary (term {term_before})" if before >= 0
                                 else f"its successor (the shard's term is now {promotion[1]})")


def delete_master_lease(run: Run, record: dict) -> None:
    """Delete the masters' Lease, then kill a shard owner: the shard must still fail over."""
    run.cluster.delete_lease()
    run.wait(1.0)
    picked = run.shard_owner()
    if picked is None:
        record["skipped"] = "no shard is served after the Lease was deleted"
        return
    shard, owner = picked
    epoch = run.cluster.shard_owners()[shard][1]
    record.update(target=owner.name, shard=shard, epoch=epoch)
    run.kill(owner)
    record["failover_s"] = run.new_owner_within(shard, epoch, 30.0)


# --- the shard count ---------------------------------------------------------------------------

def _resize(run: Run, record: dict, restart_postgres_after: bool) -> None:
    current = run.senders.shard_count
    coreapps = len(run.alive("coreapp"))
    choices = [n for n in SHARD_COUNTS if n != current and n <= coreapps]
    if not choices:
        record["skipped"] = f"{coreapps} coreapp(s) alive"
        return
    count = run.rng.choice(choices)
    record.update(shards_from=current, shards_to=count)
    cc, number = run.account
    reply = run.api.request("POST", "/v1/account/shards", {"cc": cc, "phone_number": number, "shards": count})
    if reply.status != 201:
        record["refused"] = f"{reply.status} {reply.error.get('details') or reply.body}"
        return
    asked = time.time()
    run.senders.set_shard_count(count)
    if restart_postgres_after:
        run.wait(0.2)
        run.bench.env.postgres.restart(down_for=1.0)
    while time.time() - asked < 60:
        owners = run.cluster.shard_owners()
        if len(owners) == count and all(owner for owner, _ in owners.values()):
            record["all_shards_served_after_s"] = round(time.time() - asked, 2)
            return
        run.wait(0.1)
    record["all_shards_served_after_s"] = None


def resize_shards(run: Run, record: dict) -> None:
    _resize(run, record, restart_postgres_after=False)


def resize_shards_restart_postgres(run: Run, record: dict) -> None:
    _resize(run, record, restart_postgres_after=True)


FAULTS: dict[str, Callable[[Run, dict], None]] = {
    "kill_coreapp": _signal_role("coreapp", "kill"),
    "stop_coreapp": _signal_role("coreapp", "stop"),
    "term_coreapp": _signal_role("coreapp", "term"),
    "kill_master": _signal_role("master", "kill"),
    "term_master": _signal_role("master", "term"),
    "stop_master": _signal_role("master", "stop"),
    "restart_postgres": restart_postgres,
    "restart_apiserver": restart_apiserver,
    "restart_webapp": restart_webapp,
    "drop_gateway_connection": drop_gateway_connection,
    "partition_coreapp_from_postgres": partition_coreapp_from_postgres,
    "partition_coreapp_from_masters": partition_coreapp_from_masters,
    "lose_coreapp_replies": lose_coreapp_replies,
    "stop_primary_mid_promotion": stop_primary_mid_promotion,
    "resize_shards": resize_shards,
    "resize_shards_restart_postgres": resize_shards_restart_postgres,
    "kill_webapp_in_flight": kill_webapp_in_flight,
    "delete_master_lease": delete_master_lease,
}
# --smoke: the cheap ones, so `make test` stays short.
SMOKE_FAULTS = ["kill_coreapp", "stop_coreapp", "term_coreapp", "kill_master", "stop_master", "restart_postgres",
                "restart_webapp", "drop_gateway_connection", "kill_webapp_in_flight"]

# With the Cloud API driver: the sandbox's fault gives way to the Cloud API's own.
CLOUD_FAULTS: dict[str, Callable[[Run, dict], None]] = {
    **{name: fault for name, fault in FAULTS.items() if name != "drop_gateway_connection"},
    "cloud_server_errors": cloud_server_errors,
    "cloud_latency": cloud_latency,
    "partition_coreapp_from_cloudapi": partition_coreapp_from_cloudapi,
    "kill_owner_sends_in_flight": kill_owner_sends_in_flight,
}
CLOUD_SMOKE_FAULTS = [name for name in SMOKE_FAULTS if name != "drop_gateway_connection"] + [
    "cloud_server_errors", "cloud_latency", "partition_coreapp_from_cloudapi", "kill_owner_sends_in_flight"]
