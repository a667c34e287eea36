"""Network faults between the local roles, which all share loopback: black holes and lost replies.

Each role process starts in a cgroup v2 of its own (`<cgroup2>/wacluster-faults-<id>/<kind>/<name>`,
joined by a shell that then execs the role, so every socket it ever opens carries that cgroup),
and a fault is a pair of iptables rules in a chain of this run's own, matched on that membership:

- `black_hole(cgroup, port)`: connections from the cgroup to `port` are marked (conntrack) and
  every packet of a marked connection, either way, is dropped. Nothing is reset: the peers see
  silence, as behind a dead switch, until `heal`.
- `drop_replies(cgroup, port)`: everything a process of the cgroup sends from its listening `port`
  is dropped except the SYN-ACK: connections open, requests arrive and are processed, and no
  answer (not even the ACK of the request) ever gets back.

A socket's cgroup is fixed when it is created, so a process moved into a cgroup later would keep
its old connections outside the fault: hence the cgroup at start (`wrap`). Every rule carries the
comment `wacluster-faults`, the chain and the cgroups are named `wacluster-faults-*`/`WACLUSTER-F-*`;
`teardown` removes this run's, `remove_leftovers` those of any run that died without its teardown.
Needs root, iptables with the cgroup, connmark and comment matches, and a cgroup2 mount.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

TAG = "wacluster-faults"
CHAIN_PREFIX = "WACLUSTER-F-"
_MARK_BASE = 0x5AC10000  # one conntrack mark per fault: a healed connection must not match a later fault


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (a hybrid host mounts it at .../unified)."""
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return Path(fields[1])
    return None


def unavailable_reason() -> str | None:
    """Why network faults cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "network faults need root (iptables, cgroups)"
    if cgroup2_root() is None:
        return "no cgroup2 hierarchy is mounted"
    try:
        listing = subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"iptables cannot run: {exc}"
    if listing.returncode != 0:
        return f"iptables cannot run: {listing.stderr.strip()}"
    return None


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"iptables {shlex.join(args)}: {result.stderr.strip()}")
    return result


@dataclass
class Fault:
    """The rules of one active fault; `NetworkFaults.heal` removes them."""

    kind: str
    rules: list[list[str]]


class NetworkFaults:
    """This run's cgroups and iptables chain (use as a context manager, or `setup`/`teardown`)."""

    def __init__(self) -> None:
        root = cgroup2_root()
        if root is None:
            raise RuntimeError("no cgroup2 hierarchy is mounted")
        run = uuid.uuid4().hex[:8]
        self.root = root
        self.group = f"{TAG}-{run}"             # relative to the cgroup2 root, as `-m cgroup --path` wants it
        self.chain = f"{CHAIN_PREFIX}{run}"     # iptables chain names are at most 28 characters
        self._marks = itertools.count(1)
        self.active: list[Fault] = []

    def __enter__(self) -> "NetworkFaults":
        return self.setup()

    def __exit__(self, *exc) -> None:
        self.teardown()

    def setup(self) -> "NetworkFaults":
        (self.root / self.group).mkdir()
        _iptables("-N", self.chain)
        _iptables("-I", "OUTPUT", "1", "-m", "comment", "--comment", TAG, "-j", self.chain)
        return self

    def cgroup(self, kind: str, name: str = "") -> str:
        """The cgroup (relative path) of a kind of role, or of one role; created on first use."""
        relative = "/".join(p for p in (self.group, kind, name) if p)
        (self.root / relative).mkdir(parents=True, exist_ok=True)
        return relative

    def wrap(self, argv: list[str], kind: str, name: str) -> list[str]:
        """`argv` run inside the role's own cgroup from its first instruction (the pid stays the same)."""
        procs = self.root / self.cgroup(kind, name) / "cgroup.procs"
        return ["/bin/sh", "-c", f'echo $$ > {shlex.quote(str(procs))} && exec "$@"', "sh", *argv]

    def black_hole(self, cgroup: str, port: int) -> Fault:
        """Drop every packet, both ways, of the connections the cgroup's processes open to `port`."""
        mark = hex(_MARK_BASE + next(self._marks))
        rules = [["-p", "tcp", "--dport", str(port), "-m", "cgroup", "--path", cgroup,
                  "-j", "CONNMARK", "--set-mark", mark],
                 ["-m", "connmark", "--mark", mark, "-j", "DROP"]]
        return self._add(Fault(f"black hole {cgroup} -> :{port}", rules))

    def drop_replies(self, cgroup: str, port: int) -> Fault:
        """Drop what the cgroup's processes send from `port` (their server side), SYN-ACKs excepted."""
        rules = [["-p", "tcp", "--sport", str(port), "--tcp-flags", "SYN", "NONE", "-m", "cgroup",
                  "--path", cgroup, "-j", "DROP"]]
        return self._add(Fault(f"replies lost {cgroup} :{port} ->", rules))

    def _add(self, fault: Fault) -> Fault:
        for rule in fault.rules:
            _iptables("-A", self.chain, *rule, "-m", "comment", "--comment", TAG)
        self.active.append(fault)
        return fault

    def heal(self, fault: Fault) -> None:
        for rule in fault.rules:
            _iptables("-D", self.chain, *rule, "-m", "comment", "--comment", TAG, check=False)
        if fault in self.active:
            self.active.remove(fault)

    def teardown(self) -> None:
        """Remove the chain, its jump and the cgroups (their processes go back to the root cgroup)."""
        self.active.clear()
        _remove_chain(self.chain)
        _remove_cgroup_tree(self.root, self.root / self.group)


def _remove_chain(chain: str) -> None:
    while _iptables("-D", "OUTPUT", "-m", "comment", "--comment", TAG, "-j", chain, check=False).returncode == 0:
        pass
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)


def _remove_cgroup_tree(root: Path, top: Path) -> None:
    if not top.exists():
        return
    for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [top]:
        for pid in (directory / "cgroup.procs").read_text().split():
            try:
                (root / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # it ended meanwhile
        directory.rmdir()


def leftovers() -> list[str]:
    """Every chain, OUTPUT rule and cgroup a network-fault run left behind (empty when clean)."""
    found = []
    listing = _iptables("-S", check=False).stdout.splitlines()
    found += [line for line in listing if TAG in line or CHAIN_PREFIX in line]
    root = cgroup2_root()
    if root is not None:
        found += [str(p) for p in root.glob(f"{TAG}-*")]
    return found


def remove_leftovers() -> None:
    """Remove what runs that died without `teardown` left: chains, jumps and cgroups of any run."""
    for line in _iptables("-S", check=False).stdout.splitlines():
        if line.startswith(f"-N {CHAIN_PREFIX}"):
            _remove_chain(line.split()[1])
    root = cgroup2_root()
    if root is not None:
        for top in root.glob(f"{TAG}-*"):
            _remove_cgroup_tree(root, top)
