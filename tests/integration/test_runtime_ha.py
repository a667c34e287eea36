"""The HA runtime as real processes: masters (Lease), coreapps (shard lease, gateway), sandbox and a
webapp, against the local control plane and PostgreSQL. Messages go in through the webapp's REST
API, as a client sends them. Each test asserts the mechanism (which rule moved a shard, how the
Lease changed hands); how fast it happens is measured by bench/failover.py, never asserted here."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from wacluster.api.interprocess import Env
from wacluster.domain.ha import lease_ttl
from runtime_cluster import connected, start, stop_masters_and_await_renewal_without_them, webapp
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import DEFAULT_SETTINGS

pytestmark = pytest.mark.integration


def new_owner_of_shard_0(cluster, previous: str, timeout: float = 60):
    return eventually(lambda: (o := cluster.shard_owners()[0][0]) not in (None, previous) and o, timeout,
                      what=f"shard 0 connected by another coreapp than {previous}")


def last_failover(cluster) -> tuple[str | None, str | None, int, str]:
    """(from, to, epoch, reason) of the latest promotion the primary master recorded."""
    rows = cluster.query("SELECT from_coreapp, to_coreapp, epoch, reason FROM failovers ORDER BY id DESC LIMIT 1")
    assert rows, "no promotion was recorded"
    return rows[0]


def delivered_ids(cluster) -> set[str]:
    return {d["id"] for d in cluster.gateway("/inspect/deliveries")["deliveries"]}


# Reasons the primary master gives for moving the shard of an owner that failed (domain/ha.py).
LEASE_EXPIRED = "because its shard lease expired (it fenced itself)"
NO_HEARTBEAT = "because it answered no master heartbeat"


def test_dbupgrade_run_again_changes_nothing(cluster):
    applied = cluster.query("SELECT version, applied_at FROM schema_version")
    again = cluster.dbupgrade()
    assert again.returncode == 0 and "already at version" in again.stderr
    assert cluster.query("SELECT version, applied_at FROM schema_version") == applied


def test_dbupgrade_stays_alive_after_success_when_exit_on_success_is_false(cluster, tmp_path):
    log = tmp_path / "dbupgrade-alive.log"
    proc = subprocess.Popen([sys.executable, "-m", "wacluster", "dbupgrade"],
                            env=cluster._env("dbupgrade", {Env.EXIT_ON_SUCCESS: "false"}),
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        eventually(lambda: "staying alive until stopped" in log.read_text(), 60, what="dbupgrade done and waiting",
                   details=lambda: log.read_text()[-2000:])
        # Deliberately lets time pass: exiting would follow success at once; it must not happen.
        time.sleep(2)
        assert proc.poll() is None, "dbupgrade exited although EXIT_ON_SUCCESS=false"
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_a_master_refuses_a_schema_that_no_longer_serves_it(cluster):
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 999, roles_from = 999")
    master = cluster.start_master("master1")
    eventually(lambda: "refusing to act" in master.output(), 30, what="the refusal in the log")
    rows = cluster.query("SELECT error FROM nodes WHERE name = 'master1'")
    assert rows and "no longer serves roles of schema" in rows[0][0]


def test_exactly_one_primary_master_through_kills_and_terminations(cluster):
    start(cluster, masters=3, coreapps=1)
    observed: list[str | None] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            observed.append(cluster.primary_master())
            stop.wait(0.05)  # the sampling period of this observer, not a wait for anything

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for sig in [signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]:
            holder = eventually(lambda: cluster.primary_master(), 30, what="a primary")
            assert not holder.startswith("SEVERAL")
            cluster.roles[holder].signal(sig)
            cluster.roles[holder].wait(15)
            new = eventually(lambda: (p := cluster.primary_master()) not in (None, holder) and p, 60,
                             what="a new primary")
            assert not new.startswith("SEVERAL")
            cluster.start_master(holder)  # back as a secondary
    finally:
        stop.set()
        sampler.join()
    assert not any(p and p.startswith("SEVERAL") for p in observed), "two primaries at once"


def test_a_killed_primary_masters_lease_is_taken_only_after_it_expired(cluster):
    start(cluster, masters=2, coreapps=1)
    holder = eventually(cluster.lease_holder, 30, what="a Lease holder")
    with cluster.watch_lease() as lease:
        eventually(lease.states, 30, what="the Lease watch's first state")
        cluster.roles[holder].signal(signal.SIGKILL)
        new = eventually(lambda: (h := cluster.lease_holder()) not in (None, holder) and h, 60, what="a new holder")
        eventually(lambda: new in lease.holders(), 30, what="the takeover in the Lease watch")
    assert lease.holders() == [holder, new], "nobody released it: it went from holder to holder"
    states = lease.states()
    last_renewal = [s for s in states if s.holder == holder][-1]
    takeover = next(s for s in states if s.holder == new)
    assert takeover.transitions == last_renewal.transitions + 1
    # The standby stamps acquireTime before the read that finds the Lease expired, hence the
    # allowance of one retry period; a takeover before expiry would come seconds earlier.
    unrenewed = (takeover.acquired - last_renewal.renewed).total_seconds()
    assert unrenewed >= last_renewal.duration - DEFAULT_SETTINGS["retry_period"]


def test_a_terminated_primary_master_releases_the_lease_to_the_standby(cluster):
    start(cluster, masters=2, coreapps=1)
    holder = eventually(cluster.lease_holder, 30, what="a Lease holder")
    with cluster.watch_lease() as lease:
        eventually(lease.states, 30, what="the Lease watch's first state")
        cluster.roles[holder].signal(signal.SIGTERM)
        new = eventually(lambda: (h := cluster.lease_holder()) not in (None, holder) and h, 60, what="a new holder")
        eventually(lambda: new in lease.holders(), 30, what="the takeover in the Lease watch")
    assert lease.holders() == [holder, "", new], "the Lease was not seen released between the two holders"
    assert f"{holder} released the lease" in cluster.roles[holder].output()


def test_the_standby_takes_the_shard_of_a_killed_coreapp(cluster):
    start(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    epoch = cluster.shard_owners()[0][1]
    cluster.roles[owner].signal(signal.SIGKILL)
    new_owner = new_owner_of_shard_0(cluster, owner)
    from_, to, new_epoch, reason = last_failover(cluster)
    assert (from_, to, new_epoch) == (owner, new_owner, epoch + 1)
    # Whichever failure rule the master saw first; never a planned handoff or a pod signal.
    assert LEASE_EXPIRED in reason or NO_HEARTBEAT in reason, reason
    assert cluster.gateway()["conflicts"] == 0


def test_db_only_mode_replaces_a_silent_coreapp_by_the_database_heartbeat_rule(cluster):
    cluster.configure(heartbeat_interval=2.0, unhealthy_interval=8.0, db_heartbeat_interval=0.5, db_unhealthy_after=2.0)
    start(cluster, masters=1)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    cluster.roles[owner].signal(signal.SIGKILL)
    new_owner = new_owner_of_shard_0(cluster, owner)
    from_, to, _, reason = last_failover(cluster)
    assert (from_, to) == (owner, new_owner)
    assert f"{owner} lost shard 0 because its database heartbeat is" in reason, reason
    master_log = cluster.roles["master1"].output()
    assert f"revoking shard 0 from {owner} because its database heartbeat is" in master_log
    assert "answered no master heartbeat" not in master_log  # one master: the heartbeat rule is off


def test_a_stopped_and_resumed_coreapp_never_delivers_again(cluster):
    start(cluster)
    api = webapp(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    assert api.send_until_accepted("+15551230000", "before")
    cluster.roles[owner].signal(signal.SIGSTOP)
    new_owner = new_owner_of_shard_0(cluster, owner)
    sent_during = [api.send_until_accepted(f"+1555123{i:04d}", "during") for i in range(5)]
    cluster.roles[owner].signal(signal.SIGCONT)
    eventually(lambda: "stopped serving shard 0" in cluster.roles[owner].output(), 30,
               what="the resumed coreapp fencing itself")
    sent_after = [api.send_until_accepted(f"+1555124{i:04d}", "after") for i in range(5)]
    accepted = sent_during + sent_after
    assert all(accepted), "a message was refused with the new owner connected"
    eventually(lambda: set(accepted) <= delivered_ids(cluster), 30, what="every accepted message delivered")
    report = cluster.gateway("/inspect/deliveries")
    assert report["conflicts"] == [] and report["bans"] == [] and report["stale_sends"] == []
    late = [d for d in report["deliveries"] if d["node"] == owner and d["id"] in accepted]
    assert late == [], "the stale coreapp delivered after it was replaced"
    assert cluster.shard_owners()[0][0] == new_owner


def test_a_deposed_masters_shard_map_write_is_rejected(cluster):
    import asyncio

    from wacluster.db import shard_map

    async def scenario():
        async with await psycopg.AsyncConnection.connect(cluster.dsn, autocommit=True) as conn:
            assert await shard_map.claim_term(conn, 5, "old-master")
            await shard_map.ensure_shards(conn, 1, 5, "old-master")
            assert await shard_map.claim_term(conn, 6, "new-master")
            epoch = await shard_map.promote(conn, 0, 0, "wacore9", 1.0, 5, "old-master", "deposed write")
            assert epoch is None
            assert not await shard_map.claim_term(conn, 5, "old-master")
            assert await shard_map.promote(conn, 0, 0, "wacore8", 1.0, 6, "new-master", "current write") == 1

    asyncio.run(scenario())
    assert cluster.query("SELECT coreapp FROM shard_map WHERE shard = 0") == [("wacore8",)]


def test_coreapps_keep_serving_with_every_master_stopped(cluster):
    start(cluster)
    api = webapp(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    stop_masters_and_await_renewal_without_them(cluster)
    ids = [api.send_until_accepted(f"+1555200{i:04d}", "no masters") for i in range(10)]
    assert all(ids)
    eventually(lambda: set(ids) <= delivered_ids(cluster), 30, what="every accepted message delivered")
    assert cluster.shard_owners()[0][0] == owner


def test_two_shards_stay_connected_when_either_coreapp_is_lost(cluster):
    cluster.configure(shards=2)
    start(cluster, coreapps=3)
    owners = eventually(lambda: connected(cluster, shards=2), 40, what="2 shards connected")
    standby = ({"wacore1", "wacore2", "wacore3"} - {o[0] for o in owners.values()}).pop()
    victim = owners[1][0]
    cluster.roles[victim].signal(signal.SIGKILL)
    after = eventually(lambda: (o := connected(cluster, shards=2)) and victim not in {v[0] for v in o.values()} and o,
                       60, what="2 shards connected again")
    assert after[1][0] == standby and after[0][0] == owners[0][0]


def test_a_planned_handoff_needs_no_failure_detection_and_loses_nothing(cluster):
    cluster.configure(heartbeat_interval=5.0, unhealthy_interval=30.0)  # slow detection: handoff must not need it
    start(cluster)
    api = webapp(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    results: list[str | None] = []
    sending = threading.Event()
    sending.set()

    def sender():
        i = 0
        while sending.is_set():
            results.append(api.send_until_accepted(f"+1555300{i:04d}", "steady"))
            i += 1

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        eventually(lambda: any(results), 30, what="messages accepted before the handoff")
        cluster.roles[owner].signal(signal.SIGTERM)
        new_owner = new_owner_of_shard_0(cluster, owner, timeout=90)
        before = len(results)
        eventually(lambda: any(results[before:]), 30, what="messages accepted after the handoff")
    finally:
        sending.clear()
        thread.join()
    assert cluster.roles[owner].wait(30) == 0
    accepted = [r for r in results if r]
    eventually(lambda: set(accepted) <= delivered_ids(cluster), 30, what="every accepted message delivered")
    report = cluster.gateway("/inspect/deliveries")
    assert report["duplicates"] == [] and report["conflicts"] == []
    assert f"handed shard 0 to {new_owner}" in cluster.roles[owner].output()
    from_, to, _, reason = last_failover(cluster)
    assert (from_, to) == (owner, new_owner)
    assert reason == f"{owner} lost shard 0 because it is stopping (planned handoff)", reason


def test_interval_settings_are_picked_up_live(cluster):
    cluster.configure(heartbeat_interval=5.0, unhealthy_interval=60.0)
    start(cluster)
    owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    new_ttl = lease_ttl(1.0, 3.0)  # 2 s, where the old settings gave 55 s
    cluster.configure(heartbeat_interval=1.0, unhealthy_interval=3.0)
    # The owner's next renewal already uses the new lease length: the database lease shrinks to it.
    eventually(lambda: cluster.query("SELECT lease_until - now() <= make_interval(secs => %s) FROM shard_map "
                                     "WHERE shard = 0", (new_ttl,))[0][0], 30,
               what="shard 0's lease renewed with the new length")
    cluster.roles[owner].signal(signal.SIGSTOP)
    try:
        new_owner = new_owner_of_shard_0(cluster, owner)
    finally:
        cluster.roles[owner].signal(signal.SIGCONT)
    from_, to, _, reason = last_failover(cluster)
    assert (from_, to) == (owner, new_owner)
    # The short lease ran out, or the master judged with the new 3 s unhealthy interval.
    assert LEASE_EXPIRED in reason or (NO_HEARTBEAT in reason and "(limit 3s)" in reason), reason


def test_a_deleted_coreapp_pod_counts_as_gone_at_once(cluster, k):
    """Beyond the seeds: Kubernetes saying the pod is going is a signal; detection does not wait
    for missed heartbeats (here they keep succeeding: the process itself is fine)."""
    import json

    name = f"pods-{cluster.lease_name}"
    for coreapp in ("wacore1", "wacore2"):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": coreapp, "namespace": "default",
                            "labels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": "coreapp"}},
               "spec": {"containers": [{"name": "coreapp", "image": "wacluster:test"}]}}
        k("apply", "-f", "-", input=json.dumps(pod))
    cluster.configure(heartbeat_interval=1.0, unhealthy_interval=30.0)  # heartbeat rule out of reach
    try:
        for master in ("master1", "master2"):
            cluster.start_master(master, env={Env.CLUSTER: name})
        for coreapp in ("wacore1", "wacore2"):
            cluster.start_coreapp(coreapp)
        eventually(lambda: cluster.primary_master(), 30, what="a primary master")
        cluster.register()
        owner = eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
        k("delete", "pod", owner, "-n", "default", "--wait=false")
        # Revoked at once; the successor still waits for the revoked owner's (29 s) lease to run out.
        new_owner = new_owner_of_shard_0(cluster, owner, timeout=120)
        from_, to, _, reason = last_failover(cluster)
        assert (from_, to) == (owner, new_owner)
        assert reason == f"{owner} lost shard 0 because its pod is terminating or deleted", reason
        log = "".join(cluster.roles[m].output() for m in ("master1", "master2"))
        assert f"revoking shard 0 from {owner} because its pod is terminating or deleted" in log
        assert cluster.gateway()["conflicts"] == 0
    finally:
        k("delete", "pod", "wacore1", "wacore2", "-n", "default", "--ignore-not-found", "--wait=false", check=False)


def test_a_new_owner_records_instead_of_resending_what_its_predecessor_sent(cluster):
    """A predecessor killed between the gateway's ack and recording it leaves sent messages
    queued; the new owner asks the gateway and sends only the rest (no gateway duplicate)."""
    import asyncio
    import json

    import aiohttp

    start(cluster, masters=1, coreapps=0)
    ids = ["pre-sent-1", "pre-sent-2", "never-sent-3"]
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        for message_id in ids:
            conn.execute("INSERT INTO messages (id, recipient, route_hash, shard, body) VALUES (%s, %s, 0, 0, %s)",
                         (message_id, "15550001", json.dumps({"type": "text", "text": {"body": message_id}})))

    async def predecessor_sends(batch):  # the killed owner's last batch, acked but never recorded
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{cluster.gateway_port}/connect", params={
                    "account": cluster.phone, "shard": "0", "node": "gone", "epoch": "0"}) as ws:
                assert (await ws.receive_json())["type"] == "connected"
                await ws.send_json({"type": "send", "messages": [{"id": i, "to": "15550001"} for i in batch]})
                assert (await ws.receive_json())["type"] == "ack"
    asyncio.run(predecessor_sends(ids[:2]))

    cluster.start_coreapp("wacore1")
    eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE status = 'delivered'")[0][0] == 3,
               30, what="all three recorded as delivered")
    gateway = cluster.gateway("/inspect/deliveries")
    assert gateway["duplicates"] == []
    delivered = {d["id"]: d["node"] for d in gateway["deliveries"]}
    assert delivered == {"pre-sent-1": "gone", "pre-sent-2": "gone", "never-sent-3": "wacore1"}
    assert "2 already sent by the previous owner" in cluster.roles["wacore1"].output()
