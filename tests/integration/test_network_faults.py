"""The harness's network faults (wacluster_testenv.faults) do what the chaos benchmark counts on: a
black hole drops both ways without a reset and only for the cgroup it names, lost replies let
requests through, healing restores the connection, and the teardown leaves no rule or cgroup."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from wacluster_testenv import faults
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.harness
if reason := faults.unavailable_reason():
    pytestmark = [pytest.mark.harness, pytest.mark.skip(reason=reason)]

# A client that connects, then for each line on stdin sends it and prints what comes back within 1 s
# ("timeout" when nothing does, "reset"/"closed" when the connection ends).
CLIENT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.settimeout(1.0)
for line in sys.stdin:
    try:
        s.sendall(line.encode())
        data = s.recv(100)
        print(data.decode().strip() if data else "closed", flush=True)
    except TimeoutError:
        print("timeout", flush=True)
    except ConnectionResetError:
        print("reset", flush=True)
"""


class EchoServer:
    """Answers each line with "echo <line>" and remembers every line it received."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                for line in conn.makefile("r"):
                    self.received.append(line.strip())
                    conn.sendall(f"echo {line.strip()}\n".encode())
            except ConnectionResetError:
                pass  # the client went away


class Client:
    def __init__(self, network: faults.NetworkFaults, name: str, port: int) -> None:
        argv = network.wrap([sys.executable, "-c", CLIENT, str(port)], "client", name)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture
def network():
    with faults.NetworkFaults() as network:
        yield network
    assert not [item for item in faults.leftovers() if network.group in item or network.chain in item]


def test_a_black_hole_drops_both_ways_only_for_its_cgroup_and_heals(network):
    server = EchoServer()
    cut, other = Client(network, "cut", server.port), Client(network, "other", server.port)
    try:
        assert cut.ask("a") == "echo a" and other.ask("b") == "echo b"
        fault = network.black_hole(network.cgroup("client", "cut"), server.port)
        assert cut.ask("c") == "timeout"       # silence, not a reset
        assert other.ask("d") == "echo d"      # the other cgroup still gets through
        assert "c" not in server.received
        network.heal(fault)
        # TCP retransmits the held line once the path is back; its echo arrives late.
        eventually(lambda: "c" in server.received, 30, what="the held line delivered after healing")
        assert cut.ask("e") in ("echo c", "echo e", "echo c\necho e")
    finally:
        cut.close()
        other.close()


def test_lost_replies_let_requests_through_and_answer_nothing(network):
    # The listener runs in a cgroup of its own (a child process), as a coreapp's control port does.
    listener = subprocess.Popen(network.wrap([sys.executable, "-c", """
import socket, threading
def serve(c):
    for line in c.makefile("r"):
        print("got", line.strip(), flush=True); c.sendall(b"ok\\n")
s = socket.create_server(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
"""], "server", "listener"), stdout=subprocess.PIPE, text=True)
    port = int(listener.stdout.readline())
    client = Client(network, "caller", port)
    try:
        assert client.ask("a") == "ok" and listener.stdout.readline().strip() == "got a"
        fault = network.drop_replies(network.cgroup("server", "listener"), port)
        assert client.ask("b") == "timeout"
        assert listener.stdout.readline().strip() == "got b"  # the request arrived and was handled
        fresh = Client(network, "fresh", port)                # a new connection opens, is answered nothing
        assert fresh.ask("c") == "timeout" and listener.stdout.readline().strip() == "got c"
        network.heal(fault)
        fresh.close()
    finally:
        client.close()
        listener.kill()
        listener.wait()


def test_leftovers_of_a_run_without_teardown_are_removed():
    network = faults.NetworkFaults().setup()
    network.black_hole(network.cgroup("client", "x"), 1)
    assert any(network.chain in item for item in faults.leftovers())
    faults.remove_leftovers()
    assert not [item for item in faults.leftovers() if network.group in item or network.chain in item]
