"""The HA runtime as real processes: masters (Lease), coreapps (shard lease, gateway), sandbox,
against the local control plane and PostgreSQL. Timing bounds are generous on purpose."""

from __future__ import annotations

import signal
import threading
import time

import psycopg
import pytest

from wacluster_testenv.localcluster import LocalCluster, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(kubeconfig, pg_dsn, tmp_path):
    c = LocalCluster(kubeconfig, pg_dsn, "default", tmp_path)
    result = c.dbupgrade()
    assert result.returncode == 0, result.stderr
    c.configure()
    c.start_sandbox()
    yield c
    c.stop_all()


def start(cluster, masters=2, coreapps=2, register=True):
    for i in range(1, masters + 1):
        cluster.start_master(f"master{i}")
    for i in range(1, coreapps + 1):
        cluster.start_coreapp(f"wacore{i}")
    wait_until(lambda: cluster.primary_master(), 30, what="a primary master")
    if register:
        cluster.register()
    return cluster


def connected(cluster, shards=1):
    owners = cluster.shard_owners()
    return len(owners) == shards and all(o[0] for o in owners.values()) and owners


def test_dbupgrade_is_idempotent_and_can_stay_alive(cluster):
    again = cluster.dbupgrade()
    assert again.returncode == 0 and "already at version" in again.stderr
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "wacluster", "dbupgrade"],
                            env=cluster._env("dbupgrade", {"EXIT_ON_SUCCESS": "false"}),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)
        assert proc.poll() is None, "dbupgrade exited although EXIT_ON_SUCCESS=false"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_a_master_refuses_a_schema_it_does_not_understand(cluster):
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    master = cluster.start_master("master1")
    wait_until(lambda: "refusing to act" in master.output(), 30, what="the refusal in the log")
    rows = cluster.query("SELECT error FROM nodes WHERE name = 'master1'")
    assert rows and "newer than this release expects" in rows[0][0]


def test_exactly_one_primary_master_through_kills_and_terminations(cluster):
    start(cluster, masters=3, coreapps=1)
    observed: list[str | None] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            observed.append(cluster.primary_master())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        for round_, sig in enumerate([signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]):
            holder = wait_until(lambda: cluster.primary_master(), 30, what="a primary")
            assert not holder.startswith("SEVERAL")
            cluster.roles[holder].signal(sig)
            cluster.roles[holder].wait(15)
            new = wait_until(lambda: (p := cluster.primary_master()) not in (None, holder) and p, 30,
                             what="a new primary")
            assert not new.startswith("SEVERAL")
            cluster.start_master(holder)  # back as a secondary
    finally:
        stop.set()
        sampler.join()
    assert not any(p and p.startswith("SEVERAL") for p in observed), "two primaries at once"


def test_sigkill_of_the_primary_master_hands_the_lease_over_within_lease_duration(cluster):
    start(cluster, masters=2, coreapps=1)
    holder = wait_until(cluster.lease_holder, 30, what="a Lease holder")
    cluster.roles[holder].signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: cluster.lease_holder() not in (None, holder), 30, what="a new holder")
    # lease 4 s + retry 0.5 s in these settings; the bound allows for a loaded machine.
    assert time.monotonic() - killed < 4 + 0.5 + 3


def test_sigterm_of_the_primary_master_hands_the_lease_over_within_a_retry_period(cluster):
    start(cluster, masters=2, coreapps=1)
    holder = wait_until(cluster.lease_holder, 30, what="a Lease holder")
    cluster.roles[holder].signal(signal.SIGTERM)
    stopped = time.monotonic()
    wait_until(lambda: cluster.lease_holder() not in (None, holder), 30, what="a new holder")
    assert time.monotonic() - stopped < 0.5 + 2.5  # well under the 4 s lease: released, not expired


