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
    assert _webapp_args(workers="auto") == ["webapp", "--workers", "auto"]


@pytest.mark.parametrize("workers", [0, 65, "all"])
def test_workers_other_than_a_count_from_1_to_64_or_auto_are_refused(workers):
    with pytest.raises(pydantic.ValidationError):
        WhatsAppClusterSpec.model_validate({"webapps": {"workers": workers}})
