"""The chart's alerts, specified by promtool rule unit tests (tests/alerts/*.test.yaml): each alert
has a case where it fires, with the labels and annotations it carries, and one where it stays quiet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from wacluster_testenv.build import bin_dir

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "charts" / "wacluster" / "files" / "alerts.yaml"
ALERT_TESTS = sorted((ROOT / "tests" / "alerts").glob("*.test.yaml"))


def alert_names() -> set[str]:
    return {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule}


def test_every_alert_test_passes_promtool():
    result = subprocess.run([str(bin_dir() / "promtool"), "test", "rules", *map(str, ALERT_TESTS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(ALERT_TESTS) > 0


def test_every_alert_has_a_case_that_fires_it_and_one_that_keeps_it_quiet():
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in ALERT_TESTS:
        spec = yaml.safe_load(path.read_text())
        # A test of a copy of the rules would specify nothing about the chart's.
        assert [(path.parent / f).resolve() for f in spec["rule_files"]] == [ALERTS], path.name
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alert_names() - fires == set(), "alerts no test sees firing"
    assert alert_names() - quiet == set(), "alerts no test sees staying quiet"
