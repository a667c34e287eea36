"""The product's wheel (what the image installs with `pip install .`) carries the operator and the
runtime roles only: the test harness is a package of its own under tests/harness."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> list[str]:
    # Built from a copy of what the Dockerfile copies: setuptools keeps a build/ directory in the
    # source tree, whose stale files would otherwise end up in the wheel.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "operator", source / "operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "-w", str(out), str(source)],
        capture_output=True, text=True, cwd=out)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = out.glob("wacluster-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_the_product_wheel_holds_no_test_harness(wheel_files):
    harness = [name for name in wheel_files if "testenv" in name or name.endswith(".c")]
    assert harness == []


def test_the_product_wheel_holds_the_operator_and_every_role(wheel_files):
    for module in ("wacluster/cli.py", "wacluster/controller/main.py", "wacluster/runtime/master/__init__.py",
                   "wacluster/runtime/coreapp/main.py", "wacluster/runtime/webapp/app.py",
                   "wacluster/runtime/sandbox.py", "wacluster/runtime/dbupgrade.py"):
        assert module in wheel_files


def test_the_image_build_context_leaves_the_harness_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "tests" in ignored
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ") and "--from" not in line]
    assert all(not source.startswith("tests") for source in copied), copied
