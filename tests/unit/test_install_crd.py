"""Installing the CRD waits through the moment the API server has no conditions on it yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from wacluster_testenv.crds import install_crd

pytestmark = pytest.mark.harness


def test_a_crd_without_conditions_yet_is_waited_for_not_an_error():
    answers = iter([RuntimeError("kubectl get crd failed: error executing jsonpath: <nil> is not array or slice"),
                    "", "True"])
    calls = []

    def kubectl(*args: str) -> str:
        calls.append(args[0])
        if args[0] == "apply":
            return ""
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    install_crd(kubectl, Path("crds/whatsappcluster.yaml"), timeout=5)
    assert calls == ["apply", "get", "get", "get"]
