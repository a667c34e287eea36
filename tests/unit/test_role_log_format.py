"""spec.logFormat reaches every role's pods as Env.LOG_FORMAT; the default leaves the pods as they were."""

from __future__ import annotations

import pytest

from wacluster.api.interprocess import Env
from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.resources.cluster import owned_objects
from wacluster.resources.pods import ClusterView

pytestmark = pytest.mark.unit


def _role_containers(spec: dict):
    view = ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec.model_validate(spec), "1.0.0")
    for obj in owned_objects(view, "1.0.0"):
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if container["image"].rsplit(":", 1)[0] == view.spec.image.repository:
                yield f"{obj['kind']}/{obj['metadata']['name']}", container


def _log_format(container) -> str | None:
    return next((var["value"] for var in container["env"] if var["name"] == Env.LOG_FORMAT), None)


def test_log_format_json_is_set_on_every_role_pod():
    formats = {where: _log_format(container) for where, container in _role_containers({"logFormat": "json"})}
    assert {"Deployment/wa-master", "Deployment/wa-coreapp", "Deployment/wa-webapp", "Deployment/wa-sandbox",
            "Job/wa-dbupgrade-1-0-0"} <= formats.keys()
    assert set(formats.values()) == {"json"}, formats


def test_the_default_text_format_adds_nothing_to_the_pods():
    assert WhatsAppClusterSpec().log_format == "text"
    assert all(_log_format(container) is None for _, container in _role_containers({}))


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="logFormat"):
        WhatsAppClusterSpec.model_validate({"logFormat": "yaml"})
