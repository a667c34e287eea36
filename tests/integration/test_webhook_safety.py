"""Outgoing webhooks are signed, go only where the cluster allows and never follow a redirect."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from runtime_cluster import webapp as logged_in_webapp
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import WEBHOOK_SIGNING_KEY, LocalCluster
from wacluster_testenv.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.integration


class Receiver:
    """What the receiver got, as (path, headers, body); `/redirect` answers 302 to `/target`."""

    received: list = []


@pytest.fixture
def receiver():
    redirect = lambda path: (302, {"Location": "/target"}) if path == "/redirect" else (200, {})  # noqa: E731
    with webhook_receiver(redirect) as (url, deliveries):
        Receiver.received = deliveries
        yield url


@pytest.fixture
def cluster(lone_webapp) -> LocalCluster:
    return lone_webapp


def webapp(cluster: LocalCluster, url: str, **options) -> ApiClient:
    """A logged-in webapp whose webhooks go to `url`."""
    api = logged_in_webapp(cluster, **options)
    assert api.request("PATCH", "/v1/settings/application", {"webhooks": {"url": url}}).status == 200
    return api


def queue_event(cluster: LocalCluster, payload: dict) -> int:
    return cluster.query("INSERT INTO webhook_events (payload) VALUES (%s::jsonb) RETURNING id", (json.dumps(payload),))[0][0]


def event(cluster: LocalCluster, event_id: int) -> tuple:
    return cluster.query("SELECT delivered_at IS NOT NULL, attempts, last_error FROM webhook_events WHERE id = %s",
                         (event_id,))[0]


def test_every_webhook_is_signed_over_its_raw_body(cluster, receiver):
    webapp(cluster, f"{receiver}/hook")
    queue_event(cluster, {"statuses": [{"id": "wamid.1", "status": "delivered"}]})
    path, headers, body = eventually(lambda: Receiver.received and Receiver.received[0], 30, what="the webhook")
    expected = "sha256=" + hmac.new(WEBHOOK_SIGNING_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Wacluster-Signature-256"], expected)
    assert json.loads(body) == {"statuses": [{"id": "wamid.1", "status": "delivered"}]}


def test_a_name_resolving_to_loopback_is_refused_at_delivery_unless_allowed(cluster, receiver):
    # A name passes when set (it may resolve elsewhere later); the resolver refuses its address.
    webapp(cluster, f"{receiver.replace('127.0.0.1', 'localhost')}/hook", webhook_allowed_networks="")
    event_id = queue_event(cluster, {"statuses": []})
    delivered, attempts, error = eventually(lambda: (e := event(cluster, event_id))[1] >= 1 and e[2] and e, 30,
                                            what="a failed attempt")
    assert not delivered and "loopback" in error
    assert Receiver.received == []


def test_redirects_are_not_followed(cluster, receiver):
    webapp(cluster, f"{receiver}/redirect")
    event_id = queue_event(cluster, {"statuses": []})
    delivered, attempts, error = eventually(lambda: (e := event(cluster, event_id))[2] and e, 30, what="a failed attempt")
    assert not delivered and "redirect" in error
    assert [path for path, _, _ in Receiver.received] == ["/redirect"] * len(Receiver.received)


def test_a_webhook_url_aimed_inside_the_cluster_is_refused_when_set(cluster, receiver):
    api = webapp(cluster, "https://hooks.example.com/ok")
    for url, why in [("http://169.254.169.254/latest/", "link-local"), ("http://10.96.0.1/", "private"),
                     ("http://[::1]:9090/", "loopback")]:
        reply = api.request("PATCH", "/v1/settings/application", {"webhooks": {"url": url}})
        assert reply.status == 400 and why in reply.error["details"], (url, reply.body)
    assert api.request("GET", "/v1/settings/application").body["settings"]["application"]["webhooks"]["url"] \
        == "https://hooks.example.com/ok"
