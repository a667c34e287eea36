"""How many webapp workers `--workers` starts (runtime/webapp/workers.py)."""

from __future__ import annotations

import pytest

from wacluster.runtime.webapp.workers import AUTO, cpus_from_cpu_max, worker_count, workers_option

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text, cpus", [("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1),
                                        ("400000 100000\n", 4), ("100000 50000", 2)])
def test_cpu_max_quota_gives_whole_cpus_rounded_up(text, cpus):
    assert cpus_from_cpu_max(text) == cpus


@pytest.mark.parametrize("text", ["max 100000", "max 100000\n", "", "garbage", "0 100000", "100000 0"])
def test_cpu_max_without_a_usable_quota_is_no_limit(text):
    assert cpus_from_cpu_max(text) is None


def test_auto_takes_the_container_cpu_limit(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("300000 100000\n")
    assert worker_count(AUTO, cpu_max, lambda: 16) == 3


def test_auto_never_exceeds_the_machine_cpus(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("800000 100000\n")
    assert worker_count(AUTO, cpu_max, lambda: 2) == 2


def test_auto_without_a_cpu_limit_takes_the_machine_cpus(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert worker_count(AUTO, cpu_max, lambda: 6) == 6


def test_auto_without_cgroup_v2_takes_the_machine_cpus(tmp_path):
    assert worker_count(AUTO, tmp_path / "missing", lambda: 4) == 4


def test_a_given_count_is_taken_as_is(tmp_path):
    assert worker_count(3, tmp_path / "missing", lambda: 2) == 3


@pytest.mark.parametrize("text", ["0", "-1", "two", ""])
def test_workers_option_refuses_what_is_not_a_positive_count_or_auto(text):
    with pytest.raises(ValueError):
        workers_option(text)


def test_workers_option_reads_a_count_and_auto():
    assert workers_option("4") == 4 and workers_option("auto") == AUTO
