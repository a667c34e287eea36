"""The wrapper module for k8s.io/kubernetes is derived from the release's own go.mod."""

from __future__ import annotations

import pytest

from wacluster_testenv.build import kubernetes_ldflags, staging_replaces

pytestmark = pytest.mark.harness

GOMOD = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tgithub.com/spf13/cobra v1.9.1
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kms => ./staging/src/k8s.io/kms
\tgithub.com/example/fork => github.com/example/fork v1.2.3
)
"""


def test_every_staging_module_is_replaced_by_its_published_version():
    assert staging_replaces(GOMOD, "v1.37.2") == {
        "k8s.io/api": "v0.37.2",
        "k8s.io/client-go": "v0.37.2",
        "k8s.io/kms": "v0.37.2",
    }


def test_non_staging_replacements_are_not_copied():
    assert "github.com/example/fork" not in staging_replaces(GOMOD, "v1.37.2")


def test_a_gomod_without_staging_replacements_is_an_error():
    with pytest.raises(RuntimeError, match="no staging replace"):
        staging_replaces("module x\n", "v1.37.2")


def test_version_is_stamped_into_the_binaries():
    flags = kubernetes_ldflags("v1.37.2")
    assert "gitVersion=v1.37.2" in flags
    assert "gitMajor=1" in flags and "gitMinor=37" in flags
