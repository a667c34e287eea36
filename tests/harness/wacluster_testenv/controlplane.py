"""A real local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and either kwok (simulated nodes, the default) or one real node (node.py), all on
this machine, tracked by pid."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from wacluster_testenv import pki as pki_mod
from wacluster_testenv import pause
from wacluster_testenv.build import bin_dir, build_all, kwok_stages_path, kwok_storage_class_path
from wacluster_testenv.node import KUBERNETES_SERVICE_IP, NODE_IP, NODE_NAME, PAUSE_IMAGE, RealNode, ensure_node_address, host_problems
from wacluster_testenv.processes import ProcessTable, free_port

FAKE_NODES = [
    ("kwok-node-0", "zone-a"),
    ("kwok-node-1", "zone-b"),
    ("kwok-node-2", "zone-a"),
]
# Pods per simulated node. The kubelet's default of 110 gave the three nodes 330 slots: 47 default
# clusters (7 running pods each), so the operator-scale benchmark's 50 never all scheduled. kwok
# pods cost only API objects; 250 is the largest maxPods common on real nodes.
KWOK_NODE_PODS = 250
# kwok v0.8 plays the stages of any kind but nodes and pods one object at a time (its
# PlayStageParallelism is fixed at 1 there), and a claim takes four API calls to provision and bind
# (about 1.5 s each on a loaded 2-core machine): 100 claims in a row were most of the operator-scale
# benchmark's time. So the volume stages run in kwok processes of their own, each taking the
# claims (and their volumes, named pvc-<claim uid>) whose uid starts with its share of hex digits.
KWOK_VOLUME_SHARDS = 4
# kwok: never routed, ClusterIPs exist only as API objects; real node: kube-proxy's iptables rules.
SERVICE_CIDR = "10.96.0.0/16"
NODE_MODES = ("kwok", "real")


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class ControlPlane:
    state_dir: Path
    nodes: str = "kwok"  # "kwok": three simulated nodes; "real": one node running containers

    @property
    def real(self) -> bool:
        return self.nodes == "real"

    @property
    def node(self) -> RealNode:
        return RealNode(self.state_dir / "node")

    def _started_real(self) -> bool:
        """What `up` recorded; `down` and `images` run in other processes than `up`."""
        marker = self.state_dir / "nodes"
        return marker.exists() and marker.read_text() == "real"

    def real_node_running(self) -> bool:
        return self._started_real() and self.node.socket.exists()

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def info_path(self) -> Path:
        return self.state_dir / "env.json"

    def info(self) -> dict:
        return json.loads(self.info_path.read_text())

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [str(bin_dir() / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input, capture_output=True, text=True,
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def up(self, timeout: float = 60.0) -> "ControlPlane":
        if self.nodes not in NODE_MODES:
            raise ControlPlaneError(f"unknown node mode {self.nodes!r}; choose one of {', '.join(NODE_MODES)}")
        problems = host_problems() if self.real else []
        if problems:
            raise ControlPlaneError("cannot start a real node: " + "; ".join(problems))
        build_all(node=self.real)
        bins = bin_dir()
        if (self.state_dir / "processes.json").exists():
            raise ControlPlaneError(f"an environment is already running in {self.state_dir}; "
                                    "run `wacluster testenv down` first")
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        (self.state_dir / "nodes").write_text(self.nodes)  # `down` must know what to tear down
        started = time.monotonic()
        certs = pki_mod.generate(self.state_dir / "pki",
                                 extra_ips=(NODE_IP, KUBERNETES_SERVICE_IP) if self.real else (),
                                 node_name=NODE_NAME)
        ports = {name: free_port() for name in ("etcd_client", "etcd_peer", "apiserver")}
        # Pods on a real node reach the API server through the `kubernetes` Service, whose
        # endpoint is the advertised address: the node's, not loopback.
        server = f"https://{NODE_IP if self.real else '127.0.0.1'}:{ports['apiserver']}"
        self._write_kubeconfig(server, certs)
        procs = ProcessTable(self.state_dir)
        if self.real:
            ensure_node_address()
        try:
            self._start_etcd(procs, bins, ports)
            apiserver = self._start_apiserver(procs, bins, ports, certs)
            self._wait_ready(server, certs, started + timeout, apiserver)
            self._start_controllers(procs, bins, certs)
            if self.real:
                self._start_real_node(procs, certs, started + max(timeout, 120))
            else:
                self._create_nodes()
                self._wait_nodes_ready(started + timeout)
            self._wait_default_serviceaccount(started + timeout)
        except BaseException:
            self.down()
            raise
        info = {"server": server, "kubeconfig": str(self.kubeconfig), "ports": ports, "nodes": self.nodes,
                "state_dir": str(self.state_dir), "started_in_s": round(time.monotonic() - started, 1)}
        self.info_path.write_text(json.dumps(info, indent=2))
        return self

    def down(self) -> list[str]:
        procs = ProcessTable(self.state_dir)
        real = self._started_real()
        stopped: list[str] = []
        if real:
            # The kubelet first, or it restarts what we stop; then every container while
            # containerd still answers; host leftovers once every process is gone.
            if procs.stop("kubelet"):
                stopped.append("kubelet")
            self.node.drain_containers()
        stopped += procs.stop_all()
        if real:
            self.node.cleanup_host()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return stopped

    # --- processes -------------------------------------------------------------------------

    def _start_etcd(self, procs: ProcessTable, bins: Path, ports: dict) -> None:
        client = f"http://127.0.0.1:{ports['etcd_client']}"
        peer = f"http://127.0.0.1:{ports['etcd_peer']}"
        procs.start("etcd", [
            str(bins / "etcd"),
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # Tests create and delete objects fast; fsync per write only slows them down.
            "--unsafe-no-fsync", "--log-level=warn",
        ])

    def _start_apiserver(self, procs: ProcessTable, bins: Path, ports: dict, certs: pki_mod.Pki):
        if self.real:
            address = [f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}",
                       # exec, logs and port-forward: the kubelet trusts our CA's client certificates.
                       f"--kubelet-client-certificate={certs.admin_cert}",
                       f"--kubelet-client-key={certs.admin_key}",
                       "--kubelet-preferred-address-types=InternalIP"]
        else:
            # The `kubernetes` Service endpoint may not be a loopback address; nothing needs it.
            address = ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                       "--endpoint-reconciler-type=none"]
        return procs.start("kube-apiserver", [
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ports['etcd_client']}",
            *address,
            f"--secure-port={ports['apiserver']}",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
            f"--tls-cert-file={certs.serving_cert}", f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={certs.sa_public}",
            f"--service-account-signing-key-file={certs.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true", "--profiling=false", "--v=0",
        ])

    def _start_controllers(self, procs: ProcessTable, bins: Path, certs: pki_mod.Pki) -> None:
        kubeconfig = str(self.kubeconfig)
        procs.start("kube-controller-manager", [
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false", "--secure-port=0",
            f"--service-account-private-key-file={certs.sa_private}",
            f"--root-ca-file={certs.ca_cert}",
            "--controllers=*", "--concurrent-gc-syncs=5",
            # Fast reaction for tests: garbage collection and endpoint updates within a second.
            "--node-monitor-grace-period=60s", "--profiling=false",
        ])
        procs.start("kube-scheduler", [
            str(bins / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false", "--secure-port=0", "--profiling=false",
        ])
        if self.real:
            return
        node_stages, volume_shards = split_kwok_stages(kwok_stages_path().read_text(), KWOK_VOLUME_SHARDS)
        (self.state_dir / "kwok-stages.yaml").write_text(node_stages)
        procs.start("kwok", [
            str(bins / "kwok"),
            f"--kubeconfig={kubeconfig}",
            f"--config={self.state_dir / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
            "--cidr=10.244.0.0/16", "--node-ip=10.250.0.1",
            "--node-lease-duration-seconds=40",
        ])
        for shard, stages in enumerate(volume_shards):
            config = self.state_dir / f"kwok-volume-stages-{shard}.yaml"
            config.write_text(stages)
            # A node name that exists nowhere: this kwok manages no node and no pod, only volumes.
            procs.start(f"kwok-volumes-{shard}", [
                str(bins / "kwok"), f"--kubeconfig={kubeconfig}", f"--config={config}",
                f"--manage-single-node=kwok-volumes-{shard}-no-such-node",
            ])

    # --- readiness -------------------------------------------------------------------------

    def _wait_ready(self, server: str, certs: pki_mod.Pki, deadline: float, proc) -> None:
        ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
        ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
        last = "no answer"
        log = self.state_dir / "kube-apiserver.log"
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise ControlPlaneError(f"kube-apiserver exited with {proc.returncode}: {' '.join(tail)}")
            try:
                with urllib.request.urlopen(f"{server}/readyz", context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ControlPlaneError(f"kube-apiserver not ready at {server}: {last}; "
                                f"see {self.state_dir / 'kube-apiserver.log'}")

    def _start_real_node(self, procs: ProcessTable, certs: pki_mod.Pki, deadline: float) -> None:
        node = self.node
        node.start_runtime(procs)
        if PAUSE_IMAGE not in node.ctr("images", "ls", "-q"):
            node.ctr("images", "import", "-", input=pause.image_archive(PAUSE_IMAGE.rsplit("/", 1)[-1]))
        node.start_node(procs, self.kubeconfig, certs)
        while time.monotonic() < deadline:
            out = self.kubectl("get", "node", NODE_NAME, "-o",
                               "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
            if out.strip() == "True":
                return
            time.sleep(0.5)
        raise ControlPlaneError(f"node {NODE_NAME} not Ready; see {self.state_dir / 'kubelet.log'}")

    def _create_nodes(self) -> None:
        docs = [_fake_node(name, zone) for name, zone in FAKE_NODES]
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        # The default StorageClass whose claims kwok provisions and binds (API objects only).
        self.kubectl("apply", "-f", str(kwok_storage_class_path()))

    def _wait_nodes_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            out = self.kubectl("get", "nodes", "-o",
                               "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}")
            if out.split().count("True") == len(FAKE_NODES):
                return
            time.sleep(0.25)
        raise ControlPlaneError(f"kwok nodes not Ready; see {self.state_dir / 'kwok.log'}")

    def _wait_default_serviceaccount(self, deadline: float) -> None:
        # Pods cannot be created in a namespace until its default ServiceAccount exists.
        while time.monotonic() < deadline:
            if self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False):
                return
            time.sleep(0.25)
        raise ControlPlaneError("the serviceaccount controller did not create default/default; "
                                f"see {self.state_dir / 'kube-controller-manager.log'}")

    def _write_kubeconfig(self, server: str, certs: pki_mod.Pki) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "wacluster-testenv", "cluster": {
                "server": server, "certificate-authority": str(certs.ca_cert)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(certs.admin_cert), "client-key": str(certs.admin_key)}}],
            "contexts": [{"name": "wacluster-testenv", "context": {
                "cluster": "wacluster-testenv", "user": "admin", "namespace": "default"}}],
            "current-context": "wacluster-testenv",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)


_SELECTOR_ANCHOR = "  selector:\n    matchExpressions:\n"
# The field each volume stage's object is sharded on: a claim's uid, or its volume's name.
_SHARD_FIELD = {"PersistentVolumeClaim": ("self.metadata.uid", ""),
                "PersistentVolume": ("self.metadata.name", "pvc-")}


def split_kwok_stages(stages: str, shards: int) -> tuple[str, list[str]]:
    """kwok's stage file split in two: the node and pod stages, and the volume stages once per
    shard, each with one more selector expression taking only its share of objects (by the first
    hex digit of the claim's uid, which the volume's name repeats)."""
    docs = [doc.strip() for doc in stages.split("\n---\n") if doc.strip()]
    node_docs = [d for d in docs if _stage_kind(d) not in _SHARD_FIELD]
    volume_docs = [d for d in docs if _stage_kind(d) in _SHARD_FIELD]
    digits = "0123456789abcdef"
    shard_files = []
    for shard in range(shards):
        share = digits[shard::shards]
        shard_docs = []
        for doc in volume_docs:
            if _SELECTOR_ANCHOR not in doc:
                raise ControlPlaneError(f"a kwok volume stage without matchExpressions: {doc[:200]}")
            field, prefix = _SHARD_FIELD[_stage_kind(doc)]
            rule = (f"    - cel:\n        expression: >-\n"
                    f"          {field}.matches('^{prefix}[{share}]')\n")
            shard_docs.append(doc.replace(_SELECTOR_ANCHOR, _SELECTOR_ANCHOR + rule, 1))
        shard_files.append("\n---\n".join(shard_docs) + "\n")
    return "\n---\n".join(node_docs) + "\n", shard_files


def _stage_kind(doc: str) -> str:
    """The kind a kwok Stage plays (its spec.resourceRef.kind)."""
    marker = "  resourceRef:\n"
    ref = doc.split(marker, 1)[1] if marker in doc else ""
    for line in ref.splitlines():
        if line.strip().startswith("kind:"):
            return line.split(":", 1)[1].strip()
    return ""


def _fake_node(name: str, zone: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "type": "kwok",
                "topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": "local",
            },
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(KWOK_NODE_PODS)},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(KWOK_NODE_PODS)},
        },
    }
