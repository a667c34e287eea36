"""Fixtures of the integration suite: the CRD installed, the operator running under its own
ServiceAccount, and a small synchronous kubectl wrapper."""

from __future__ import annotations

import pytest

from wacluster_testenv.localcluster import LocalCluster
from operator_harness import OperatorProcess, install_crd, kubectl, operator_kubeconfig


@pytest.fixture(scope="session")
def crd(kubeconfig) -> None:
    install_crd(kubeconfig)


@pytest.fixture(scope="session")
def operator_config(kubeconfig, crd, tmp_path_factory) -> str:
    return operator_kubeconfig(kubeconfig, tmp_path_factory.mktemp("operator"))


@pytest.fixture(scope="session")
def running_operator(operator_config, tmp_path_factory) -> OperatorProcess:
    proc = OperatorProcess(operator_config, tmp_path_factory.mktemp("operator-log") / "operator.log").start()
    proc.wait_log("leads the operator", timeout=60)
    yield proc
    proc.stop()


@pytest.fixture
def k(kubeconfig):
    """kubectl with admin credentials: k("get", "pods", "-n", ns)."""
    return lambda *args, **kw: kubectl(kubeconfig, *args, **kw)


@pytest.fixture
def cluster(kubeconfig, pg_dsn, tmp_path) -> LocalCluster:
    """The runtime's ground: the schema applied, the test settings, the sandbox gateway; each test
    starts the roles it needs (runtime_cluster.start) and everything is stopped afterwards."""
    c = LocalCluster(kubeconfig, pg_dsn, "default", tmp_path)
    result = c.dbupgrade()
    assert result.returncode == 0, result.stderr
    c.configure()
    c.start_sandbox()
    yield c
    c.stop_all()


@pytest.fixture
def lone_webapp(kubeconfig, pg_dsn, tmp_path) -> LocalCluster:
    """Only the schema and whatever the test starts (typically one webapp): for the API's own
    behaviour, with no master, coreapp or gateway behind it."""
    c = LocalCluster(kubeconfig, pg_dsn, "default", tmp_path)
    assert c.dbupgrade().returncode == 0
    yield c
    c.stop_all()
