"""Only the cluster's own roles get into a coreapp's control port, as real processes: a hand-off or
a heartbeat without the cluster's internal token, or with another one, is answered 401 in the
API's error shape and does nothing (the row stays queued, the heartbeat tells nothing); with the
token the coreapp takes the hand-off as before. The refusals are logged once per caller and
minute, not once per call; a master started with another token gets no heartbeat answered."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request

import pytest

from wacluster.api.interprocess import Env
from runtime_cluster import connected
from test_delivery_path import control_address, delivered_ids, queue_rows
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

OTHER_TOKEN = secrets.token_urlsafe(24)  # another cluster's, or a guess
ANOTHER_CLUSTERS = {"Authorization": f"Bearer {OTHER_TOKEN}"}
REFUSED_HEADERS = [{}, ANOTHER_CLUSTERS, {"Authorization": "Basic YWRtaW46YWRtaW4="}]


def call(address: str, method: str, path: str, headers: dict[str, str], body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def assert_refused(status: int, reply: dict) -> None:
    assert status == 401, reply
    assert list(reply) == ["errors"] and reply["errors"][0]["code"] == 1005, reply


def served_owner(cluster) -> str:
    """One master and one coreapp serving shard 0. The coreapp scans its backlog only when its
    session starts: a row queued afterwards is claimed by a hand-off or by nothing."""
    cluster.start_master("master1")
    cluster.start_coreapp("wacore1", ("--backlog-interval", "3600"))
    eventually(lambda: cluster.primary_master(), 30, what="a primary master")
    cluster.register()
    return eventually(lambda: connected(cluster), 30, what="shard 0 connected")[0][0]


def test_a_hand_off_without_the_clusters_token_is_refused_and_claims_nothing(cluster):
    owner = served_owner(cluster)
    address = control_address(cluster, owner)
    queue_rows(cluster, [("forged-1", "+15558600000", 0)])
    hand_off = {"shard": 0, "messages": [{"id": "forged-1"}]}
    for headers in REFUSED_HEADERS:
        assert_refused(*call(address, "POST", "/messages", headers, hand_off))
    assert cluster.query("SELECT status FROM messages WHERE id = 'forged-1'") == [("queued",)]
    # The row was left alone: the cluster's own hand-off is the one that claims it.
    status, reply = call(address, "POST", "/messages", cluster.control_headers(), hand_off)
    assert (status, reply["claimed"]) == (202, ["forged-1"]), reply
    eventually(lambda: "forged-1" in delivered_ids(cluster), 30, what="the cluster's hand-off delivered")
    assert cluster.gateway()["duplicates"] == 0


def test_a_heartbeat_without_the_clusters_token_is_refused(cluster):
    owner = served_owner(cluster)
    address = control_address(cluster, owner)
    for headers in REFUSED_HEADERS:
        assert_refused(*call(address, "GET", "/heartbeat", headers))
    status, beat = call(address, "GET", "/heartbeat", cluster.control_headers())
    assert status == 200 and (beat["name"], beat["serving"], beat["shard"]) == (owner, True, 0), beat


def test_refusals_are_logged_once_per_caller_not_once_per_call(cluster):
    owner = served_owner(cluster)
    address = control_address(cluster, owner)
    for _ in range(20):
        assert_refused(*call(address, "GET", "/heartbeat", ANOTHER_CLUSTERS))
    log = cluster.roles[owner]

    def refusal_lines():
        return [line for line in log.output().splitlines() if "refused GET /heartbeat from 127.0.0.1" in line]
    eventually(refusal_lines, 10, what="the refusal logged")
    assert len(refusal_lines()) == 1, refusal_lines()


def test_a_master_with_another_token_gets_no_heartbeat_answered(cluster):
    owner = served_owner(cluster)
    intruder = cluster.start_master("intruder", env={Env.INTERNAL_TOKEN: OTHER_TOKEN})

    def tried_by_both():
        rows = dict(((m, c), ok) for m, c, ok in cluster.query(
            "SELECT master, coreapp, last_ok_at IS NOT NULL FROM heartbeats WHERE coreapp = %s", (owner,)))
        return rows if len(rows) == 2 else None
    rows = eventually(tried_by_both, 30, what="both masters' heartbeats recorded")
    assert rows == {("master1", owner): True, ("intruder", owner): False}, rows
    eventually(lambda: "refused this master's internal token (401)" in intruder.output(), 10,
               what="the intruder told why")
