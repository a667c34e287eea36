"""spec.webapps.workers: how many webapp processes a pod runs, passed as `wacluster webapp --workers`."""

from __future__ import annotations

import pydantic
import pytest

from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.resources.pods import ClusterView
from wacluster.resources.workloads import webapp_deployment

pytestmark = pytest.mark.unit


def _webapp_args(**webapps) -> list[str]:
    spec = WhatsAppClusterSpec.model_validate({"webapps": webapps} if webapps else {})
    deployment = webapp_deployment(ClusterView("wa", "ns", "uid-1", spec, "1.0.0"))
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_by_default_a_webapp_pod_runs_one_process_and_its_arguments_are_unchanged():
    assert _webapp_args() == ["webapp"]


def test_a_worker_count_is_passed_to_the_webapp():
    assert _webapp_args(workers=3) == ["webapp", "--workers", "3"]


def test_auto_workers_are_passed_to_the_webapp():
    assert _webapp_args(workers="auto", resources={"limits": {"cpu": "2"}}) == ["webapp", "--workers", "auto"]


@pytest.mark.parametrize("workers", [0, 65, "all"])
def test_workers_other_than_a_count_from_1_to_64_or_auto_are_refused(workers):
    with pytest.raises(pydantic.ValidationError):
        WhatsAppClusterSpec.model_validate({"webapps": {"workers": workers}})


def test_auto_workers_without_a_cpu_limit_are_refused():
    with pytest.raises(pydantic.ValidationError, match="limits.cpu"):
        WhatsAppClusterSpec.model_validate({"webapps": {"workers": "auto"}})


def test_several_workers_without_resources_get_a_memory_limit_for_every_process():
    spec = WhatsAppClusterSpec.model_validate({"webapps": {"workers": 3}})
    container = webapp_deployment(ClusterView("wa", "ns", "uid-1", spec, "1.0.0"))["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "768Mi"
    default = webapp_deployment(ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec(), "1.0.0"))
    assert default["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "384Mi"
