"""What the runtime suites share: the roles started as local processes, a logged-in webapp, and
the question every failover test asks (is each shard served?)."""

from __future__ import annotations

from wacluster.domain.ha import lease_ttl
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import DEFAULT_SETTINGS, LocalCluster

PASSWORD = "secret-admin-password"


def start(cluster: LocalCluster, masters: int = 2, coreapps: int = 2, register: bool = True) -> LocalCluster:
    """Masters and coreapps named master1.. and wacore1..; waits for a primary master."""
    for i in range(1, masters + 1):
        cluster.start_master(f"master{i}")
    for i in range(1, coreapps + 1):
        cluster.start_coreapp(f"wacore{i}")
    eventually(lambda: cluster.primary_master(), 30, what="a primary master")
    if register:
        cluster.register()
    return cluster


def webapp(cluster: LocalCluster, password: str = PASSWORD, **options) -> ApiClient:
    """A real webapp in front of the cluster, logged in as the admin."""
    role = cluster.start_webapp(password=password, **options)
    api = ApiClient(f"https://127.0.0.1:{role.port}")
    assert api.login("admin", password).status == 200
    return api


def connected(cluster: LocalCluster, shards: int = 1):
    """The shard owners when every one of `shards` shards has a connected owner, else False."""
    owners = cluster.shard_owners()
    return len(owners) == shards and all(o[0] for o in owners.values()) and owners


def stop_masters_and_await_renewal_without_them(cluster: LocalCluster, masters=("master1", "master2")) -> None:
    """Stop every master, then wait until shard 0's lease is live past the end of any lease a
    master could have granted: it was renewed since, with the database alone."""
    for name in masters:
        cluster.roles[name].stop()
    stopped_at = cluster.query("SELECT now()")[0][0]
    ttl = lease_ttl(DEFAULT_SETTINGS["heartbeat_interval"], DEFAULT_SETTINGS["unhealthy_interval"])
    eventually(lambda: cluster.query("SELECT now() > %s + make_interval(secs => %s) AND lease_until > now() "
                                     "FROM shard_map WHERE shard = 0", (stopped_at, ttl))[0][0], 30,
               what="shard 0's lease renewed with every master stopped")
