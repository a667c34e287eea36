"""Fixtures shared by every suite.

Servers start lazily: a unit test requests none of these fixtures and starts nothing. The control
plane and PostgreSQL are session-scoped and private to this pytest process (a name derived from
its pid), so two pytest sessions side by side never share a server or a database.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from wacluster_testenv.controlplane import ControlPlane
from wacluster_testenv.environment import state_root
from wacluster_testenv.postgres import Postgres


def pytest_configure(config) -> None:
    """SIGTERM (a CI time limit, `timeout`, a killed terminal) ends the session like Ctrl-C, so the
    session's control plane and PostgreSQL are torn down instead of left running."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, interrupt)


def _session_dir() -> Path:
    return state_root() / f"pytest-{os.getpid()}"


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """A kubeconfig with admin rights: an existing cluster from WACLUSTER_KUBECONFIG, else a
    fresh local control plane for this session."""
    existing = os.environ.get("WACLUSTER_KUBECONFIG")
    if existing:
        yield existing
        return
    control_plane = ControlPlane(_session_dir() / "k8s").up()
    try:
        yield str(control_plane.kubeconfig)
    finally:
        control_plane.down()
        _remove_session_dir_if_empty()


@pytest.fixture(scope="session")
def control_plane(kubeconfig) -> ControlPlane | None:
    """The local control plane object (None when running against WACLUSTER_KUBECONFIG)."""
    if os.environ.get("WACLUSTER_KUBECONFIG"):
        return None
    return ControlPlane(_session_dir() / "k8s")


@pytest.fixture(scope="session")
def postgres_server() -> Postgres:
    # Fast (no fsync, asynchronous commit): no test restarts this shared server, and `restart`
    # refuses one started this way. A test that restarts PostgreSQL starts a durable one of its own.
    server = Postgres(_session_dir() / "pg", durable=False).up()
    try:
        yield server
    finally:
        server.down()
        _remove_session_dir_if_empty()


def _remove_session_dir_if_empty() -> None:
    try:
        _session_dir().rmdir()
    except OSError:
        pass  # the other server still runs there


@pytest.fixture
def pg_dsn(postgres_server: Postgres) -> str:
    """A fresh database of its own for one test, dropped afterwards."""
    dsn = postgres_server.create_database()
    try:
        yield dsn
    finally:
        postgres_server.drop_database(dsn)


@pytest.fixture
async def kube_api(kubeconfig):
    """An async Kubernetes API client with admin credentials."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture
async def namespace(kube_api) -> str:
    """A fresh namespace for one test; deleted (without waiting) afterwards."""
    from kubernetes_asyncio import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        await core.delete_namespace(name)
