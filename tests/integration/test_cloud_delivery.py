"""Delivery through the Cloud API driver (runtime/coreapp/cloud_gateway.py), as real processes: a
webapp, masters and coreapps in `WACLUSTER_GATEWAY_MODE=cloud` against the local Cloud API
(wacluster_testenv.cloudapi) on loopback. Each accepted message reaches the Cloud API once with
our id in biz_opaque_callback_data and its wamid stored; transient errors and throttling never
lose one; a permanent error fails it with an on-premises status webhook; a refused token pauses
sending (health says so) until it is accepted again; a killed owner's in-doubt sends are resent
after the window and counted; the access token never appears in a log."""

from __future__ import annotations

import re
import signal
import urllib.request

import pytest

from runtime_cluster import connected, webapp
from wacluster_testenv.cloudapi_thread import ServedCloudApi
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port

pytestmark = pytest.mark.integration

TOKEN = "EAAG-cloud-token-never-logged-4f1d2c"
SECRET = "cloud-app-secret"


class LocalCloud(ServedCloudApi):
    """The local Cloud API with this suite's token and app secret, served from its own thread."""

    def __init__(self, **config) -> None:
        super().__init__(access_token=TOKEN, app_secret=SECRET, **config)


@pytest.fixture
def cloud():
    with LocalCloud() as served:
        yield served


def start_cloud_cluster(cluster, cloud: LocalCloud, coreapps: int = 1, masters: int = 1,
                        args: tuple[str, ...] = (), messages_per_second: float | None = None) -> dict[str, int]:
    """Masters, coreapps in cloud mode (each with a metrics port, returned by name), the account."""
    cluster.use_cloud_api(cloud.base, TOKEN, cloud.api.phone_number_id, messages_per_second)
    for i in range(1, masters + 1):
        cluster.start_master(f"master{i}")
    ports = {}
    for i in range(1, coreapps + 1):
        ports[f"wacore{i}"] = free_port()
        cluster.start_coreapp(f"wacore{i}", (*args, "--metrics-port", str(ports[f"wacore{i}"])))
    eventually(lambda: cluster.primary_master(), 30, what="a primary master")
    cluster.register()
    eventually(lambda: connected(cluster), 30, what="shard 0 served through the Cloud API",
               details=lambda: logs(cluster)[-3000:])
    return ports


def logs(cluster) -> str:
    return "\n".join(role.output() for role in cluster.roles.values())


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def statuses(cluster, ids) -> dict[str, str]:
    return dict(cluster.query("SELECT id, status FROM messages WHERE id = ANY(%s)", (list(ids),)))


def all_delivered(cluster, ids) -> bool:
    return set(statuses(cluster, ids).values()) == {"delivered"}


def assert_token_never_logged(cluster) -> None:
    assert TOKEN not in logs(cluster)


def test_messages_reach_the_cloud_api_once_each_with_our_id_and_their_wamid_stored(cluster, cloud):
    start_cloud_cluster(cluster, cloud)
    api = webapp(cluster)
    ids = []
    for n in range(20):
        reply = api.send_text(f"+1555700{n:04d}", f"hello {n}")
        assert reply.status == 201, reply.body
        ids.append(reply.body["messages"][0]["id"])
    eventually(lambda: all_delivered(cluster, ids), 60, what="every message delivered",
               details=lambda: str(statuses(cluster, ids)))
    assert cloud.api.counts() == {i: 1 for i in ids}
    stored = dict(cluster.query("SELECT id, wamid FROM messages WHERE id = ANY(%s)", (ids,)))
    assert stored == {i: cloud.api.find(callback_data=i).wamid for i in ids}
    send = cloud.api.find(callback_data=ids[3])
    assert send.body["text"] == {"body": "hello 3"} and send.to == "+15557000003"
    assert_token_never_logged(cluster)


def test_a_server_error_is_retried_until_the_message_is_delivered(cluster, cloud):
    start_cloud_cluster(cluster, cloud)
    api = webapp(cluster)
    cloud.fault(count=3, status=503)
    reply = api.send_text("+15557100001", "after three 503s")
    assert reply.status == 201
    message_id = reply.body["messages"][0]["id"]
    eventually(lambda: all_delivered(cluster, [message_id]), 60, what="the message delivered after the 503s",
               details=lambda: logs(cluster)[-3000:])
    assert cloud.api.counts() == {message_id: 1}
    assert "Graph API service temporarily unavailable; sending again later" in cluster.roles["wacore1"].output()


def test_a_permanent_error_fails_the_message_with_an_on_prem_status_webhook(cluster, cloud):
    cluster.configure(webhook_url="http://127.0.0.1:9/hooks")  # the event is queued; nobody need take it
    start_cloud_cluster(cluster, cloud)
    api = webapp(cluster)
    cloud.fault(code=131026, to="+15557200001")
    failing = api.send_text("+15557200001", "to a number that is not on WhatsApp").body["messages"][0]["id"]
    fine = api.send_text("+15557200002", "to a number that is").body["messages"][0]["id"]
    eventually(lambda: statuses(cluster, [failing, fine]) == {failing: "failed", fine: "delivered"}, 60,
               what="one message failed, the other delivered", details=lambda: logs(cluster)[-3000:])
    events = [row[0] for row in cluster.query(
        "SELECT payload FROM webhook_events WHERE payload::text LIKE %s", (f"%{failing}%",))]
    assert len(events) == 1
    (status,) = events[0]["statuses"]
    assert status["id"] == failing and status["status"] == "failed" and status["recipient_id"] == "15557200001"
    assert status["errors"][0]["code"] == 1013 and status["errors"][0]["title"] == "User is not valid"
    assert "131026" in status["errors"][0]["details"]
    assert cloud.api.counts() == {fine: 1}


