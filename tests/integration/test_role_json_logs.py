"""Roles started with Env.LOG_FORMAT=json (what spec.logFormat: json sets on their pods) write one
JSON object a line, and their decisions carry the fields a log pipeline filters on."""

from __future__ import annotations

import json

import pytest

from runtime_cluster import connected
from wacluster.api.interprocess import Env
from wacluster_testenv.eventually import eventually

pytestmark = pytest.mark.integration

JSON = {Env.LOG_FORMAT: "json"}


def json_lines(path) -> list[dict]:
    """Every line of a role's log, each of which must be one JSON object."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_master_and_a_coreapp_log_their_decisions_as_json_with_term_shard_and_epoch(cluster):
    master = cluster.start_master("master1", env=JSON)
    cluster.coreapp_env = {**cluster.coreapp_env, **JSON}
    coreapp = cluster.start_coreapp("wacore1")
    eventually(lambda: cluster.primary_master(), 30, what="a primary master")
    cluster.register()
    owners = eventually(lambda: connected(cluster), 60, what="shard 0 served")
    epoch = owners[0][1]

    def served_line():
        return next((line for line in json_lines(coreapp.log)
                     if line["message"] == f"wacore1: serving shard 0 (epoch {epoch})"), None)
    serving = eventually(served_line, 30, what="the coreapp's 'serving shard 0' line")
    assert (serving["role"], serving["logger"], serving["shard"], serving["epoch"]) == \
        ("coreapp", "wacluster.coreapp", 0, epoch)

    lines = json_lines(master.log)
    became = next(i for i, line in enumerate(lines) if line["message"].startswith("master1 is the primary master"))
    term = lines[became]["term"]
    assert lines[became]["role"] == "master" and term >= 1
    # Its one sentence a cycle, from then on, names the term it acts under.
    sentences = [line for line in lines[became:] if line["message"].startswith("master1: ")]
    assert sentences and all(line.get("term") == term for line in sentences), sentences
