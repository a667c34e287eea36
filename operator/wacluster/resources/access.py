"""The runtime's ServiceAccount and the least privilege it needs: the master Lease, read-only pods
and read-only access to its own WhatsAppCluster (the masters follow its maintenance annotations)
in its own namespace, nothing more."""

from __future__ import annotations

from typing import Any

from wacluster.api.v1alpha1 import GROUP, PLURAL
from wacluster.resources.naming import labels
from wacluster.resources.pods import ClusterView


def runtime_access(view: ClusterView) -> list[dict[str, Any]]:
    names = view.names
    meta = lambda: {"name": names.runtime_account, "labels": labels(view.name, "runtime")}  # noqa: E731
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(),
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(), "rules": [
            # create cannot be limited by resourceNames; get/update/patch can.
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": [names.master_lease], "verbs": ["get", "update", "patch", "watch", "list"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            # A watch by metadata.name is allowed by resourceNames; the masters read fence/switchover.
            {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": [view.name],
             "verbs": ["get", "list", "watch"]},
        ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.runtime_account},
         "subjects": [{"kind": "ServiceAccount", "name": names.runtime_account, "namespace": view.namespace}]},
    ]
