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


def test_runs_are_read_from_the_sqlite_metadata_db(tmp_path) -> None:
    import sqlite3

    from mlops.embedded import list_runs

    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id TEXT, run_id TEXT, run_type TEXT, "
            "state TEXT, logical_date TEXT, start_date TEXT, end_date TEXT)"
        )
        conn.executemany(
            "INSERT INTO dag_run (dag_id, run_id, run_type, state) VALUES (?, ?, ?, ?)",
            [("a", "backfill__1", "backfill", "success"), ("b", "manual__1", "manual", "running")],
        )
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}"}
    (run,) = list_runs("a", env)
    assert (run["run_id"], run["run_type"], run["state"]) == ("backfill__1", "backfill", "success")
    assert list_runs("c", env) == []
    assert list_runs("a", {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/none.db"}) == []
