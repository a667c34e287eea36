"""Build the local test environment's binaries once and cache them outside the repository.

Every binary is built from the Go module proxy through a small *wrapper module* per upstream
project. ``k8s.io/kubernetes`` cannot be ``go install``-ed because its go.mod replaces each
``k8s.io/<staging>`` module with a local directory; the wrapper requires the release and
replaces every staging module with its published ``v0.Y.Z`` twin. The list of staging modules
is read from that release's own go.mod, so it never has to be maintained by hand.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from wacluster_testenv.versions import (
    COREDNS_VERSION, ETCD_VERSION, HELM_VERSION, KUBERNETES_VERSION, KWOK_VERSION, PROMTOOL_VERSION,
)


@dataclass(frozen=True)
class GoTarget:
    """One upstream Go module and the commands we build out of it."""

    name: str
    module: str
    version: str
    commands: dict[str, str]  # binary name -> package path
    ldflags: str = ""
    replaces: dict[str, str] = field(default_factory=dict)


def cache_root() -> Path:
    base = os.environ.get("WACLUSTER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wacluster"
    )
    return Path(base)


def bin_dir() -> Path:
    return cache_root() / f"k8s-{KUBERNETES_VERSION}" / "bin"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never fetch a Go toolchain: only the module proxy is reachable, and the local Go suffices.
    env.setdefault("GOTOOLCHAIN", "local")
    env["CGO_ENABLED"] = "0"
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


# A cold build compiles for minutes without a word from Go; a line at least this often (seconds)
# shows it is alive and how far it got.
HEARTBEAT = 20.0


def _run(cmd: list[str], cwd: Path, progress: "Progress | None" = None, what: str = "",
         unit: str = "lines of output", total: int = 0, heartbeat: float = HEARTBEAT) -> None:
    """Run a Go command; while it runs, `progress` gets a line every `heartbeat` seconds counting
    its output lines so far (`go build -v` prints one per package compiled)."""
    output: list[str] = []
    with subprocess.Popen(cmd, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        reader = threading.Thread(target=_collect, args=(proc.stdout, output), daemon=True)
        reader.start()
        while True:
            try:
                proc.wait(timeout=heartbeat)
                break
            except subprocess.TimeoutExpired:
                if progress is not None:
                    of = f" of at most {total}" if total else ""
                    progress.step(f"{what}: {len(output)}{of} {unit} so far")
        reader.join()
    if proc.returncode != 0:
        sys.stderr.write("".join(output))
        raise RuntimeError(f"`{' '.join(cmd)}` failed in {cwd} (exit {proc.returncode})")


def _collect(stream, into: list[str]) -> None:
    for line in stream:
        into.append(line)


def _package_count(pkg: str, cwd: Path) -> int:
    """How many packages `go build` of `pkg` may compile (its dependencies, standard library
    included); 0 when Go cannot tell, and the progress lines then give no total."""
    proc = subprocess.run(["go", "list", "-deps", pkg], cwd=cwd, env=_go_env(), capture_output=True, text=True)
    return len(proc.stdout.split()) if proc.returncode == 0 else 0


def _module_gomod(module: str, version: str, cwd: Path) -> str:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd, env=_go_env(), capture_output=True, text=True, check=True,
    ).stdout
    return Path(json.loads(out)["GoMod"]).read_text()


def staging_replaces(kubernetes_gomod: str, kubernetes_version: str) -> dict[str, str]:
    """Map every ``k8s.io/<staging>`` module replaced by a local path to its published version.

    Kubernetes vX.Y.Z publishes its staging modules as v0.Y.Z.
    """
    major_minor_patch = kubernetes_version.lstrip("v").split(".")
    published = "v0." + ".".join(major_minor_patch[1:])
    found = re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", kubernetes_gomod, re.M)
    if not found:
        raise RuntimeError("no staging replace directives found in k8s.io/kubernetes go.mod")
    return {module: published for module in sorted(set(found))}


def kubernetes_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    return " ".join(
        [
            "-s -w",
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    )


def targets() -> list[GoTarget]:
    k8s_cmds = {
        name: f"k8s.io/kubernetes/cmd/{name}"
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
    }
    return [
        GoTarget("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION,
                 {"etcd": "go.etcd.io/etcd/server/v3"}, "-s -w"),
        GoTarget("kubernetes", "k8s.io/kubernetes", KUBERNETES_VERSION, k8s_cmds,
                 kubernetes_ldflags(KUBERNETES_VERSION)),
        GoTarget("kwok", "sigs.k8s.io/kwok", KWOK_VERSION,
                 {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}, "-s -w"),
        GoTarget("helm", "helm.sh/helm/v3", HELM_VERSION,
                 {"helm": "helm.sh/helm/v3/cmd/helm"},
                 f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"),
        # promtool checks metric names and alerting rules of the monitoring bundle.
        GoTarget("promtool", "github.com/prometheus/prometheus", PROMTOOL_VERSION,
                 {"promtool": "github.com/prometheus/prometheus/cmd/promtool"}, "-s -w"),
    ]


def node_targets() -> list[GoTarget]:
    """What a real node adds (`testenv up --nodes real`): kubelet and kube-proxy from the same
    Kubernetes release, and CoreDNS for Service names. Built only when a real node is asked for."""
    node_cmds = {name: f"k8s.io/kubernetes/cmd/{name}" for name in ("kubelet", "kube-proxy")}
    return [
        GoTarget("kubernetes-node", "k8s.io/kubernetes", KUBERNETES_VERSION, node_cmds,
                 kubernetes_ldflags(KUBERNETES_VERSION)),
        GoTarget("coredns", "github.com/coredns/coredns", COREDNS_VERSION,
                 {"coredns": "github.com/coredns/coredns"}, "-s -w"),
    ]


def _write_wrapper(target: GoTarget, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    replaces = dict(target.replaces)
    if target.module == "k8s.io/kubernetes":
        replaces.update(staging_replaces(_module_gomod(target.module, target.version, workdir),
                                         target.version))
    lines = [f"module wacluster.local/build/{target.name}", "", "go 1.26.0", "",
             f"require {target.module} {target.version}", ""]
    if replaces:
        lines.append("replace (")
        lines += [f"\t{mod} => {mod} {ver}" for mod, ver in replaces.items()]
        lines.append(")")
    (workdir / "go.mod").write_text("\n".join(lines) + "\n")
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in target.commands.values())
    # The tools-file idiom lets `go mod tidy` resolve main packages without compiling them here.
    (workdir / "tools.go").write_text(f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n")


class Progress:
    """Progress lines of a long step, with the seconds since it started."""

    def __init__(self, label: str = "testenv build", emit=None) -> None:
        self.label = label
        self.emit = emit or (lambda line: print(line, flush=True))
        self.started = time.monotonic()

    def step(self, message: str) -> None:
        self.emit(f"[{self.label} {time.monotonic() - self.started:6.0f}s] {message}")


# kwok simulates nothing without Stage objects; we use the fast stages that the same kwok
# release ships in its module (node start-up, lease heartbeats, pod ready/complete/delete, and
# volume provisioning so PersistentVolumeClaims bind).
KWOK_STAGE_FILES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
    "volume/fast/pv-bind.yaml",
    "volume/fast/pv-delete.yaml",
    "volume/fast/pvc-provision.yaml",
    "volume/fast/pvc-delete.yaml",
)
KWOK_STORAGE_CLASS_FILE = "volume/fast/storage-class.yaml"


def kwok_stages_path() -> Path:
    return bin_dir().parent / "kwok-stages.yaml"


def kwok_storage_class_path() -> Path:
    return bin_dir().parent / "kwok-storageclass.yaml"


def _write_kwok_stages(workdir: Path) -> None:
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"],
        cwd=workdir, env=_go_env(), capture_output=True, text=True, check=True,
    ).stdout
    stage_dir = Path(json.loads(out)["Dir"]) / "kustomize" / "stage"
    docs = [(stage_dir / rel).read_text().strip() for rel in KWOK_STAGE_FILES]
    kwok_stages_path().write_text("\n---\n".join(docs) + "\n")
    kwok_storage_class_path().write_text((stage_dir / KWOK_STORAGE_CLASS_FILE).read_text())


def build_all(force: bool = False, node: bool = False) -> Path:
    """Build every missing binary (with ``node``, the real node's too); a warm cache returns at
    once. Concurrent callers (parallel test sessions, a benchmark beside the tests) wait for one
    another instead of racing."""
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(force, targets() + (node_targets() if node else []))


def _build_locked(force: bool, wanted: list[GoTarget]) -> Path:
    out = bin_dir()
    todo = [t for t in wanted if force or any(not (out / n).exists() for n in t.commands)
            or (t.name == "kwok" and not kwok_storage_class_path().exists())]
    if not todo:
        print(f"testenv binaries are cached in {out}", flush=True)
        return out
    progress = Progress()
    out.mkdir(parents=True, exist_ok=True)
    work = cache_root() / "build"
    for target in todo:
        workdir = work / f"{target.name}-{target.version}"
        progress.step(f"{target.name} {target.version}: resolving modules")
        _write_wrapper(target, workdir)
        _run(["go", "mod", "tidy", "-e"], workdir, progress, f"{target.name}: resolving modules",
             unit="modules downloaded or checked")
        for name, pkg in target.commands.items():
            total = _package_count(pkg, workdir)
            progress.step(f"{target.name} {target.version}: compiling {name} ({total} packages at most; "
                          f"the Go cache keeps those already compiled)")
            tmp = out / f".{name}.partial"
            _run(["go", "build", "-v", "-trimpath", "-ldflags", target.ldflags, "-o", str(tmp), pkg],
                 workdir, progress, f"compiling {name}", "packages compiled", total)
            tmp.replace(out / name)  # atomic: an interrupted build never leaves a half binary
        if target.name == "kwok":
            _write_kwok_stages(workdir)
    progress.step(f"done: binaries in {out}")
    print(f"testenv build took {time.monotonic() - progress.started:.0f}s", flush=True)
    return out

