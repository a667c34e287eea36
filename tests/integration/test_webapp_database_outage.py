"""With PostgreSQL down, the webapp answers at once with 503 and Retry-After in the API's error
shape, naming the database; when PostgreSQL is back it serves again without a restart."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from wacluster_testenv.apiclient import ApiClient
from wacluster_testenv.eventually import eventually
from wacluster_testenv.localcluster import LocalCluster
from wacluster_testenv.postgres import Postgres
from wacluster_testenv.state import state_root

pytestmark = pytest.mark.integration
PASSWORD = "secret-admin-password"
DOWN_FOR = 20.0  # long enough to be seen down by several requests, and longer than a shard lease here


@pytest.fixture
def server():
    pg = Postgres(state_root() / f"outage-{os.getpid()}-{uuid.uuid4().hex[:6]}").up()
    yield pg
    pg.down()


def test_the_api_answers_503_while_the_database_is_down_and_recovers_by_itself(kubeconfig, server, tmp_path):
    cluster = LocalCluster(kubeconfig, server.create_database(), "default", tmp_path)
    try:
        assert cluster.dbupgrade().returncode == 0
        role = cluster.start_webapp(password=PASSWORD)
        api = ApiClient(f"https://127.0.0.1:{role.port}")
        assert api.login("admin", PASSWORD).status == 200
        assert api.request("GET", "/v1/settings/application").status == 200
        outage = threading.Thread(target=server.restart, kwargs={"down_for": DOWN_FOR})
        outage.start()
        down = eventually(lambda: (r := api.request("GET", "/v1/settings/application")).status != 200 and r,
                          DOWN_FOR, what="the outage seen by the API")
        assert down.status == 503 and down.headers.get("Retry-After") == "5"
        assert down.error["code"] == 1011 and "database" in down.error["details"]
        outage.join()
        eventually(lambda: api.request("GET", "/v1/settings/application").status == 200, 60,
                   what="the API serving again after PostgreSQL came back")
        assert role.alive, "the webapp restarted or died instead of recovering"
    finally:
        cluster.stop_all()
