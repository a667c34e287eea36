"""The image recipe keeps its promises (it is built and run by the e2e suite where Docker runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_base_image_is_a_build_argument_defaulting_to_the_official_slim_python():
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", DOCKERFILE, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", DOCKERFILE, re.M)) == 2  # multi-stage


def test_final_stage_carries_only_the_virtualenv_and_runs_as_a_numeric_user():
    final = DOCKERFILE.split("\nFROM ")[-1]
    assert "COPY --from=build /opt/wacluster /opt/wacluster" in final
    assert not re.search(r"^COPY (?!--from)", final, re.M)
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert 'ENTRYPOINT ["wacluster"]' in final


def test_oci_labels_are_set():
    for label in ("title", "version", "revision", "source", "licenses"):
        assert f"org.opencontainers.image.{label}=" in DOCKERFILE


def test_the_build_context_leaves_out_the_repository_clutter():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "tests"):
        assert entry in ignored
