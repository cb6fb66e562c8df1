"""benchmarks.harness.register with ``measure=``: the section ``mlops bench`` runs is
``rows(measure())``, its measurement kept in the report's details (bench_drift, bench_scoring and
bench_memory register theirs this way)."""

from __future__ import annotations

import sys

import pytest

from mlops.config import REPO_ROOT


@pytest.fixture
def harness():
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from benchmarks import harness
    finally:
        sys.path.remove(str(REPO_ROOT))
    return harness


def test_a_measured_section_reports_its_rows_and_details(harness):
    def rows(m):
        return [harness.Row("t", "wall", m["seconds"], "none", 1.0)]

    name = "pytest_measured_section"
    try:
        harness.register(
            name, rows=rows, measure=lambda: {"seconds": 2.5, "noise": 1}, details=lambda m: m["seconds"]
        )
        report = harness.Report(started="now", machine={})
        harness.SECTIONS[name](report, days=3)
        assert [(r.section, r.value) for r in report.rows] == [("t", 2.5)]
        assert report.details == {name: 2.5}
        with pytest.raises(ValueError, match="'pytest_no_rows': measure= needs rows="):
            harness.register("pytest_no_rows", measure=dict)
    finally:
        harness.SECTIONS.pop(name, None)


def test_the_stage_benchmarks_register_their_sections(harness):
    harness._load_stage_sections()
    assert {"drift", "scoring", "memory"} <= set(harness.SECTIONS)
    assert {"drift", "scoring", "memory", "retrieval", "training_set"} <= set(harness.STANDALONE)
