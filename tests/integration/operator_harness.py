"""Run the real operator as a process, authenticated with its own ServiceAccount token."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from wacluster.api.interprocess import Env
from wacluster_testenv import crds
from wacluster_testenv.build import bin_dir
from wacluster_testenv.eventually import eventually

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "wacluster-system"


def kubectl(kubeconfig: str, *args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run([str(bin_dir() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
                          capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def install_crd(kubeconfig: str) -> None:
    crds.install_crd(lambda *args: kubectl(kubeconfig, *args), ROOT / "crds" / "whatsappcluster.yaml")


def operator_kubeconfig(admin_kubeconfig: str, directory: Path) -> str:
    """A kubeconfig holding only the operator ServiceAccount's token (bound cluster-wide)."""
    k = lambda *a, **kw: kubectl(admin_kubeconfig, *a, **kw)  # noqa: E731
    k("create", "namespace", OPERATOR_NAMESPACE, check=False)
    rules = yaml.safe_load((ROOT / "charts" / "wacluster" / "files" / "operator-rules.yaml").read_text())
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "wacluster-operator"}, "rules": rules}
    k("apply", "-f", "-", input=json.dumps(role))
    k("create", "serviceaccount", "wacluster-operator", "-n", OPERATOR_NAMESPACE, check=False)
    k("create", "clusterrolebinding", "wacluster-operator", "--clusterrole=wacluster-operator",
      f"--serviceaccount={OPERATOR_NAMESPACE}:wacluster-operator", check=False)
    token = k("create", "token", "wacluster-operator", "-n", OPERATOR_NAMESPACE, "--duration=6h").strip()
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "testenv", "user": "operator"}}],
        "current-context": "operator",
    }
    path = directory / "operator.kubeconfig"
    path.write_text(json.dumps(config))
    return str(path)


class OperatorProcess:
    """One `wacluster operator` process; restartable, its log kept for failure messages."""

    def __init__(self, kubeconfig: str, log_path: Path, args: list[str] | None = None,
                 identity: str = "operator-test", wrap=lambda argv: argv) -> None:
        """`args` follow the defaults (no metrics or health port), so they may override them;
        `wrap(argv)` runs the command inside something (a network-fault cgroup)."""
        self.kubeconfig = kubeconfig
        self.wrap = wrap
        self.log_path = log_path
        self.args = args or ["--all-namespaces"]
        self.identity = identity
        self.proc: subprocess.Popen | None = None
        self.log_offset = 0

    def start(self) -> "OperatorProcess":
        self.log_offset = len(self.log())  # wait_log looks at this run's lines only
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, Env.NAMESPACE: OPERATOR_NAMESPACE,
               Env.POD_NAME: self.identity, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.wrap([sys.executable, "-m", "wacluster", "operator", "--metrics-port", "0", "--health-port", "0",
                       *self.args]),
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, env=env)
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> None:
        if not self.proc:
            return
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logged(self, text: str) -> bool:
        """Whether this run (since the last start) has logged `text`."""
        return text in self.log()[self.log_offset:]

    def wait_log(self, text: str, timeout: float = 60) -> None:
        """Wait until this run logs `text`; otherwise fail, showing the end of the log."""
        eventually(lambda: self.logged(text), timeout, interval=0.2, what=f"{text!r} in {self.log_path.name}",
                   details=lambda: self.log()[-3000:])
