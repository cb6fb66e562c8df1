"""CLI errors read in a line, not a traceback; unknown conf keys are refused at trigger time (issue 19).

``mlops airflow dags trigger train_model -c '{"learning_rate": "abc"}'`` used to print 45 lines of
traceback before Airflow's ``Invalid input for param ...``; ``-c '{"learnng_rate": 0.2}'`` created
a run that trained with the default rate. The commands run here as a user runs them (the real
``mlops`` entry point in a subprocess, the real Airflow CLI and a migrated SQLite metadata database
holding the serialized DAGs), so the output checked is what a terminal shows. The tests that need
that database (a minute or two of Airflow CLI start-ups) are ``slow``; a conf that is not JSON is
refused before the database is read, so that one stays in the fast tier.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HOME_OVERRIDES, REPO

MLOPS = str(Path(sys.executable).parent / "mlops")
HINT = "(for the traceback: mlops --debug ... or MLOPS_DEBUG=1)"


def _mlops(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MLOPS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _home_env(home: Path) -> dict[str, str]:
    """The environment of a user whose MLOPS_HOME is ``home`` (embedded defaults under it)."""
    env = {k: v for k, v in os.environ.items() if k not in HOME_OVERRIDES and k != "MLOPS_DEBUG"}
    env["MLOPS_HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An embedded profile in a fresh MLOPS_HOME whose metadata database holds train_model and
    ingest_flights (only those two files are parsed, to keep the setup short)."""
    home = tmp_path_factory.mktemp("cli_errors")
    dags = home / "dags"
    dags.mkdir()
    for name in ("train_model.py", "ingest_flights.py"):
        (dags / name).symlink_to(REPO / "dags" / name)
    env = {**_home_env(home / "mlops"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    for args in (("db", "migrate"), ("dags", "reserialize")):
        proc = _mlops(env, "airflow", *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return env


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed command, checked to be a line and the hint, with no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == HINT, lines
    return lines[-2]


def test_a_conf_that_is_not_json_is_one_line(tmp_path):
    proc = _mlops(
        _home_env(tmp_path), "airflow", "dags", "trigger", "train_model", "-c", "{learning_rate: 0.2}"
    )
    assert _one_line_error(proc) == (
        "airflow dags trigger: error: -c/--conf is not valid JSON (Expecting property name enclosed in "
        'double quotes: line 1 column 2 (char 1)); pass an object, e.g. \'{"ds": "2013-03-01"}\''
    )


@pytest.mark.slow
def test_a_bad_param_value_is_one_line_naming_param_value_and_range(airflow_env):
    conf = '{"learning_rate": "abc"}'
    proc = _mlops(airflow_env, "airflow", "dags", "trigger", "train_model", "-c", conf)
    assert _one_line_error(proc) == (
        "airflow dags trigger: error: invalid value for param 'learning_rate' of train_model: "
        "'abc' is not of type 'number'; valid: a number > 0 and <= 1"
    )
    # --debug (or MLOPS_DEBUG=1) shows Airflow's traceback instead.
    debug = _mlops(airflow_env, "--debug", "airflow", "dags", "trigger", "train_model", "-c", conf)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "ParamValidationError: Invalid input for param learning_rate" in debug.stderr


@pytest.mark.slow
def test_backfill_run_conf_errors_are_one_line(airflow_env):
    args = ["airflow", "backfill", "create", "--dag-id", "train_model", "--dry-run"]
    args += ["--from-date", "2013-03-04", "--to-date", "2013-03-11"]
    proc = _mlops(airflow_env, *args, "--dag-run-conf", '{"window_days": 5000}')
    assert _one_line_error(proc) == (
        "airflow backfill create: error: invalid value for param 'window_days' of train_model: "
        "5000 is greater than the maximum of 730; valid: an integer >= 14 and <= 730"
    )


@pytest.mark.slow
def test_an_unknown_conf_key_is_refused_at_trigger_time_and_no_run_is_created(airflow_env):
    proc = _mlops(airflow_env, "airflow", "dags", "trigger", "ingest_flights", "-c", '{"allow_partal": true}')
    assert _one_line_error(proc) == (
        "airflow dags trigger: error: unknown param 'allow_partal' (did you mean 'allow_partial'?) "
        "in the run's conf: ingest_flights takes only ds, allow_partial. Trigger again with the right "
        "name (Airflow would otherwise ignore the key and run with the default)."
    )
    db = Path(airflow_env["MLOPS_HOME"]) / "airflow" / "airflow.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from dag_run").fetchone() == (0,)  # nothing was created


@pytest.mark.slow
def test_mlops_own_command_errors_are_one_line(mlops_home, capsys):
    """``mlops lineage 999`` (no such version) used to end in MLflow's traceback (slow: MLflow
    creates its database first)."""
    from mlops.cli import main

    assert main(["lineage", "999"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-2:] == [  # after MLflow's own log lines
        "mlops lineage: error: no version 999 of the registered model 'flight_delay_xgb' (Model Version "
        "(name=flight_delay_xgb, version=999) not found): list them with `mlops audit` or the MLflow UI; "
        "pick another model with --model",
        HINT,
    ]
    with pytest.raises(Exception, match="version=999"):
        main(["--debug", "lineage", "999"])
