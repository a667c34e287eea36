"""`wacluster webapp --workers N`: N processes serve one API port, stop together on SIGTERM
without losing an accepted message, and a worker that dies is restarted (runtime/webapp/workers.py)."""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import threading
import urllib.request
from pathlib import Path

import pytest

from runtime_cluster import connected, start
from runtime_cluster import webapp as api_for
from wacluster_testenv.eventually import eventually
from wacluster_testenv.processes import free_port

pytestmark = pytest.mark.integration


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(") ", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def established_on(pid: int, port: int) -> int:
    """How many established TCP connections to local `port` the process `pid` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def metric_total(port: int, name: str, route: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and f'route="{route}"' in line)


def test_two_workers_serve_connections_on_one_port_and_one_metrics_port_counts_both(lone_webapp):
    metrics_port = free_port()
    role = lone_webapp.start_webapp(args=("--workers", "2", "--metrics-port", str(metrics_port)))
    workers = eventually(lambda: len(c := children(role.proc.pid)) == 2 and c, 30, what="two webapp workers")
    context = ssl._create_unverified_context()
    connections = [http.client.HTTPSConnection("127.0.0.1", role.port, context=context, timeout=10)
                   for _ in range(32)]
    try:
        for conn in connections:  # kept open: each stays with the worker that accepted it
            conn.request("GET", "/v1/openapi.json")
            reply = conn.getresponse()
            reply.read()
            assert reply.status == 200
        held = {pid: established_on(pid, role.port) for pid in workers}
        assert sum(held.values()) == len(connections), held
        assert all(n > 0 for n in held.values()), f"connections per worker: {held}"
    finally:
        for conn in connections:
            conn.close()
    assert metric_total(metrics_port, "wacluster_webapp_requests_total", "/v1/openapi.json") >= len(connections)
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=5) as resp:
        assert resp.status == 200


def test_sigterm_stops_every_worker_with_exit_0_and_keeps_every_accepted_message(cluster):
    start(cluster, masters=1, coreapps=1)
    eventually(lambda: connected(cluster), 30, what="shard 0 served")
    api = api_for(cluster, args=("--workers", "2"))
    role = cluster.roles["webapp"]
    workers = eventually(lambda: len(c := children(role.proc.pid)) == 2 and c, 30, what="two webapp workers")
    accepted: list[str] = []
    sent = threading.Event()
    stop_sending = threading.Event()

    def sender(n: int) -> None:
        i = 0
        while not stop_sending.is_set():
            i += 1
            try:
                reply = api.request("POST", "/v1/messages", {"to": f"+1555{n:03d}{i:04d}", "type": "text",
                                                            "text": {"body": "during the stop"}})
            except OSError:  # the port is closed: the webapp is gone
                return
            if reply.status == 201:
                accepted.append(reply.body["messages"][0]["id"])
                sent.set()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    try:
        assert sent.wait(30), "no message was accepted before the stop"
        role.signal(signal.SIGTERM)
        assert role.wait(60) == 0
    finally:
        stop_sending.set()
        for thread in threads:
            thread.join(30)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), "a worker outlived the webapp"
    stored = {row[0] for row in cluster.query("SELECT id FROM messages WHERE id = ANY(%s)", (accepted,))}
    assert accepted and set(accepted) == stored, f"{len(set(accepted) - stored)} accepted messages have no row"


def test_a_killed_worker_is_replaced_and_the_webapp_keeps_serving(lone_webapp):
    role = lone_webapp.start_webapp(args=("--workers", "2"))
    workers = eventually(lambda: len(c := children(role.proc.pid)) == 2 and c, 30, what="two webapp workers")
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    replaced = eventually(lambda: len(c := children(role.proc.pid)) == 2 and killed not in c and c, 30,
                          what="the killed worker replaced")
    assert role.alive and replaced - workers
    context = ssl._create_unverified_context()
    for _ in range(8):  # whichever worker takes each new connection answers
        with urllib.request.urlopen(f"https://127.0.0.1:{role.port}/v1/openapi.json", timeout=10,
                                    context=context) as resp:
            assert resp.status == 200
    assert "exited with -9" in Path(role.log).read_text()
