"""The embedded runner's parsing of the Airflow CLI's output (no Airflow started)."""

from __future__ import annotations

import pytest

from mlops.embedded import parse_json_list

RUNS = '[{"dag_id": "ingest_flights", "run_id": "backfill__2013-01-01", "state": "success"}]'


@pytest.mark.parametrize(
    "stdout",
    [
        RUNS,
        f"[2026-11-23T05:00:00] WARNING - something [noisy]\n{RUNS}\n",
        f"/path/x.py:1 DeprecationWarning: use [a] not [b]\n  warnings.warn(...)\n{RUNS}",
    ],
)
def test_runs_are_found_behind_noise(stdout: str) -> None:
    assert parse_json_list(stdout) == [
        {"dag_id": "ingest_flights", "run_id": "backfill__2013-01-01", "state": "success"}
    ]


@pytest.mark.parametrize("stdout", ["", "[]", "No data found\n"])
def test_no_runs(stdout: str) -> None:
    assert parse_json_list(stdout) == []


def test_unreadable_output_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="no JSON list of runs"):
        parse_json_list("Traceback (most recent call last): [boom]")
