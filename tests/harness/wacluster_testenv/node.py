"""One real node next to the local control plane: containerd + runc + CNI bridge, kubelet,
kube-proxy and CoreDNS, so pods run real containers (``wacluster testenv up --nodes real``).

Everything stays inside this machine: the node's address lives on the loopback device, pods
get addresses on a bridge of their own and are not masqueraded, Services are iptables rules of
kube-proxy, and CoreDNS answers only for ``cluster.local``. One real node per machine: the
kubelet owns the host's cgroups and iptables chains.

The host runs cgroup v1 (with a cgroup2 ``unified`` mount that has no controllers). Since
Kubernetes 1.35 the kubelet refuses cgroup v1 unless ``failCgroupV1: false``; we set that and
the ``cgroupfs`` driver (there is no systemd here to delegate cgroups to).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from wacluster_testenv import pki as pki_mod
from wacluster_testenv.build import bin_dir
from wacluster_testenv.processes import ProcessTable, free_port, running_processes

NODE_NAME = "real-node-0"
NODE_IP = "10.249.0.1"          # on `lo`: reachable from pods and host, routed nowhere else
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"  # first address of the control plane's Service range
BRIDGE = "wac-cni0"
STORAGE_CLASS = "wacluster-hostpath"
# Images survive `down`: importing them again on every `up` would cost more than the rest.
RUNTIME_ROOT = Path(os.environ.get("WACLUSTER_RUNTIME_ROOT", "/var/lib/wacluster-testenv/containerd"))
PAUSE_IMAGE = "docker.io/library/wacluster-pause:1"
HOST_PACKAGES = {"containerd": "containerd", "runc": "runc", "ctr": "containerd",
                 "iptables": "iptables", "conntrack": "conntrack", "ip": "iproute2"}
CNI_DIR = Path("/usr/lib/cni")


class NodeError(RuntimeError):
    pass


def host_problems() -> list[str]:
    """What this machine lacks for a real node, each with the command that fixes it."""
    problems = []
    if os.geteuid() != 0:
        problems.append("a real node needs root (the kubelet manages cgroups, mounts and iptables)")
    missing = sorted({pkg for cmd, pkg in HOST_PACKAGES.items() if not shutil.which(cmd)})
    if not (CNI_DIR / "bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        problems.append(f"missing host packages: apt-get install -y {' '.join(missing)}")
    return problems


@dataclass
class RealNode:
    state_dir: Path

    @property
    def socket(self) -> Path:
        return self.state_dir / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.state_dir / "kubelet"

    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"

    def ctr(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        proc = subprocess.run(["ctr", "--address", str(self.socket), "-n", "k8s.io", *args],
                              input=input, capture_output=True)
        if check and proc.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode(errors="replace")

    # --- up --------------------------------------------------------------------------------

    def start_runtime(self, procs: ProcessTable) -> None:
        """containerd first: images are imported before the kubelet asks for them. The caller
        has checked host_problems()."""
        self.volumes_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_containerd_config()
        procs.start("containerd", [shutil.which("containerd"), f"--config={config}"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.socket.exists() and self.ctr("version", check=False):
                return
            time.sleep(0.2)
        raise NodeError(f"containerd did not answer on {self.socket}; see {self.state_dir / 'containerd.log'}")

    def start_node(self, procs: ProcessTable, kubeconfig: Path, certs: pki_mod.Pki) -> None:
        bins = bin_dir()
        kubelet_kubeconfig = self._write_node_kubeconfig(kubeconfig, certs)
        kubelet_config = self._write_kubelet_config(certs)
        procs.start("kubelet", [
            str(bins / "kubelet"), f"--config={kubelet_config}", f"--kubeconfig={kubelet_kubeconfig}",
            f"--root-dir={self.kubelet_root}", f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--node-labels=type=real,topology.kubernetes.io/zone=zone-a,topology.kubernetes.io/region=local",
            "--v=1",
        ])
        procs.start("kube-proxy", [
            str(bins / "kube-proxy"), f"--kubeconfig={kubeconfig}", f"--hostname-override={NODE_NAME}",
            "--proxy-mode=iptables", f"--cluster-cidr={CLUSTER_CIDR}",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--healthz-bind-address=127.0.0.1:{free_port()}",
            # Leave the host's conntrack table size alone (a sysctl the sandbox may refuse).
            "--conntrack-max-per-core=0", "--v=1",
        ])
        corefile = self.state_dir / "Corefile"
        corefile.write_text(
            f".:53 {{\n  bind {NODE_IP}\n  errors\n"
            f"  kubernetes cluster.local in-addr.arpa ip6.arpa {{\n"
            f"    kubeconfig {kubeconfig}\n    pods insecure\n    fallthrough in-addr.arpa ip6.arpa\n  }}\n"
            # No `forward`: pods here have no business resolving names outside the cluster.
            f"  cache 5\n}}\n")
        procs.start("coredns", [str(bins / "coredns"), "-conf", str(corefile)])
        procs.start("provisioner", [sys.executable, "-m", "wacluster_testenv.provisioner",
                                    f"--kubeconfig={kubeconfig}", f"--directory={self.volumes_dir}",
                                    f"--storage-class={STORAGE_CLASS}"])

    def _write_containerd_config(self) -> Path:
        base = self.state_dir / "containerd"
        base.mkdir(parents=True, exist_ok=True)
        cni_conf = base / "cni"
        cni_conf.mkdir(exist_ok=True)
        (cni_conf / "10-wacluster.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "wacluster",
            "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "hairpinMode": True,
                 # Not masqueraded: pod traffic has nowhere to go but this machine.
                 "ipMasq": False,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(base / "ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # A Docker engine on the same host sets the FORWARD policy to DROP, and bridged
                # pod traffic passes FORWARD (br_netfilter): accept each pod's address explicitly.
                {"type": "firewall", "backend": "iptables"},
            ],
        }, indent=2))
        config = base / "config.toml"
        config.write_text(f"""version = 2
