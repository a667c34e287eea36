"""Every state a Lease goes through, as the API server reports it: how a test tells a handover
through a release (the Lease is seen without a holder in between) from a takeover after expiry."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Not a tab: kubectl passes its output through a tabwriter, which turns tabs into padding.
SEPARATOR = "|"
FIELDS = ("{.spec.holderIdentity}", "{.spec.leaseTransitions}", "{.spec.acquireTime}", "{.spec.renewTime}",
          "{.spec.leaseDurationSeconds}")


@dataclass(frozen=True)
class LeaseState:
    holder: str            # "" while released
    transitions: int
    acquired: dt.datetime | None
    renewed: dt.datetime | None
    duration: float


def _time(text: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class LeaseWatch:
    """`kubectl get lease --watch` in the background from `start()` to `stop()`: a watch delivers
    every change, so a state that lasts a millisecond (a release) is not missed as a poll would."""

    def __init__(self, kubectl: str, kubeconfig: str, namespace: str, name: str, log: Path) -> None:
        self.argv = [kubectl, f"--kubeconfig={kubeconfig}", "get", "lease", name, "-n", namespace, "--watch",
                     "-o", "jsonpath=" + SEPARATOR.join(FIELDS) + '{"\\n"}']
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "LeaseWatch":
        if self.proc is not None:
            return self  # already watching (started, then used in a `with`)
        self.proc = subprocess.Popen(self.argv, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()

    def __enter__(self) -> "LeaseWatch":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def states(self) -> list[LeaseState]:
        """Every state seen so far, oldest first."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            parts = line.split(SEPARATOR)
            if len(parts) != len(FIELDS):
                continue  # a partly written last line, or a kubectl message
            holder, transitions, acquired, renewed, duration = parts
            out.append(LeaseState(holder, int(transitions or 0), _time(acquired), _time(renewed),
                                  float(duration or 0)))
        return out

    def holders(self) -> list[str]:
        """The holders in order, repeats (renewals) folded: e.g. ["master1", "", "master2"]."""
        out: list[str] = []
        for state in self.states():
            if not out or out[-1] != state.holder:
                out.append(state.holder)
        return out
