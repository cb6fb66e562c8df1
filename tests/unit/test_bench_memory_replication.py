"""The 10x scale-up of ``benchmarks/bench_memory.py``: unique flight keys each day, the same number
for the same flight every day, numbers within the validation's range 1-9999.

The first version gave copy ``k`` of a flight the ``k``-th block of numbers its carrier never used
at that origin over the whole period: for 120 days and more, UA at EWR flies over 1,000 distinct
numbers, so nine copies of each did not fit in 1-9999 (``ValueError``), though no day has more
than a few hundred. ``test_many_numbers_over_months_few_per_day`` failed on it.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

from mlops.config import REPO_ROOT


def _bench_memory():
    name = "benchmarks.bench_memory"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / "bench_memory.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _raw(numbers_by_day: dict[int, list[int]], carrier: str = "UA", origin: str = "EWR") -> pd.DataFrame:
    rows = [
        {
            "year": 2013,
            "month": 1 + (day // 28),
            "day": 1 + (day % 28),
            "carrier": carrier,
            "origin": origin,
            "flight": n,
            "tailnum": f"N{n}{carrier}",
            "sched_dep_time": 600 + i,
        }
        for day, numbers in numbers_by_day.items()
        for i, n in enumerate(numbers)
    ]
    return pd.DataFrame(rows)


def _check(raw: pd.DataFrame, out: pd.DataFrame, factor: int) -> None:
    assert len(out) == factor * len(raw)
    assert not out.duplicated(["carrier", "flight", "origin", "year", "month", "day"]).any()
    assert out["flight"].between(1, 9999).all()
    # Each flight (by its copy's tail number) keeps one number on every day it flies.
    assert (out.groupby("tailnum")["flight"].nunique() == 1).all()
    # Copies are new aircraft, with marks the validation accepts (^[A-Z0-9]{2,7}$).
    assert out["tailnum"].nunique() == factor * raw["tailnum"].nunique()
    assert out["tailnum"].str.fullmatch(r"[A-Z0-9]{2,7}").all()


def test_many_numbers_over_months_few_per_day():
    # 1,500 distinct numbers over 60 days, 150 of them a day (the 10 blocks rotate): 10x needs
    # 13,500 more numbers than there are over the period, but only 1,350 on any one day.
    numbers_by_day = {day: list(range(1 + 150 * (day % 10), 151 + 150 * (day % 10))) for day in range(60)}
    raw = _raw(numbers_by_day)
    out = _bench_memory().replicate_raw(raw, 10)
    _check(raw, out, 10)


def test_copies_avoid_the_numbers_flown_that_day_and_keep_real_rows():
    raw = pd.concat([_raw({0: [1, 2, 3], 1: [2, 5]}), _raw({0: [1, 2]}, carrier="B6")], ignore_index=True)
    out = _bench_memory().replicate_raw(raw, 3)
    _check(raw, out, 3)
    # The real flights are unchanged (copy 0), and the copies use numbers free those days.
    real = out[~out["tailnum"].str.startswith("Z")]
    key = ["carrier", "flight", "day", "tailnum"]
    pd.testing.assert_frame_equal(
        real[key].sort_values(key).reset_index(drop=True), raw[key].sort_values(key).reset_index(drop=True)
    )


def test_a_day_with_more_flights_than_numbers_is_refused():
    raw = _raw({0: list(range(1, 5001))})
    with pytest.raises(ValueError, match="no number in 1-9999 is free"):
        _bench_memory().replicate_raw(raw, 3)


def test_copy_numbers_table():
    table = _bench_memory()._copy_numbers(np.array([7, 7, 8]), np.array([1, 2, 1]), copies=2)
    assert table.shape == (2, 2)
    assert len({*table.ravel(), 7, 8}) == 6  # 7 and 8 fly the same day: every number distinct


def _step(stage: str, step: str, mb: float) -> dict:
    return {
        "stage": stage,
        "step": step,
        "task": "t",
        "airflow_task": "d.t",
        "by_factor": {k: {"rows": 1, "peak_rss_mb": mb, "call_seconds": 1.0} for k in ("1", "10")},
    }


def test_kept_steps_are_marked_with_their_run_and_count_for_the_limit():
    bm = _bench_memory()
    now = {"factors": [1, 10], "limit_mb": 4096, "steps": [_step("retrieval", "120 days", 900.0)]}
    earlier = {
        "started": "2026-11-23T10:38:29Z",
        "loadavg_before": [0.02, 0.02, 0.21],
        "steps": [_step("training", "refit", 5000.0), _step("retrieval", "old", 1.0)],
    }
    bm.keep_steps(now, earlier)
    assert [s["step"] for s in now["steps"]] == ["120 days", "refit"]  # a stage measured now is not kept
    assert now["steps"][1]["kept_from"] == "from run 2026-11-23T10:38:29Z at load [0.02, 0.02, 0.21]"
    assert now["within_limit"] is False and now["max_peak_rss_mb"]["stage"] == "training"
    (row,) = [r for r in bm.rows(now) if "refit" in r.measure]
    assert row.note.endswith("from run 2026-11-23T10:38:29Z at load [0.02, 0.02, 0.21]")
