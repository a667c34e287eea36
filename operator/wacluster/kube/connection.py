"""An async API client from the environment: KUBECONFIG / ~/.kube/config, else in-cluster."""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config


async def api_client() -> client.ApiClient:
    configuration = client.Configuration()
    kubeconfig = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if os.path.exists(kubeconfig.split(os.pathsep)[0]):
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)
