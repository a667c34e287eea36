"""Login compares credentials as bytes, both of them every time: any text is a wrong password
(401 in the API's error shape), never a server error."""

from __future__ import annotations

import pytest

from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.localcluster import LocalCluster

pytestmark = pytest.mark.integration
PASSWORD = "pässwörd-ünïcode-密码"


@pytest.fixture
def api(kubeconfig, pg_dsn, tmp_path) -> ApiClient:
    cluster = LocalCluster(kubeconfig, pg_dsn, "default", tmp_path)
    assert cluster.dbupgrade().returncode == 0
    role = cluster.start_webapp(password=PASSWORD)
    yield ApiClient(f"https://127.0.0.1:{role.port}")
    cluster.stop_all()


@pytest.mark.parametrize("user,password", [("ädmin", PASSWORD), ("admin", "wrong-ü"), ("管理员", "x" * 4096)])
def test_non_ascii_or_oversized_credentials_are_refused_not_a_server_error(api, user, password):
    reply = api.login(user, password)
    assert reply.status == 401
    assert reply.error["title"] and "wrong user name or password" in reply.error["details"]


def test_a_non_ascii_admin_password_logs_in(api):
    assert api.login("admin", PASSWORD).status == 200
