"""The local images' base keeps what the host trusts and leaves out what dpkg is told to skip."""

from __future__ import annotations

import pytest

from wacluster_testenv.images import DPKG_NO_DOCS, cloudapi_context, excluded_by_dpkg, extra_certificates

pytestmark = pytest.mark.harness


def _pem(body: str) -> str:
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"


def test_certificates_only_the_host_trusts_are_the_extra_ones():
    debian = _pem("AAAA") + "\n" + _pem("BBBB") + "\n"
    host = debian + "# egress proxy\n" + _pem("CCCC") + "\n"
    assert extra_certificates(host, debian) == [_pem("CCCC")]


def test_a_certificate_wrapped_differently_is_still_the_same_certificate():
    assert extra_certificates(_pem("AA\nAA"), _pem("AAAA")) == []


def test_documentation_manuals_and_translations_are_left_out():
    for path in ("/usr/share/doc/apt/changelog.gz", "/usr/share/man/man1/ls.1.gz",
                 "/usr/share/locale/de/LC_MESSAGES/apt.mo"):
        assert excluded_by_dpkg(path, DPKG_NO_DOCS), path


def test_copyright_files_are_kept_because_the_last_matching_rule_wins():
    assert not excluded_by_dpkg("/usr/share/doc/apt/copyright", DPKG_NO_DOCS)


def test_everything_else_is_kept():
    for path in ("/usr/lib/python3.11/os.py", "/usr/share/locale/locale.alias",
                 "/usr/share/postgresql/15/postgresql.conf.sample"):
        assert not excluded_by_dpkg(path, DPKG_NO_DOCS), path


def _tree(root, *paths: str) -> None:
    for path in paths:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)


def test_the_cloud_api_context_has_its_dockerfile_the_product_versions_and_the_harness(tmp_path):
    _tree(tmp_path, "hack/images/cloudapi/Dockerfile", "pyproject.toml", "tests/harness/pyproject.toml",
          "tests/harness/wacluster_testenv/cloudapi.py", "tests/harness/wacluster_testenv/pause.c",
          "operator/wacluster/cli.py")
    context = cloudapi_context(tmp_path)
    assert context == {
        "Dockerfile": tmp_path / "hack/images/cloudapi/Dockerfile",
        "pyproject.toml": tmp_path / "pyproject.toml",
        "harness/pyproject.toml": tmp_path / "tests/harness/pyproject.toml",
        "harness/wacluster_testenv/cloudapi.py": tmp_path / "tests/harness/wacluster_testenv/cloudapi.py",
        "harness/wacluster_testenv/pause.c": tmp_path / "tests/harness/wacluster_testenv/pause.c",
    }


def test_bytecode_stays_out_of_the_cloud_api_context(tmp_path):
    _tree(tmp_path, "hack/images/cloudapi/Dockerfile", "pyproject.toml", "tests/harness/pyproject.toml",
          "tests/harness/wacluster_testenv/cloudapi.py",
          "tests/harness/wacluster_testenv/__pycache__/cloudapi.cpython-311.pyc",
          "tests/harness/wacluster_testenv/stray.pyc")
    assert not [name for name in cloudapi_context(tmp_path) if "pyc" in name]
