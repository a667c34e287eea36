"""Fixtures of the integration suite: the CRD installed, the operator running under its own
ServiceAccount, and a small synchronous kubectl wrapper."""

from __future__ import annotations

import pytest

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