def test_a_refused_token_pauses_sending_shows_in_health_and_resumes_once_accepted(cluster, cloud):
    start_cloud_cluster(cluster, cloud, args=("--cloud-pause-check-interval", "0.5"))
    api = webapp(cluster)
    cloud.api.access_token = "a-token-meta-revoked"
    first = api.send_text("+15557300001", "while the token is refused").body["messages"][0]["id"]

    def paused():
        node = next((v for k, v in api.health().items() if k.startswith("wacore1:")), {})
        return node.get("gateway_status") == "paused" and node
    node = eventually(paused, 30, what="health showing the coreapp paused", details=lambda: str(api.health()))
    assert "190" in node["errors"][0]["details"]
    assert statuses(cluster, [first]) == {first: "claimed"}  # kept, not failed
    assert cloud.api.counts() == {}
    cloud.api.access_token = TOKEN
    eventually(lambda: all_delivered(cluster, [first]), 30, what="sending resumed once the token is accepted")
    eventually(lambda: next(v for k, v in api.health().items() if k.startswith("wacore1:"))
               .get("gateway_status") == "connected", 30, what="health connected again")
    assert cloud.api.counts() == {first: 1}
    assert cluster.roles["wacore1"].output().count("sending paused for phone number") == 1  # logged once
    assert_token_never_logged(cluster)


def test_throttling_slows_the_sender_and_loses_nothing(cluster, cloud):
    cloud.api.messages_per_second = 5
    ports = start_cloud_cluster(cluster, cloud, messages_per_second=80)
    api = webapp(cluster)
    ids = [api.send_text(f"+1555740{n:04d}", f"burst {n}").body["messages"][0]["id"] for n in range(40)]
    eventually(lambda: all_delivered(cluster, ids), 120, what="every throttled message delivered",
               details=lambda: str(statuses(cluster, ids)))
    assert cloud.api.counts() == {i: 1 for i in ids}
    assert metric(ports["wacore1"], "wacluster_cloud_throttled_total") >= 1
    assert metric(ports["wacore1"], "wacluster_cloud_send_rate_limit") <= 40


def test_a_planned_handoff_leaves_the_paced_queue_to_the_successor_and_nothing_in_doubt(cluster, cloud):
    """SIGTERM with 40 messages queued at 5 a second: the drain waited for the whole paced queue
    and hit its deadline (the successor then sent the rest); now it finishes the sends under way,
    hands the rest over unstarted, and nothing is in doubt or sent twice."""
    ports = start_cloud_cluster(cluster, cloud, coreapps=2, messages_per_second=5)
    api = webapp(cluster)
    owner = connected(cluster)[0][0]
    successor = "wacore2" if owner == "wacore1" else "wacore1"
    ids = [api.send_text(f"+1555751{n:04d}", f"handoff {n}").body["messages"][0]["id"] for n in range(40)]
    eventually(lambda: len(cloud.api.sends) >= 3, 30, what="sending under way")
    cluster.roles[owner].signal(signal.SIGTERM)
    assert cluster.roles[owner].wait(20) is not None
    leaving = cluster.roles[owner].output()
    assert "handed shard 0 to" in leaving and "still unsettled after" not in leaving, leaving[-3000:]
    eventually(lambda: all_delivered(cluster, ids), 60, what="the rest delivered by the successor",
               details=lambda: str(cluster.query("SELECT status, count(*) FROM messages GROUP BY status")))
    assert cloud.api.counts() == {i: 1 for i in ids}
    assert metric(ports[successor], "wacluster_cloud_in_doubt_resent_total") == 0
    assert "were being sent when their session ended" not in cluster.roles[successor].output()


def test_a_killed_owners_in_doubt_sends_are_resent_after_the_window_and_counted(cluster, cloud):
    ports = start_cloud_cluster(cluster, cloud, coreapps=2, masters=2, args=("--cloud-in-doubt-window", "2"))
    api = webapp(cluster)
    owner = connected(cluster)[0][0]
    successor = "wacore2" if owner == "wacore1" else "wacore1"
    cloud.fault(count=30, latency=2.0)  # the first 30 sends take 2 s: in flight when the owner dies
    ids = [api.send_text(f"+1555750{n:04d}", f"failover {n}").body["messages"][0]["id"] for n in range(60)]
    eventually(lambda: cluster.query("SELECT count(*) FROM messages WHERE send_started_at IS NOT NULL "
                                     "AND status = 'claimed'")[0][0] >= 10, 30, what="sends in flight")
    cluster.roles[owner].signal(signal.SIGKILL)
    eventually(lambda: all_delivered(cluster, ids), 120, what="every message delivered by the new owner",
               details=lambda: str(cluster.query("SELECT status, count(*) FROM messages GROUP BY status")))
    resent = metric(ports[successor], "wacluster_cloud_in_doubt_resent_total")
    duplicates = cloud.api.duplicates()
    print(f"in doubt and resent: {resent:g}; duplicates the Cloud API counted: {len(duplicates)}")
    assert set(cloud.api.counts()) == set(ids)
    # Every duplicate is a send that was in flight when its owner died, resent after the window.
    assert resent >= 1
    assert len(duplicates) <= resent and all(n == 2 for n in duplicates.values())
    assert "sending them again (the recipient may get them twice)" in cluster.roles[successor].output()
    assert_token_never_logged(cluster)
