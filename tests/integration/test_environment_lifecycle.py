"""A second environment runs beside the session's own and `down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket

import psycopg
import pytest

from wacluster_testenv.environment import Environment

pytestmark = pytest.mark.harness


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_second_environment_runs_in_parallel_and_down_stops_everything(kubeconfig, postgres_server, pg_dsn):
    env = Environment(f"parallel-{os.getpid()}")
    try:
        summary = env.up()
        processes = env.control_plane.state_dir / "processes.json"
        pids = json.loads(processes.read_text())
        ports = env.control_plane.info()["ports"]
        assert summary["kubeconfig"] != kubeconfig
        assert summary["postgres_port"] != postgres_server.port
        # The session's database is not reachable through the other server: different clusters.
        other_dsn = pg_dsn.replace(f":{postgres_server.port}/", f":{summary['postgres_port']}/")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(other_dsn, connect_timeout=5).close()
        nodes = env.control_plane.kubectl("get", "nodes", "-o", "name").split()
        assert len(nodes) == 3
    finally:
        stopped = env.down()
    assert set(stopped) >= {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "postgres"}
    for entry in pids.values():
        assert not os.path.exists(f"/proc/{entry['pid']}") or _zombie(entry["pid"])
    for port in [*ports.values(), summary["postgres_port"]]:
        assert not _listening(port), f"port {port} still listening after down"
    assert not env.directory.exists()


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] == "Z"
