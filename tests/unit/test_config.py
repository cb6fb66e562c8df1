"""mlops.config: embedded defaults, overrides, no side effects, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops.config import REPO_ROOT, airflow_env, get_settings


def test_embedded_defaults_live_under_mlops_home(tmp_path: Path):
    s = get_settings({"MLOPS_HOME": str(tmp_path)})
    assert s.home == tmp_path.resolve()
    assert s.landing_uri == (tmp_path / "landing").resolve().as_uri()
    assert s.lake_uri == (tmp_path / "lake").resolve().as_uri()
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert s.airflow_home == tmp_path.resolve() / "airflow"
    assert s.embedded


def test_default_home_is_repo_dot_mlops():
    assert get_settings({}).home == REPO_ROOT / ".mlops"


def test_overrides_win(tmp_path: Path):
    s = get_settings(
        {
            "MLOPS_HOME": str(tmp_path),
            "MLOPS_LANDING_URI": "s3://mlops-landing/",
            "MLOPS_LAKE_URI": "s3://mlops-lake",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "AIRFLOW_HOME": str(tmp_path / "af"),
        }
    )
    assert s.landing_uri == "s3://mlops-landing"
    assert s.lake_uri == "s3://mlops-lake"
    assert s.mlflow_tracking_uri == "http://mlflow:5000"
    assert s.airflow_home == (tmp_path / "af").resolve()
    assert not s.embedded


@pytest.mark.parametrize("bad", ["/tmp/lake", "gs://bucket", "lake"])
def test_bad_uri_names_the_variable_and_the_fix(bad: str):
    with pytest.raises(ValueError, match="MLOPS_LAKE_URI.*file:///absolute/path or s3://"):
        get_settings({"MLOPS_LAKE_URI": bad})


def test_import_has_no_side_effects(tmp_path: Path):
    home = tmp_path / "home"
    code = "import mlops.config, mlops.lake, mlops.schema, mlops.reference, sys; print(sorted(sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"MLOPS_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert not home.exists(), "importing mlops.config created MLOPS_HOME"
    loaded = set(eval(proc.stdout))  # noqa: S307 (our own repr of a list of str)
    assert not loaded & {"pandas", "airflow", "mlflow", "feast", "great_expectations"}


def test_airflow_env_embedded_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for key in list(__import__("os").environ):
        if key.startswith(("AIRFLOW", "MLOPS", "MLFLOW")):
            monkeypatch.delenv(key)
    env = airflow_env(get_settings({"MLOPS_HOME": str(tmp_path)}))
    assert env["AIRFLOW_HOME"] == str(tmp_path.resolve() / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO_ROOT / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:////")
    assert "great_expectations._docs_decorators=WARNING" in env["AIRFLOW__LOGGING__NAMESPACE_LEVELS"]
    # Concurrent XGBoost fits in the 8 task slots: OpenMP threads wait passively (bench_threads.py).
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"


def test_user_environment_overrides_airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "16")
    assert airflow_env(get_settings({"MLOPS_HOME": str(tmp_path)}))["AIRFLOW__CORE__PARALLELISM"] == "16"
