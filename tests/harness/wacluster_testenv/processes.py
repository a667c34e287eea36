"""Start and stop the environment's child processes, tracked by pid in a state file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def running_processes() -> Iterator[tuple[int, list[str]]]:
    """Every live process on the machine as (pid, argv); one that ends while read is skipped."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0]:
                yield int(entry.name), [part.decode(errors="replace") for part in cmdline if part]


def command_lines_naming(text: str) -> list[str]:
    """The command lines of live processes that contain `text` (e.g. an environment's directory,
    which every process it started carries in its arguments)."""
    return [" ".join(argv) for _, argv in running_processes() if text in " ".join(argv)]


def free_port() -> int:
    """A TCP port free on loopback right now (the kernel picks it, so parallel runs differ)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcessTable:
    """The processes one environment started, persisted so `down` works from another shell."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "processes.json"

    def load(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text())

    def _save(self, table: dict[str, dict]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(table, indent=2))
        tmp.replace(self.path)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              credentials: dict | None = None) -> subprocess.Popen:
        """Start and record a process; `credentials` are subprocess's user/group/extra_groups."""
        log = open(self.state_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            # Own session: a Ctrl-C in the caller's terminal does not kill the environment half-way.
            start_new_session=True,
            **(credentials or {}),
        )
        log.close()
        table = self.load()
        table[name] = {"pid": proc.pid, "exe": argv[0], "argv": argv, "credentials": credentials}
        self._save(table)
        return proc

    def restart(self, name: str, sig: int = signal.SIGKILL, down_for: float = 0.0) -> subprocess.Popen:
        """Stop one recorded process with `sig` and start it again with the same command line
        (chaos runs: an API server or database restart)."""
        entry = self.load()[name]
        if _is_ours(entry["pid"], entry["exe"]):
            _signal(entry["pid"], sig)
            while _alive(entry["pid"]):
                time.sleep(0.02)
        time.sleep(down_for)
        return self.start(name, entry["argv"], credentials=entry.get("credentials"))

    def stop(self, name: str, timeout: float = 10.0) -> bool:
        """SIGTERM one recorded process if it is still ours, SIGKILL after ``timeout``."""
        entry = self.load().get(name)
        if entry is None or not _is_ours(entry["pid"], entry["exe"]):
            return False
        pid = entry["pid"]
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        return True

    def stop_all(self, timeout: float = 10.0) -> list[str]:
        """Stop every recorded process still ours; returns the names stopped."""
        # Reverse start order: clients before the apiserver, the apiserver before etcd.
        stopped = [name for name in reversed(list(self.load())) if self.stop(name, timeout)]
        if self.path.exists():
            self.path.unlink()
        return stopped


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child; a zombie would otherwise look alive.
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _is_ours(pid: int, exe: str) -> bool:
    """A recorded pid may have been reused by an unrelated process; only signal our binary."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return cmdline == exe