root = "{RUNTIME_ROOT}"
state = "{base / 'state'}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE, so no process may lower its OOM score (the kubelet asks
  # -998 for sandboxes): clamp to containerd's own score instead of failing every pod.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_DIR}"
    conf_dir = "{cni_conf}"
""")
        return config

    def _write_node_kubeconfig(self, admin_kubeconfig: Path, certs: pki_mod.Pki) -> Path:
        config = json.loads(admin_kubeconfig.read_text())
        config["users"] = [{"name": NODE_NAME, "user": {"client-certificate": str(certs.node_cert),
                                                         "client-key": str(certs.node_key)}}]
        config["contexts"][0]["context"]["user"] = NODE_NAME
        path = self.state_dir / "kubelet.kubeconfig"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def _write_kubelet_config(self, certs: pki_mod.Pki) -> Path:
        resolv = self.state_dir / "resolv.conf"
        resolv.write_text(f"nameserver {NODE_IP}\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "failCgroupV1": False, "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": NODE_IP, "port": free_port(), "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": free_port(),
            # The API server authenticates with its client certificate (our CA); anything it
            # presents is allowed: exec, logs and port-forward of the tests.
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                               "x509": {"clientCAFile": str(certs.ca_cert)}},
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDNS": [NODE_IP], "clusterDomain": "cluster.local", "resolvConf": str(resolv),
            "failSwapOn": False,
            "oomScoreAdj": 0,  # the kubelet's own score; lowering it needs CAP_SYS_RESOURCE
            # The test machine's disk is shared with everything else: evict only when truly full.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%",
                             "imagefs.available": "2%"},
            # Our images cannot be pulled again once collected: never collect them.
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "registerNode": True,
        }
        path = self.state_dir / "kubelet-config.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    # --- down ------------------------------------------------------------------------------

    def drain_containers(self, timeout: float = 60.0) -> None:
        """Stop every container and sandbox before the runtime goes: a shim outlives containerd,
        and a pod's mounts outlive its containers unless the kubelet or we tear them down."""
        if not self.socket.exists():
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.ctr("tasks", "ls", "-q", check=False).split()
            if not tasks:
                break
            for task in tasks:
                self.ctr("tasks", "kill", "-s", "SIGKILL", "--all", task, check=False)
                self.ctr("tasks", "delete", "-f", task, check=False)
            time.sleep(0.2)
        for container in self.ctr("containers", "ls", "-q", check=False).split():
            self.ctr("containers", "delete", container, check=False)

    def cleanup_host(self) -> None:
        """After every process stopped: leftover shims, mounts, iptables chains, the bridge."""
        for pid, cmdline in running_processes():
            if "containerd-shim" in cmdline[0] and str(self.socket) in " ".join(cmdline):
                _kill(pid)
        for mount in sorted(_mounts_under(self.state_dir), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        _flush_kube_chains()


def ensure_node_address() -> None:
    """The node's address on `lo`; the API server binds to it before the node exists."""
    shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    if f" {NODE_IP}/" not in shown:
        subprocess.run(["ip", "addr", "add", f"{NODE_IP}/32", "dev", "lo"], check=True)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].encode().decode("unicode_escape") for line in mounts]
    return [point for point in points if point.startswith(prefix)]


def _flush_kube_chains() -> None:
    """kube-proxy's and the kubelet's iptables chains, so the next environment starts clean."""
    for table in ("nat", "filter", "mangle"):
        listing = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        chains = [line[1:].split()[0] for line in listing.splitlines()
                  if line.startswith(":KUBE-")]
        rules = [line for line in listing.splitlines() if line.startswith("-A ") and "KUBE-" in line
                 and not line.startswith(tuple(f"-A {c} " for c in chains))]
        for rule in rules:
            subprocess.run(["iptables", "-t", table, "-D", *shlex.split(rule[3:])], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