def test_standby_takes_the_shard_when_the_primary_coreapp_is_killed(cluster):
    start(cluster)
    owner = wait_until(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    cluster.roles[owner].signal(signal.SIGKILL)
    killed = time.monotonic()
    new_owner = wait_until(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 30,
                           what="a new owner")
    assert new_owner != owner
    assert time.monotonic() - killed < 3 + 1 + 3  # unhealthy 3 s + one heartbeat, plus slack
    assert cluster.gateway()["conflicts"] == 0


def test_db_only_mode_replaces_a_silent_coreapp(cluster):
    cluster.configure(heartbeat_interval=2.0, unhealthy_interval=8.0, db_heartbeat_interval=0.5, db_unhealthy_after=2.0)
    start(cluster, masters=1)
    owner = wait_until(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    cluster.roles[owner].signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_until(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 30, what="a new owner")
    master_log = cluster.roles["master1"].output()
    assert "answered no master heartbeat" not in master_log  # one master: the heartbeat rule is off
    assert time.monotonic() - killed < 8 + 5


def test_a_stopped_and_resumed_coreapp_never_delivers_again(cluster):
    start(cluster)
    owner = wait_until(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    assert cluster.send("+15551230000", "before")
    cluster.roles[owner].signal(signal.SIGSTOP)
    new_owner = wait_until(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 30,
                           what="promotion while the owner is frozen")
    sent_during = [cluster.send(f"+1555123{i:04d}", "during") for i in range(5)]
    cluster.roles[owner].signal(signal.SIGCONT)
    time.sleep(3)
    sent_after = [cluster.send(f"+1555124{i:04d}", "after") for i in range(5)]
    time.sleep(1)
    report = cluster.gateway("/inspect/deliveries")
    assert report["conflicts"] == [] and report["bans"] == [] and report["stale_sends"] == []
    late = [d for d in report["deliveries"] if d["node"] == owner and d["id"] in sent_during + sent_after]
    assert late == [], "the stale coreapp delivered after it was replaced"
    delivered = {d["id"] for d in report["deliveries"]}
    assert all(i in delivered for i in sent_during + sent_after if i)
    assert "stopped serving shard 0" in cluster.roles[owner].output()
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
    owner = wait_until(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    for name in ("master1", "master2"):
        cluster.roles[name].stop()
    time.sleep(5)  # longer than the shard lease: renewals go to the database, not to masters
    ids = [cluster.send(f"+1555200{i:04d}", "no masters") for i in range(10)]
    assert all(ids)
    time.sleep(1)
    delivered = {d["id"] for d in cluster.gateway("/inspect/deliveries")["deliveries"]}
    assert set(ids) <= delivered
    assert cluster.shard_owners()[0][0] == owner


def test_two_shards_stay_connected_when_either_coreapp_is_lost(cluster):
    cluster.configure(shards=2)
    start(cluster, coreapps=3)
    owners = wait_until(lambda: connected(cluster, shards=2), 40, what="2 shards connected")
    standby = ({"wacore1", "wacore2", "wacore3"} - {o[0] for o in owners.values()}).pop()
    victim = owners[1][0]
    cluster.roles[victim].signal(signal.SIGKILL)
    after = wait_until(lambda: (o := connected(cluster, shards=2)) and victim not in {v[0] for v in o.values()} and o,
                       30, what="2 shards connected again")
    assert after[1][0] == standby and after[0][0] == owners[0][0]


def test_planned_handoff_is_fast_and_loses_nothing(cluster):
    cluster.configure(heartbeat_interval=5.0, unhealthy_interval=30.0)  # slow detection: handoff must not need it
    start(cluster)
    owner = wait_until(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    results: list[str | None] = []
    sending = threading.Event()
    sending.set()

    def sender():
        i = 0
        while sending.is_set():
            results.append(cluster.send(f"+1555300{i:04d}", "steady"))
            i += 1

    thread = threading.Thread(target=sender)
    thread.start()
    time.sleep(1)
    cluster.roles[owner].signal(signal.SIGTERM)
    terminated = time.monotonic()
    new_owner = wait_until(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 30,
                           what="the successor")
    took = time.monotonic() - terminated
    time.sleep(1)
    sending.clear()
    thread.join()
    assert took < 5, f"handoff took {took:.1f}s: it waited for failure detection"
    assert cluster.roles[owner].wait(15) == 0
    time.sleep(1)
    report = cluster.gateway("/inspect/deliveries")
    delivered = [d["id"] for d in report["deliveries"]]
    accepted = [r for r in results if r]
    assert accepted and set(accepted) <= set(delivered), "an accepted message was lost"
    assert report["duplicates"] == [] and report["conflicts"] == []
    assert f"handed shard 0 to {new_owner}" in cluster.roles[owner].output()


def test_interval_settings_are_picked_up_live(cluster):
    cluster.configure(heartbeat_interval=5.0, unhealthy_interval=60.0)
    start(cluster)
    owner = wait_until(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
    cluster.configure(heartbeat_interval=1.0, unhealthy_interval=3.0)
    time.sleep(3)  # a cycle reads the new values; the owner renews with the new lease length
    cluster.roles[owner].signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_until(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 40, what="failover")
        assert time.monotonic() - stopped < 15, "the old 60 s interval was still in force"
    finally:
        cluster.roles[owner].signal(signal.SIGCONT)


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
            cluster.start_master(master, env={"WACLUSTER_CLUSTER": name})
        for coreapp in ("wacore1", "wacore2"):
            cluster.start_coreapp(coreapp)
        wait_until(lambda: cluster.primary_master(), 30, what="a primary master")
        cluster.register()
        owner = wait_until(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]
        k("delete", "pod", owner, "-n", "default", "--wait=false")
        deleted = time.monotonic()
        wait_until(lambda: (o := cluster.shard_owners()[0][0]) not in (None, owner) and o, 60, what="a new owner")
        assert time.monotonic() - deleted < 29 + 5, "it waited for the heartbeat rule"
        log = "".join(cluster.roles[m].output() for m in ("master1", "master2"))
        assert "its pod is terminating or deleted" in log
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
    wait_until(lambda: cluster.query("SELECT count(*) FROM messages WHERE status = 'delivered'")[0][0] == 3,
               30, what="all three recorded as delivered")
    gateway = cluster.gateway("/inspect/deliveries")
    assert gateway["duplicates"] == []
    delivered = {d["id"]: d["node"] for d in gateway["deliveries"]}
    assert delivered == {"pre-sent-1": "gone", "pre-sent-2": "gone", "never-sent-3": "wacore1"}
    assert "2 already sent by the previous owner" in cluster.roles["wacore1"].output()
