"""Property-based fuzzing of a running webapp against its own OpenAPI document: no 5xx and no
response that contradicts the document."""

from __future__ import annotations

import http.client
import re
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from wacluster.runtime.sandbox import registration_code
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import LocalCluster

pytestmark = pytest.mark.integration


HOSTILE_WEBHOOK_URLS = ["http://169.254.169.254/latest/meta-data/", "http://[::1]:9090/", "http://10.96.0.1/",
                        "file:///etc/passwd", "http://user:pass@127.0.0.1/", "gopher://127.0.0.1:6379/_INFO",
                        "http://" + "a" * 5000 + ".example/"]


def hostile_replies(api: ApiClient) -> list[tuple[str, int]]:
    """What no schema generates: non-ASCII and oversized credentials, chunked bodies, webhook URLs
    aimed inside the cluster. Returns (case, status) for each."""
    replies = []
    for user, password in [("ädmin", "pässwörd"), ("管理员", "密码"), ("admin", "x" * 100_000), ("a" * 10_000, "")]:
        replies.append((f"login {user[:8]!r}", ApiClient(api.base_url).login(user, password).status))
    for size in (10, 70 * 1024, 600 * 1024):
        status, _ = post_chunked(api, "/v1/messages", b'{"to": "1", "text": "' + b"x" * size + b'"}')
        replies.append((f"chunked {size} bytes", status))
    for url in HOSTILE_WEBHOOK_URLS:
        replies.append((f"webhook {url[:40]}", api.request("PATCH", "/v1/settings/application",
                                                           {"webhooks": {"url": url}}).status))
    return replies


def post_chunked(api: ApiClient, path: str, body: bytes) -> tuple[int, bytes]:
    host, port = api.base_url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ssl._create_unverified_context(), timeout=30)
    conn.request("POST", path, body=(body[i:i + 8192] for i in range(0, len(body), 8192)), encode_chunked=True,
                 headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    status, payload = response.status, response.read()
    conn.close()
    return status, payload


def test_fuzzed_requests_get_no_server_error_and_match_the_document(kubeconfig, pg_dsn, tmp_path):
    cluster = LocalCluster(kubeconfig, pg_dsn, "default", tmp_path)
    assert cluster.dbupgrade().returncode == 0
    cluster.configure()
    cluster.start_sandbox()
    try:
        cluster.start_master("master1")
        cluster.start_coreapp("wacore1")
        cluster.start_coreapp("wacore2")
        webapp = cluster.start_webapp(password="fuzz-password")
        api = ApiClient(f"https://127.0.0.1:{webapp.port}")
        assert api.login("admin", "fuzz-password").status == 200
        api.request("POST", "/v1/account", {"cc": "1", "phone_number": "5550001111"})
        assert api.request("POST", "/v1/account/verify", {"code": registration_code("+15550001111")}).status == 201
        eventually(lambda: cluster.shard_owners().get(0, (None,))[0], 30, what="a connected coreapp")
        result = subprocess.run(
            [str(Path(sys.executable).parent / "st"), "run", f"{api.base_url}/v1/openapi.json",
             "--checks", "not_a_server_error,response_schema_conformance",
             # Logout revokes the fuzzer's own token: every request after it would be a 401.
             "--exclude-path", "/v1/users/logout",
             "--header", f"Authorization: Bearer {api.token}", "--tls-verify", "false",
             "--max-examples", "20", "--generation-deterministic", "--request-timeout", "15"],
            capture_output=True, text=True, timeout=600)
        summary = result.stdout[-3000:]
        assert result.returncode == 0, summary + result.stderr[-2000:]
        counts = re.search(r"(\d+) generated, (\d+) passed", summary)
        assert counts and int(counts.group(1)) > 100 and counts.group(1) == counts.group(2), summary
        hostile = hostile_replies(api)
        assert all(status < 500 for _, status in hostile), hostile
        assert "unhandled error on" not in webapp.output()  # no request reached our 500 path
    finally:
        cluster.stop_all()
