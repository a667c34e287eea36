"""Log lines: JSON with stable keys for pipelines, text exactly as people read it today."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from wacluster.api import log_format
from wacluster.api.interprocess import Env, Role

pytestmark = pytest.mark.unit

STABLE_KEYS = {"ts", "level", "logger", "message", "cluster", "role", "pod"}


def record(message="%s: shard %d promoted", args=("master-0", 2), level=logging.INFO, exc_info=None, **extra):
    rec = logging.LogRecord("wacluster.master", level, __file__, 1, message, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def json_formatter():
    return log_format.JsonFormatter(Role.MASTER, "wa", "wa-master-0")


def test_a_json_line_carries_the_stable_keys_and_the_process_identity():
    line = json.loads(json_formatter().format(record()))
    assert STABLE_KEYS <= line.keys()
    assert line["message"] == "master-0: shard 2 promoted"
    assert (line["level"], line["logger"]) == ("INFO", "wacluster.master")
    assert (line["cluster"], line["role"], line["pod"]) == ("wa", "master", "wa-master-0")
    assert line["ts"].endswith("+00:00")


def test_shard_epoch_term_and_message_id_appear_only_when_the_call_passes_them():
    plain = json.loads(json_formatter().format(record()))
    assert not {"shard", "epoch", "term", "message_id"} & plain.keys()
    rich = json.loads(json_formatter().format(record(shard=2, epoch=7, term=3, message_id="gBEG")))
    assert (rich["shard"], rich["epoch"], rich["term"], rich["message_id"]) == (2, 7, 3, "gBEG")


def test_an_exception_stays_in_its_one_json_line():
    try:
        raise RuntimeError("the database went away\nsecond line")
    except RuntimeError:
        text = json_formatter().format(record(level=logging.ERROR, exc_info=sys.exc_info()))
    assert "\n" not in text
    line = json.loads(text)
    assert "Traceback" in line["exception"] and "the database went away" in line["exception"]


def test_text_lines_read_as_before_and_leave_the_fields_out():
    rec = record(shard=2, epoch=7)
    text = log_format.formatter(Role.MASTER, log_format.TEXT).format(rec)
    expected = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(rec)
    assert text == expected
    assert text.endswith(" INFO wacluster.master: master-0: shard 2 promoted")


def test_the_format_comes_from_the_flag_then_the_environment_then_text(monkeypatch):
    monkeypatch.delenv(Env.LOG_FORMAT, raising=False)
    assert log_format.chosen_format() == "text"
    monkeypatch.setenv(Env.LOG_FORMAT, "json")
    assert log_format.chosen_format() == "json"
    assert log_format.chosen_format("text") == "text"


def test_an_unknown_format_is_refused_with_the_names_that_work(monkeypatch):
    monkeypatch.setenv(Env.LOG_FORMAT, "yaml")
    with pytest.raises(ValueError, match="text, json"):
        log_format.chosen_format()


def test_a_role_started_with_the_json_format_writes_one_json_object_a_line():
    script = ("import logging; from wacluster.runtime.service import configure_logging; "
              "configure_logging('coreapp'); log = logging.getLogger('wacluster.coreapp'); "
              "log.info('took shard %d over', 1, extra={'shard': 1, 'epoch': 4}); "
              "log.warning('second line')")
    env = {Env.LOG_FORMAT: "json", Env.CLUSTER: "wa", Env.POD_NAME: "wa-coreapp-1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(line["message"], line["role"], line["pod"], line.get("shard")) for line in lines] == [
        ("took shard 1 over", "coreapp", "wa-coreapp-1", 1), ("second line", "coreapp", "wa-coreapp-1", None)]
