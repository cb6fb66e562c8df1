"""``mlops bench --collect``: the table from results files, nothing re-run (benchmarks/harness.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict

from mlops.config import REPO_ROOT


def _harness():
    name = "benchmarks.harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / "harness.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_collect_tables_harness_rows_and_standalone_results(tmp_path, monkeypatch):
    h = _harness()
    for attr, value in (("SECTIONS", {}), ("STANDALONE", {}), ("LABELS", {}), ("RESULTS_DIR", tmp_path)):
        monkeypatch.setattr(h, attr, value)
    monkeypatch.setattr(h, "_load_stage_sections", lambda: None)
    machine = {
        "python": "3.11.7",
        "cpus": 2,
        "memory_gb": 8.0,
        "loadavg_at_start": [0.1, 0.2, 0.3],
        "versions": {"pandas": "0"},
    }
    (tmp_path / "20260101T000000Z.json").write_text(
        json.dumps(
            {
                "started": "2026-01-01T00:00:00Z",
                "machine": machine,
                "rows": [asdict(h.Row("1 parse", "a.py", 0.2, "empty DAG file", 0.1))],
                "details": {},
            }
        )
    )
    (tmp_path / "toy.json").write_text(
        json.dumps(
            {"started": "2026-01-02T03:04:05Z", "load_average_start": [1.5, 1.0, 0.5], "one": 2.0, "ten": 8.0}
        )
    )
    (tmp_path / "broken.json").write_text(json.dumps({"one": 2.0}))

    def rows(result, missing=None):
        out = [h.Row("9 toy", "ten in one call", result["one"], "one call x 10", result["ten"])]
        if "hundred" not in result and missing is not None:
            missing.append("hundred: not in the results")
        return out

    for name in ("toy", "broken", "absent"):
        h.register(name, results=tmp_path / f"{name}.json", rows=rows, command=f"make {name}")

    report = h.collect(write=False)
    md = h.markdown(report)

    assert "| 1 parse | a.py | 0.200 s | empty DAG file | 0.100 s | 2.00x |" in md
    assert "(from run 2026-01-01T00:00:00Z)" in md
    assert (
        "| 9 toy | ten in one call | 2.000 s | one call x 10 | 8.000 s | 0.25x |  |  | "
        "(standalone run 2026-01-02T03:04:05Z, load [1.5, 1.0, 0.5]) |"
    ) in md
    assert "Collected " in md and "no section was re-run" in md
    assert "- toy: hundred: not in the results" in md
    assert "- broken: " in md and "lacks what its rows need" in md
    assert "- absent: no standalone results file" in md
    assert [r.section for r in report.rows] == ["1 parse", "9 toy"]
    assert len(list(tmp_path.glob("2*.json"))) == 1  # --collect writes no harness results file
