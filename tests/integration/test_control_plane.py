"""The local control plane behaves like a real cluster: these are the properties the operator,
the Lease election and the chart depend on. They test the harness, not the product."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from wacluster_testenv.eventually import eventually_async

pytestmark = pytest.mark.harness


async def test_lease_update_with_stale_resource_version_is_rejected_with_conflict(kube_api, namespace):
    leases = client.CoordinationV1Api(kube_api)
    created = await leases.create_namespaced_lease(namespace, client.V1Lease(
        metadata=client.V1ObjectMeta(name="election"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15)))
    stale = created.metadata.resource_version
    created.spec.holder_identity = "b"
    await leases.replace_namespaced_lease("election", namespace, created)

    loser = client.V1Lease(
        metadata=client.V1ObjectMeta(name="election", resource_version=stale),
        spec=client.V1LeaseSpec(holder_identity="c", lease_duration_seconds=15))
    with pytest.raises(ApiException) as err:
        await leases.replace_namespaced_lease("election", namespace, loser)
    assert err.value.status == 409
    current = await leases.read_namespaced_lease("election", namespace)
    assert current.spec.holder_identity == "b"


async def test_deployment_becomes_available_on_kwok_nodes(kube_api, namespace):
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    labels = {"app": "probe"}
    await eventually_async(lambda: _default_serviceaccount_exists(core, namespace), 60, interval=0.25,
                           what="the default ServiceAccount")
    await apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="probe"),
        spec=client.V1DeploymentSpec(
            replicas=3,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="c", image="example.invalid/probe:1")],
                    # One pod per host: proves there are three schedulable, distinct nodes.
                    affinity=client.V1Affinity(pod_anti_affinity=client.V1PodAntiAffinity(
                        required_during_scheduling_ignored_during_execution=[client.V1PodAffinityTerm(
                            label_selector=client.V1LabelSelector(match_labels=labels),
                            topology_key="kubernetes.io/hostname")])))))))

    async def available():
        dep = await apps.read_namespaced_deployment_status("probe", namespace)
        conditions = {c.type: c.status for c in dep.status.conditions or []}
        return conditions.get("Available") == "True" and dep.status.available_replicas == 3

    await eventually_async(available, 60, interval=0.25, what="the Deployment Available with 3 replicas")
    pods = await core.list_namespaced_pod(namespace, label_selector="app=probe")
    nodes = {pod.spec.node_name for pod in pods.items}
    assert len(nodes) == 3
    zones = set()
    for node in nodes:
        zones.add((await core.read_node(node)).metadata.labels["topology.kubernetes.io/zone"])
    assert len(zones) == 2


async def _default_serviceaccount_exists(core, namespace):
    accounts = await core.list_namespaced_service_account(namespace)
    return any(sa.metadata.name == "default" for sa in accounts.items)


async def test_garbage_collector_deletes_dependents_of_a_deleted_owner(kube_api, namespace):
    core = client.CoreV1Api(kube_api)
    owner = await core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="owner")))
    await core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="dependent", owner_references=[client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)])))
    await core.delete_namespaced_config_map("owner", namespace)

    async def dependent_gone():
        try:
            await core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    await eventually_async(dependent_gone, 60, interval=0.25, what="the dependent collected")


async def test_service_account_token_needs_rbac_to_read_leases(kube_api, kubeconfig, namespace):
    core = client.CoreV1Api(kube_api)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    await core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="runtime")))
    token = (await core.create_namespaced_service_account_token("runtime", namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600)))).status.token

    configuration = client.Configuration()
    configuration.host = kube_api.configuration.host
    configuration.ssl_ca_cert = kube_api.configuration.ssl_ca_cert
    configuration.api_key = {"BearerToken": token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    async with client.ApiClient(configuration) as as_runtime:
        # The token really authenticates (a 403 for system:anonymous would prove nothing).
        review = await client.AuthenticationV1Api(as_runtime).create_self_subject_review(
            client.V1SelfSubjectReview())
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:runtime"
        leases = client.CoordinationV1Api(as_runtime)
        with pytest.raises(ApiException) as err:
            await leases.list_namespaced_lease(namespace)
        assert err.value.status == 403

        await rbac.create_namespaced_role(namespace, client.V1Role(
            metadata=client.V1ObjectMeta(name="leases"),
            rules=[client.V1PolicyRule(api_groups=["coordination.k8s.io"], resources=["leases"],
                                       verbs=["get", "list", "watch"])]))
        await rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="leases"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="leases"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="runtime", namespace=namespace)]))

        async def allowed():
            try:
                await leases.list_namespaced_lease(namespace)
                return True
            except ApiException as exc:
                if exc.status != 403:
                    raise
                return False

        assert await eventually_async(allowed, 30, interval=0.25, what="the Role binding in force")


CEL_CRD_GROUP = "testenv.wacluster.io"


async def test_crd_cel_rule_rejects_invalid_object_with_its_message(kube_api, namespace):
    extensions = client.ApiextensionsV1Api(kube_api)
    plural = f"widgets{namespace.replace('-', '')}"
    name = f"{plural}.{CEL_CRD_GROUP}"
    schema = {
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.min <= self.max",
                                          "message": "spec.min must not exceed spec.max"}],
        }},
    }
    await extensions.create_custom_resource_definition({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": CEL_CRD_GROUP, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": plural[:-1], "kind": f"W{plural[1:-1]}"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema}}]}})
    try:
        custom = client.CustomObjectsApi(kube_api)

        async def established():
            crd = await extensions.read_custom_resource_definition(name)
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

        await eventually_async(established, 60, interval=0.25, what="the CRD Established")
        kind = f"W{plural[1:-1]}"
        good = {"apiVersion": f"{CEL_CRD_GROUP}/v1", "kind": kind,
                "metadata": {"name": "good"}, "spec": {"min": 1, "max": 2}}

        async def accepted():  # discovery of a new CRD can lag its Established condition
            try:
                await custom.create_namespaced_custom_object(CEL_CRD_GROUP, "v1", namespace, plural, good)
                return True
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return False

        await eventually_async(accepted, 60, interval=0.25, what="the CRD served")
        bad = {**good, "metadata": {"name": "bad"}, "spec": {"min": 3, "max": 2}}
        with pytest.raises(ApiException) as err:
            await custom.create_namespaced_custom_object(CEL_CRD_GROUP, "v1", namespace, plural, bad)
        assert err.value.status == 422
        assert "spec.min must not exceed spec.max" in err.value.body
    finally:
        await extensions.delete_custom_resource_definition(name)
