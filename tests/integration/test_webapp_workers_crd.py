"""spec.webapps.workers as the API server checks it on admission (the generated CRD schema)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def _dry_run(k, workers, **webapps) -> None:
    manifest = {"apiVersion": "wacluster.io/v1alpha1", "kind": "WhatsAppCluster",
                "metadata": {"name": "workers", "namespace": "default"},
                "spec": {"webapps": {"workers": workers, **webapps}}}
    k("apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest))


@pytest.mark.parametrize("workers", [1, 4])
def test_a_worker_count_is_admitted(k, crd, workers):
    _dry_run(k, workers)


def test_auto_with_a_cpu_limit_is_admitted(k, crd):
    _dry_run(k, "auto", resources={"limits": {"cpu": "2"}})


def test_auto_without_a_cpu_limit_is_refused_saying_what_to_set(k, crd):
    with pytest.raises(RuntimeError) as err:
        _dry_run(k, "auto")
    assert "webapps.resources.limits.cpu" in str(err.value)


@pytest.mark.parametrize("workers", [0, 65, "all", "2"])
def test_other_worker_values_are_refused_naming_the_field(k, crd, workers):
    with pytest.raises(RuntimeError) as err:
        _dry_run(k, workers)
    assert "spec.webapps.workers" in str(err.value)
