"""Installing the WhatsAppCluster CRD and waiting until the API server serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from wacluster_testenv.eventually import eventually

CRD_NAME = "whatsappclusters.wacluster.io"


def install_crd(kubectl: Callable[..., str], manifest: Path, timeout: float = 60.0) -> None:
    """Apply `manifest` server-side and wait for `Established`. Polled rather than `kubectl wait`:
    right after the apply the CRD may have no `status.conditions` yet, and `kubectl wait` then
    fails at once ("accessor error: <nil>") instead of waiting; so does the jsonpath filter below
    on a loaded machine, which the wrappers raise as RuntimeError: "not yet"."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    eventually(lambda: kubectl("get", "crd", CRD_NAME, "-o",
                               'jsonpath={.status.conditions[?(@.type=="Established")].status}') == "True",
               timeout, interval=0.2, what=f"the CRD {CRD_NAME} established", ignore=(RuntimeError,))
