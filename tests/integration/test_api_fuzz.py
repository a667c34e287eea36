"""Property-based fuzzing of a running webapp against its own OpenAPI document: no 5xx and no
response that contradicts the document."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from wacluster.runtime.sandbox import registration_code
from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import LocalCluster

pytestmark = pytest.mark.integration


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
             "--header", f"Authorization: Bearer {api.token}", "--tls-verify", "false",
             "--max-examples", "20", "--generation-deterministic", "--request-timeout", "15"],
            capture_output=True, text=True, timeout=600)
        summary = result.stdout[-3000:]
        assert result.returncode == 0, summary + result.stderr[-2000:]
        counts = re.search(r"(\d+) generated, (\d+) passed", summary)
        assert counts and int(counts.group(1)) > 100 and counts.group(1) == counts.group(2), summary
        assert "unhandled error on" not in webapp.output()  # no request reached our 500 path
    finally:
        cluster.stop_all()
