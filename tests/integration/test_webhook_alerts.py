"""The dead-letter alert fires when webhook events are dead-lettered and clears once none were
for 15 minutes (promtool's rule unit tests on the chart's own alerts.yaml)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from wacluster_testenv.build import bin_dir

pytestmark = pytest.mark.integration
ALERTS = Path(__file__).resolve().parents[2] / "charts" / "wacluster" / "files" / "alerts.yaml"


def test_dead_lettered_webhook_events_raise_an_alert_that_clears(tmp_path):
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    rule = next(r for r in rules if r["alert"] == "WaclusterWebhookEventsDeadLettered")
    annotations = {k: v.replace("{{ $labels.namespace }}", "wa") for k, v in rule["annotations"].items()}
    # One event dead at minute 3 on one webapp, none on the other.
    spec = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'wacluster_webhook_events_dead_total{namespace="wa",pod="web-1"}', "values": "0 0 0 1x40"},
            {"series": 'wacluster_webhook_events_dead_total{namespace="wa",pod="web-2"}', "values": "0x43"},
        ],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": "WaclusterWebhookEventsDeadLettered", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "WaclusterWebhookEventsDeadLettered", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "wa"}, "exp_annotations": annotations}]},
            {"eval_time": "25m", "alertname": "WaclusterWebhookEventsDeadLettered", "exp_alerts": []},
        ],
    }]}
    test_file = tmp_path / "dead_letters_test.yaml"
    test_file.write_text(yaml.safe_dump(spec))
    result = subprocess.run([str(bin_dir() / "promtool"), "test", "rules", str(test_file)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_database_clock_running_fast_for_ten_minutes_raises_an_alert(tmp_path):
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    rule = next(r for r in rules if r["alert"] == "WaclusterDatabaseClockFast")
    spec = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'wacluster_coreapp_database_clock_rate{namespace="wa",pod="core-1"}', "values": "1x5 1.04x20"},
            {"series": 'wacluster_coreapp_database_clock_rate{namespace="wa",pod="core-2"}', "values": "1.0001x25"},
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "WaclusterDatabaseClockFast", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "WaclusterDatabaseClockFast", "exp_alerts": [
                {"exp_labels": {"severity": "warning", "namespace": "wa", "pod": "core-1"},
                 "exp_annotations": {k: v.replace("{{ $value }}", "1.04").replace("{{ $labels.pod }}", "core-1")
                                     .replace("{{ $labels.namespace }}", "wa") for k, v in rule["annotations"].items()}}]},
        ],
    }]}
    test_file = tmp_path / "clock_test.yaml"
    test_file.write_text(yaml.safe_dump(spec))
    result = subprocess.run([str(bin_dir() / "promtool"), "test", "rules", str(test_file)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
