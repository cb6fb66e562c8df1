"""Settings from the environment, in one place.

Every environment variable of the public contract (see DESIGN.md) is read here and nowhere else.
Importing this module has no side effects: nothing is created, nothing is configured. Call
:func:`get_settings` to read the environment as it is now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The repository root (``include/mlops/config.py`` -> three levels up).
REPO_ROOT = Path(__file__).resolve().parents[2]

EXPERIMENT_NAME = "flight-delay"
MODEL_NAME = "flight_delay_xgb"
FEAST_PROJECT = "flight_delay"
FEATURE_SERVICE = "flight_delay_v1"
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"

#: Loggers that flood task logs at INFO when imported under Airflow's logging.
QUIET_LOGGERS: dict[str, str] = {
    "great_expectations._docs_decorators": "WARNING",
    "great_expectations": "WARNING",
    "py.warnings": "ERROR",
    "evidently": "WARNING",
    "feast": "WARNING",
    "alembic": "WARNING",
}


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Paths are absolute; URIs are ``file://`` or ``s3://``."""

    home: Path
    landing_uri: str
    lake_uri: str
    mlflow_tracking_uri: str
    airflow_home: Path
    feature_repo: Path
    dags_folder: Path
    plugins_folder: Path
    #: When a landing export counts as complete (MLOPS_LANDING_COMPLETENESS, mlops.ingest.landing.Completeness):
    #: "marker" (upstream's _SUCCESS, the default) or "stable:SECONDS" (unchanged that long).
    landing_completeness: str = "marker"

    @property
    def embedded(self) -> bool:
        """True when every store is local (the default profile)."""
        return self.landing_uri.startswith("file://") and self.lake_uri.startswith("file://")

    @property
    def airflow_db(self) -> Path:
        """The embedded profile's Airflow metadata database (SQLite)."""
        return self.airflow_home / "airflow.db"


def _file_uri(path: Path) -> str:
    return path.resolve().as_uri()


def _check_uri(name: str, value: str) -> str:
    if not (value.startswith("file://") or value.startswith("s3://")):
        raise ValueError(
            f"{name}={value!r} is not a supported URI: use file:///absolute/path or s3://bucket/prefix"
        )
    return value.rstrip("/")


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``), applying the embedded defaults."""
    env = os.environ if env is None else env
    home = Path(env.get("MLOPS_HOME") or REPO_ROOT / ".mlops").expanduser().resolve()
    return Settings(
        home=home,
        landing_uri=_check_uri(
            "MLOPS_LANDING_URI", env.get("MLOPS_LANDING_URI") or _file_uri(home / "landing")
        ),
        lake_uri=_check_uri("MLOPS_LAKE_URI", env.get("MLOPS_LAKE_URI") or _file_uri(home / "lake")),
        mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
        airflow_home=Path(env.get("AIRFLOW_HOME") or home / "airflow").expanduser().resolve(),
        feature_repo=REPO_ROOT / "feature_repo",
        dags_folder=REPO_ROOT / "dags",
        plugins_folder=REPO_ROOT / "plugins",
        landing_completeness=env.get("MLOPS_LANDING_COMPLETENESS") or "marker",
    )


def airflow_env(settings: Settings | None = None) -> dict[str, str]:
    """Environment for the embedded Airflow (SQLite + LocalExecutor) rooted at ``MLOPS_HOME``.

    Values already set in the environment win, so a user can override any of them.
    """
    s = settings or get_settings()
    defaults = {
        "MLOPS_HOME": str(s.home),
        "AIRFLOW_HOME": str(s.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(s.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(s.plugins_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{s.airflow_db}",
        # SQLite serialises writers: wait for a busy writer instead of failing, and take the write
        # lock before reading in nested transactions (mlops.airflow.sqlite explains why).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "mlops.airflow.sqlite.CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "mlops.airflow.sqlite.CONNECT_ARGS",
        # Eight task slots on two cores: most task time is orchestration latency (fork, Execution
        # API calls, SQLite commits), not CPU, so more slots hide it. A 30-day ingestion backfill
        # took 41.4 s with 8 slots and 8 active runs vs 86.5 s with 4 and 4 (same load,
        # benchmarks/README.md); SQLite stays safe (mlops.airflow.sqlite).
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "8",
        # Those slots run XGBoost fits side by side (a search's candidates, two models' training
        # runs), each with nthread=2: OpenMP's default spin-waiting then burns the cores the other
        # fits need. Passive waiting gives the same model bit for bit at a fifth of the CPU: 4
        # concurrent fits of the demo's training set 11-14 -> 2.2 CPU-s each (benchmarks/bench_threads.py).
        "OMP_WAIT_POLICY": "PASSIVE",
        # A task whose supervisor died (OOM, SIGKILL) is failed (and retried) after 60 s without a
        # heartbeat, not Airflow's 300 s; supervisors heartbeat every 5 s (tests/integration/test_faults.py).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"(airflow|mlops)\..*",
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": " ".join(f"{k}={v}" for k, v in QUIET_LOGGERS.items()),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": "8080",
        "AIRFLOW__WEBSERVER__WARN_DEPLOYMENT_EXPOSURE": "False",
        "MLFLOW_TRACKING_URI": s.mlflow_tracking_uri,
        "MLOPS_LANDING_URI": s.landing_uri,
        "MLOPS_LAKE_URI": s.lake_uri,
        # The embedded profile replays 2013: time schedules end there (see mlops.airflow.defaults).
        "MLOPS_SCHEDULE_END": "2013-12-31",
        "NO_PROXY": "*",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "DO_NOT_TRACK": "1",
        "FEAST_USAGE": "False",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    return {k: os.environ.get(k, v) for k, v in defaults.items()}
