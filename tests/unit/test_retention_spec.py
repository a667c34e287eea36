"""spec.retention: defaults, bounds checked at admission, and the days reaching the roles'
settings (the settings ConfigMap the primary master copies into the settings table)."""

from __future__ import annotations

import json

import pydantic
import pytest

from wacluster.api.crd import crd
from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.db.settings import DEFAULTS
from wacluster.resources.config import runtime_settings, settings_config_map
from wacluster.resources.pods import ClusterView

pytestmark = pytest.mark.unit


def _view(**spec) -> ClusterView:
    return ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec.model_validate(spec), "1.0.0")


def _retention_schema() -> dict:
    version = crd()["spec"]["versions"][0]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["retention"]


def test_an_omitted_retention_keeps_a_month_of_messages_and_media_a_week_of_webhooks_a_quarter_of_failovers():
    retention = WhatsAppClusterSpec().retention
    assert (retention.messages_days, retention.webhook_events_days, retention.failovers_days,
            retention.media_days) == (30, 7, 90, 30)


def test_the_roles_defaults_match_the_crd_defaults():
    # A database the operator never wrote settings into prunes as a default cluster would.
    settings = runtime_settings(_view())
    for key in ("retention_messages_days", "retention_webhook_events_days", "retention_failovers_days",
                "retention_media_days"):
        assert settings[key] == DEFAULTS[key], key


def test_the_retention_spec_reaches_the_settings_config_map():
    cm = settings_config_map(_view(retention={"messagesDays": 3, "webhookEventsDays": 1, "failoversDays": 0,
                                              "mediaDays": 14}))
    settings = json.loads(cm["data"]["settings.json"])
    assert (settings["retention_messages_days"], settings["retention_webhook_events_days"],
            settings["retention_failovers_days"], settings["retention_media_days"]) == (3, 1, 0, 14)


@pytest.mark.parametrize("bad", [{"messagesDays": -1}, {"mediaDays": 3651}, {"failoversDays": 1.5},
                                 {"webhookEventDays": 7}])
def test_negative_huge_fractional_or_misspelt_retention_is_refused(bad):
    with pytest.raises(pydantic.ValidationError):
        WhatsAppClusterSpec.model_validate({"retention": bad})


def test_the_crd_states_the_defaults_and_bounds_for_admission_and_kubectl_explain():
    schema = _retention_schema()
    assert schema["description"]
    for field, default in [("messagesDays", 30), ("webhookEventsDays", 7), ("failoversDays", 90), ("mediaDays", 30)]:
        prop = schema["properties"][field]
        assert (prop["type"], prop["default"], prop["minimum"], prop["maximum"]) == ("integer", default, 0, 3650)
        assert prop["description"]
