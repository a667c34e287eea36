"""The operator's /healthz and /readyz against the real API server: the leader and a standby say
what they are; a replica the API server refuses, or a leader cut off from it, says what is wrong."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from operator_harness import OPERATOR_NAMESPACE, OperatorProcess
from wacluster_testenv import faults
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, OSError) as exc:  # not listening yet
        return 0, str(exc)


def answering(port: int, path: str, status: int, text: str):
    """A check for `eventually`: the probe's answer once it has `status` and contains `text`."""
    def check():
        answer = probe(port, path)
        return answer if answer[0] == status and text in answer[1] else None
    return check


def replica(operator_config: str, tmp_path: Path, name: str, lease: str, **kw) -> tuple[OperatorProcess, int]:
    """A replica watching only the operator's own namespace (no WhatsAppCluster lives there), so it
    reconciles nothing another test owns, and kopf sees its Lease: the watch canary applies."""
    port = free_port()
    args = ["--namespace", OPERATOR_NAMESPACE, "--lease-name", lease, "--health-port", str(port)]
    return OperatorProcess(operator_config, tmp_path / f"{name}.log", args, identity=name, **kw), port


def test_the_leader_and_a_standby_are_live_and_ready_and_say_which_they_are(operator_config, tmp_path):
    lease = f"operator-health-{uuid.uuid4().hex[:6]}"
    first, first_port = replica(operator_config, tmp_path, "replica-a", lease)
    second, second_port = replica(operator_config, tmp_path, "replica-b", lease)
    second.args.append("--log-format=json")
    try:
        first.start().wait_log("leads the operator", timeout=60)
        # Ready once kopf runs; live with kopf's watch having delivered the Lease the main loop renews.
        eventually(answering(first_port, "/readyz", 200, "leader (term"), 60, what="the leader ready",
                   details=lambda: first.log()[-3000:])
        status, body = eventually(answering(first_port, "/healthz", 200, "its watch saw the operator Lease"), 120,
                                  what="the leader's watch canary", details=lambda: first.log()[-3000:])
        assert "kopf running" in body and "the Lease was renewed" in body
        # kopf scans for nothing its least-privilege account may not list (it once retried the
        # namespaces and CRDs for about 54 s before its watches started).
        assert "Forbidden" not in first.log(), first.log()[-3000:]

        second.start().wait_log("campaigning", timeout=60)
        status, body = eventually(answering(second_port, "/readyz", 200, "standby, campaigning"), 30,
                                  what="the standby ready", details=lambda: second.log()[-3000:])
        assert "replica-a holds the Lease" in body
        assert probe(second_port, "/healthz") == (200, "standby: the main loop answers\n")
        # --log-format=json: one object a line, naming the operator and its pod.
        lines = [json.loads(line) for line in second.log().splitlines() if line.strip()]
        campaigning = next(line for line in lines if "campaigning for Lease" in line["message"])
        assert (campaigning["role"], campaigning["pod"], campaigning["level"]) == ("operator", "replica-b", "INFO")
    finally:
        second.stop()
        first.stop()


def test_a_replica_the_api_server_refuses_is_not_ready_and_says_why_but_stays_live(operator_config, tmp_path):
    config = yaml.safe_load(Path(operator_config).read_text())
    config["users"][0]["user"]["token"] = "not-a-valid-token"
    refused = tmp_path / "refused.kubeconfig"
    refused.write_text(json.dumps(config))
    proc, port = replica(str(refused), tmp_path, "replica-refused", f"operator-health-{uuid.uuid4().hex[:6]}")
    try:
        proc.start()
        status, body = eventually(answering(port, "/readyz", 503, "no answer from the API server yet ("), 60,
                                  what="the refused replica not ready", details=lambda: proc.log()[-3000:])
        assert body == "standby: no answer from the API server yet (ApiException: HTTP 401 Unauthorized)\n"
        assert probe(port, "/healthz")[0] == 200
    finally:
        proc.stop()


@pytest.mark.skipif(bool(faults.unavailable_reason()), reason=str(faults.unavailable_reason()))
def test_a_leader_cut_off_from_the_api_server_steps_down_and_fails_liveness_meanwhile(operator_config, tmp_path):
    server = yaml.safe_load(Path(operator_config).read_text())["clusters"][0]["cluster"]["server"]
    api_port = urllib.parse.urlsplit(server).port
    with faults.NetworkFaults() as network:
        cgroup = network.cgroup("operator", "leader")
        proc, port = replica(operator_config, tmp_path, "replica-cut-off", f"operator-health-{uuid.uuid4().hex[:6]}",
                             wrap=lambda argv: network.wrap(argv, "operator", "leader"))
        try:
            proc.start().wait_log("leads the operator", timeout=60)
            eventually(answering(port, "/healthz", 200, "its watch saw the operator Lease"), 120,
                       what="the leader live", details=lambda: proc.log()[-3000:])
            # Silence both ways, as behind a dead switch: the renewal's request hangs with no
            # error. The election bounds each attempt by its renew deadline and steps down before
            # the Lease (15 s) can pass to a standby; the process then exits to start clean.
            network.black_hole(cgroup, api_port)
            eventually(lambda: "could not renew the lease within 10.0s; stepping down" in proc.log(), 40,
                       what="the leader stepping down", details=lambda: proc.log()[-3000:])
            assert "lease attempt got no answer within" in proc.log()
        finally:
            proc.kill()
