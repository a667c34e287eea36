"""The real node's volume provisioner: a directory per claim, exposed as a hostPath volume.

Claims of the test environment's default StorageClass get a PersistentVolume pre-bound to them;
the directory is world-writable because hostPath volumes ignore a pod's fsGroup, and our roles
(UID 10001) and PostgreSQL (UID 999) both write to theirs. When a claim is deleted the volume is
Released; we delete its directory and the PersistentVolume. One node only, so no node affinity.
Polls once a second: a test environment does not need a watch's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path

from kubernetes_asyncio import client, config

PROVISIONER = "wacluster.io/testenv-hostpath"


def storage_class(name: str) -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
    }


def volume_for(claim, directory: Path, class_name: str) -> dict:
    path = directory / f"{claim.metadata.namespace}-{claim.metadata.name}-{claim.metadata.uid[:8]}"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)  # mkdir applies the umask; the mode must be exact
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{claim.metadata.uid}",
                     "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": claim.spec.resources.requests["storage"]},
            "accessModes": claim.spec.access_modes,
            "hostPath": {"path": str(path), "type": "Directory"},
            "claimRef": {"namespace": claim.metadata.namespace, "name": claim.metadata.name,
                         "uid": claim.metadata.uid},
            "storageClassName": class_name,
            "persistentVolumeReclaimPolicy": "Delete",
        },
    }


async def sync(core: client.CoreV1Api, directory: Path, class_name: str) -> None:
    volumes = (await core.list_persistent_volume()).items
    claimed = {(v.spec.claim_ref.namespace, v.spec.claim_ref.name, v.spec.claim_ref.uid)
               for v in volumes if v.spec.claim_ref}
    for claim in (await core.list_persistent_volume_claim_for_all_namespaces()).items:
        key = (claim.metadata.namespace, claim.metadata.name, claim.metadata.uid)
        if (claim.spec.storage_class_name == class_name and not claim.spec.volume_name
                and claim.metadata.deletion_timestamp is None and key not in claimed):
            await core.create_persistent_volume(volume_for(claim, directory, class_name))
            print(f"provisioned {claim.metadata.namespace}/{claim.metadata.name}", flush=True)
    for volume in volumes:
        ours = (volume.metadata.annotations or {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER
        if ours and volume.status.phase in ("Released", "Failed"):
            path = Path(volume.spec.host_path.path)
            if path.parent == directory:  # never delete anything outside our own directory
                shutil.rmtree(path, ignore_errors=True)
            await core.delete_persistent_volume(volume.metadata.name)
            print(f"deleted {volume.metadata.name}", flush=True)


async def run(kubeconfig: str, directory: Path, class_name: str) -> None:
    await config.load_kube_config(kubeconfig)
    async with client.ApiClient() as api:
        core = client.CoreV1Api(api)
        try:
            await client.StorageV1Api(api).create_storage_class(storage_class(class_name))
        except client.ApiException as exc:
            if exc.status != 409:  # a restarted provisioner finds its class in place
                raise
        while True:
            try:
                await sync(core, directory.resolve(), class_name)
            except client.ApiException as exc:
                print(f"sync failed, retrying: {exc.status} {exc.reason}", flush=True)
            await asyncio.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--directory", required=True, type=Path)
    parser.add_argument("--storage-class", required=True)
    args = parser.parse_args()
    asyncio.run(run(args.kubeconfig, args.directory, args.storage_class))


if __name__ == "__main__":
    main()
