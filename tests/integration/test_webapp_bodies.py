"""Body limits hold on the stream: a chunked body (no Content-Length) is held to the same 64 KiB
as a declared one, and is refused in the API's error shape."""

from __future__ import annotations

import http.client
import json
import ssl

import pytest

from runtime_cluster import webapp
from wacluster_testenv.apiclient import ApiClient

pytestmark = pytest.mark.integration


@pytest.fixture
def api(lone_webapp) -> ApiClient:
    return webapp(lone_webapp)


def post_chunked(api: ApiClient, path: str, body: bytes) -> tuple[int, dict]:
    host, port = api.base_url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ssl._create_unverified_context(), timeout=30)
    pieces = (body[i:i + 8192] for i in range(0, len(body), 8192))
    conn.request("POST", path, body=pieces, encode_chunked=True,
                 headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    status, payload = response.status, json.loads(response.read() or b"{}")
    conn.close()
    return status, payload


def test_a_chunked_json_body_over_the_limit_is_refused(api):
    body = json.dumps({"to": "15551234567", "type": "text", "text": {"body": "x" * (200 * 1024)}}).encode()
    status, payload = post_chunked(api, "/v1/messages", body)
    assert status == 413
    assert "64 KiB" in payload["errors"][0]["details"]


def test_a_chunked_json_body_under_the_limit_is_read(api):
    status, payload = post_chunked(api, "/v1/messages", json.dumps({"to": "15551234567", "type": "text"}).encode())
    assert status == 400  # read and validated: the text object is missing
    assert "text" in payload["errors"][0]["details"]
