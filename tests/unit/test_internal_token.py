"""Only the cluster's own roles may call a coreapp's control port: the operator generates one
token per cluster (the Secret <cluster>-internal) and gives it to masters, coreapps and webapps
only; the control port answers any call without it with a 401 in the API's error shape and logs
refusals at most once per interval per caller; a role without the token does not start."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from contextlib import asynccontextmanager

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wacluster.api.interprocess import Env, Role
from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.resources.cluster import owned_objects
from wacluster.resources.pods import ClusterView
from wacluster.resources.secrets import generated_secrets
from wacluster.runtime.coreapp.control import control_app
from wacluster.runtime.coreapp.role import Coreapp
from wacluster.runtime.internal_auth import RefusalLog, bearer, internal_token
from wacluster.runtime.node import NodeIdentity

pytestmark = pytest.mark.unit

TOKEN = "the-clusters-internal-token-0123"


def _view(**spec) -> ClusterView:
    return ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec.model_validate(spec), "1.0.0")


# --- the operator ----------------------------------------------------------------------------------


def test_the_operator_generates_one_internal_token_secret_per_cluster():
    secrets = {s["metadata"]["name"]: s for s in generated_secrets(_view(), lambda: "generated-value")}
    secret = secrets["wa-internal"]
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    assert secret["data"] == {"token": base64.b64encode(b"generated-value").decode()}
    assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == "wa"


@pytest.mark.parametrize("spec", [{}, {"gateway": {"mode": "external", "endpoint": "https://gw.example"}}])
def test_only_masters_coreapps_and_webapps_get_the_internal_token(spec):
    given = {}
    for obj in owned_objects(_view(**spec), "1.0.1"):
        for container in ((obj.get("spec", {}).get("template") or {}).get("spec", {}).get("containers", [])):
            refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if e["name"] == Env.INTERNAL_TOKEN]
            given[f"{obj['kind']}/{obj['metadata']['name']}"] = refs
    wanted = {"Deployment/wa-master", "Deployment/wa-coreapp", "Deployment/wa-webapp"}
    assert {name for name, refs in given.items() if refs} == wanted, given
    for name in wanted:
        assert given[name] == [{"name": "wa-internal", "key": "token"}], name
    assert given["Job/wa-dbupgrade-1-0-1"] == [] and given.get("Deployment/wa-sandbox", []) == []


# --- the control port --------------------------------------------------------------------------------


class UntouchedDatabase:
    """A coreapp's pool that records every use: a refused call must never reach the database."""

    def __init__(self) -> None:
        self.used = 0

    @asynccontextmanager
    async def connection(self, timeout=None):
        self.used += 1
        raise AssertionError("a refused call reached the database")
        yield


@asynccontextmanager
async def control_port(pool):
    coreapp = Coreapp(NodeIdentity("wacore1", "n1", "test", "127.0.0.1:0"), pool, "http://unused")
    async with TestClient(TestServer(control_app(coreapp, TOKEN))) as client:
        yield client


CALLS = [("GET", "/heartbeat", None), ("POST", "/messages", {"shard": 0, "messages": [{"id": "m1"}]}),
         ("GET", "/no-such-path", None)]
WRONG = [None, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Bearer {TOKEN}x"},
         {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}, {"Authorization": TOKEN}]


@pytest.mark.parametrize("method, path, body", CALLS)
@pytest.mark.parametrize("headers", WRONG)
async def test_a_call_without_the_clusters_token_gets_a_401_and_does_nothing(method, path, body, headers):
    pool = UntouchedDatabase()
    async with control_port(pool) as client:
        resp = await client.request(method, path, json=body, headers=headers)
        reply = await resp.json()
    assert resp.status == 401, reply
    (error,) = reply["errors"]
    assert error["code"] == 1005 and "<cluster>-internal" in error["details"], reply
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert pool.used == 0


async def test_a_call_with_the_clusters_token_is_served():
    async with control_port(UntouchedDatabase()) as client:
        beat = await client.get("/heartbeat", headers=bearer(TOKEN))
        assert beat.status == 200 and (await beat.json())["name"] == "wacore1"
        # A standby refuses the batch itself (409), past the token check.
        hand_off = await client.post("/messages", json={"shard": 0, "messages": [{"id": "m1"}]}, headers=bearer(TOKEN))
        assert hand_off.status == 409, await hand_off.text()


def test_refusals_are_logged_at_most_once_per_interval_per_caller(caplog):
    now = [0.0]
    refusals = RefusalLog(logging.getLogger("test.refusals"), every=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for i in range(100):
            now[0] = i * 0.5
            refusals.refused("10.0.0.1", "GET /heartbeat", "no bearer token")
        refusals.refused("10.0.0.2", "POST /messages", "a wrong bearer token")
        now[0] = 61.0
        refusals.refused("10.0.0.1", "GET /heartbeat", "no bearer token")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "10.0.0.1" in lines[0] and "10.0.0.2" in lines[1]
    assert "10.0.0.1" in lines[2] and "99 more" in lines[2]


def test_the_refusal_log_remembers_a_bounded_number_of_callers():
    now = [0.0]
    refusals = RefusalLog(logging.getLogger("test.refusals"), every=60, clock=lambda: now[0], max_peers=8)
    for i in range(1000):
        refusals.refused(f"10.0.{i // 256}.{i % 256}", "GET /heartbeat", "no bearer token")
    assert len(refusals.peers) <= 8


# --- reading the token ---------------------------------------------------------------------------------


def test_the_token_is_read_from_the_environment_without_surrounding_whitespace():
    assert internal_token({Env.INTERNAL_TOKEN: f"  {TOKEN}\n"}) == TOKEN


@pytest.mark.parametrize("value", [None, "", "   ", "short", "has a space in the middle of it",
                                   "tab\tinside-the-token-value"])
def test_a_missing_or_unusable_token_is_a_configuration_error(value):
    env = {} if value is None else {Env.INTERNAL_TOKEN: value}
    with pytest.raises(RuntimeError, match=Env.INTERNAL_TOKEN):
        internal_token(env)


@pytest.mark.parametrize("role", [Role.MASTER, Role.COREAPP, Role.WEBAPP])
def test_a_role_started_without_the_token_exits_non_zero_saying_so(role, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != Env.INTERNAL_TOKEN}
    # Nothing else is missing, and nothing real is reachable should the role start regardless.
    env.update({Env.DATABASE_URL: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
                Env.ADMIN_PASSWORD: "admin-password", Env.WEBHOOK_SIGNING_KEY: "signing-key",
                "KUBECONFIG": str(tmp_path / "no-kubeconfig")})
    argv = [sys.executable, "-m", "wacluster", role, "--metrics-port", "0", "--host", "127.0.0.1"]
    if role != Role.MASTER:
        argv += ["--port", "0"]
    if role == Role.WEBAPP:
        argv += ["--plain-http", "--media-dir", str(tmp_path / "media")]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"wacluster {role}: {Env.INTERNAL_TOKEN} is not set" in result.stderr, result.stderr
