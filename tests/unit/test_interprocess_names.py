"""The operator's pods and the roles in them agree on names through wacluster.api.interprocess:
what the builders set, a role reads; what a role reads, that module defines; a port a pod
declares is one its role listens on. Everything is derived from the real builders, the real
CLI and the product's source, so a name added on one side only fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import wacluster
import wacluster.controller
import wacluster.resources
from wacluster.api import interprocess
from wacluster.api.interprocess import Env
from wacluster.api.v1alpha1 import WhatsAppClusterSpec
from wacluster.cli import build_parser
from wacluster.resources.cluster import owned_objects
from wacluster.resources.pods import ClusterView
from wacluster.resources.workloads import services

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = Path(wacluster.__file__).parent
BUILDERS = Path(wacluster.resources.__file__).parent
OPERATOR = Path(wacluster.controller.__file__).parent
NAMES_MODULE = Path(interprocess.__file__)
ENV_NAME = re.compile(r"\bWACLUSTER_[A-Z0-9_]+\b")

# Specs between them reach every branch of the builders: embedded and external database,
# sandbox, external and cloud gateway, generated and user-provided Secrets.
SPECS = [
    {},
    {"database": {"mode": "external", "external": {"host": "pg.example", "credentialsSecret": {"name": "pg"}}},
     "gateway": {"mode": "external", "endpoint": "https://gw.example"},
     "api": {"adminSecretName": "admin", "tlsSecretName": "tls"}},
    {"gateway": {"mode": "cloud", "cloud": {"phoneNumberId": "1065", "credentialsSecret": "meta-cloud"}}},
]


def _views() -> list[ClusterView]:
    return [ClusterView("wa", "ns", "uid-1", WhatsAppClusterSpec.model_validate(spec), "1.0.0") for spec in SPECS]


def _runtime_containers():
    """(object, container) for every container that runs our image (not the embedded PostgreSQL)."""
    for view in _views():
        for obj in owned_objects(view, "1.0.1"):
            template = obj.get("spec", {}).get("template")
            for container in (template or {}).get("spec", {}).get("containers", []):
                if container["image"].rsplit(":", 1)[0] == view.spec.image.repository:
                    yield obj, container


def _env_set_by_the_builders() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for obj, container in _runtime_containers():
        for var in container.get("env", []):
            out.setdefault(var["name"], set()).add(f"{obj['kind']}/{obj['metadata']['name']}")
    return out


def _product_modules():
    for path in sorted(PRODUCT.rglob("*.py")):
        if path != NAMES_MODULE:
            yield path, ast.parse(path.read_text(), filename=str(path))


def _env_references(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(attributes taken of the names module's Env, WACLUSTER_* names spelled in string literals)."""
    aliases = {alias.asname or alias.name for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module == interprocess.__name__
               for alias in node.names if alias.name == "Env"}
    attributes, literals = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            attributes.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            literals.update(ENV_NAME.findall(node.value))
    return attributes, literals


def _env_read(where) -> set[str]:
    """Every environment variable the product modules for which `where(path)` holds refer to."""
    read = set()
    for path, tree in _product_modules():
        if where(path):
            attributes, literals = _env_references(tree)
            read |= {getattr(Env, a) for a in attributes if hasattr(Env, a)} | literals
    return read


def _in_role(path: Path) -> bool:
    # The builders set the variables and the operator's own process never runs in a role's pod.
    return BUILDERS not in path.parents and OPERATOR not in path.parents


def test_every_env_var_the_operator_sets_is_read_by_a_role():
    set_by_builders = _env_set_by_the_builders()
    assert set_by_builders, "the builders set no environment at all: the derivation is broken"
    read = _env_read(_in_role)
    unread = {name: sorted(where) for name, where in set_by_builders.items() if name not in read}
    assert unread == {}, f"set on these pods but read by no role: {unread}"


def test_roles_read_only_env_vars_the_names_module_defines():
    defined = {name for name in vars(Env) if not name.startswith("_")}
    problems = []
    for path, tree in _product_modules():
        attributes, literals = _env_references(tree)
        where = path.relative_to(ROOT)
        problems += [f"{where}: Env.{a} is not defined" for a in sorted(attributes - defined)]
        problems += [f"{where}: {name} spelled as a literal; use {interprocess.__name__}.Env"
                     for name in sorted(literals)]
    assert not problems, "\n".join(problems)


def test_every_env_var_the_chart_sets_on_the_operator_is_read_by_it():
    templates = (ROOT / "charts" / "wacluster" / "templates").glob("*.yaml")
    set_by_chart = {name for path in templates
                    for name in re.findall(r"-\s*name:\s*(WACLUSTER_[A-Z0-9_]+)", path.read_text())}
    assert set_by_chart, "the chart sets no WACLUSTER_* variable: the derivation is broken"
    unread = set_by_chart - _env_read(lambda path: BUILDERS not in path.parents)
    assert not unread, f"set by the chart but read by nothing: {sorted(unread)}"


def test_every_port_a_runtime_pod_declares_is_one_its_role_listens_on_by_default():
    parser = build_parser()
    for obj, container in _runtime_containers():
        declared = {p["containerPort"] for p in container.get("ports", [])}
        args = parser.parse_args(container["args"])
        listens = {getattr(args, option) for option in ("port", "metrics_port") if hasattr(args, option)}
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert declared <= listens, f"{where} declares {declared} but listens on {listens}"


def test_the_charts_service_monitor_selects_every_service_the_operator_builds():
    text = (ROOT / "charts" / "wacluster" / "templates" / "monitoring.yaml").read_text()
    clusters = text.split("-clusters", 1)[1]  # the ServiceMonitor of every WhatsAppCluster's roles
    selector, endpoints = clusters.split("matchLabels:", 1)[1].split("endpoints:", 1)
    wanted = dict(re.findall(r"^\s+([\w./-]+):\s*(\S+)\s*$", selector, re.M))
    port = re.search(r"-\s*port:\s*(\S+)", endpoints).group(1)
    assert wanted, "no matchLabels found in the chart: the derivation is broken"
    for view in _views():
        for service in services(view):
            name = service["metadata"]["name"]
            assert wanted.items() <= service["metadata"]["labels"].items(), f"{name} is not selected"
            assert port in {p["name"] for p in service["spec"]["ports"]}, f"{name} has no port {port!r}"
