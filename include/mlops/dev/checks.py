"""Developer checks shared by the tests and the benchmarks (no Airflow import at module level)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

from mlops.config import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path

#: Libraries a DAG file must not import at parse time (DESIGN.md, "Rules that hold everywhere").
HEAVY_MODULES: tuple[str, ...] = ("pandas", "xgboost", "mlflow", "feast", "great_expectations", "evidently")

_PROBE = """
import json, sys, time, runpy
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dag_file")
t2 = time.perf_counter()
heavy = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps({"sdk_import_seconds": t1 - t0, "seconds": t2 - t1, "heavy": heavy}))
"""

EMPTY_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2013, 1, 1, tz="UTC"), tags=["bench"])
def empty_dag():
    @task
    def noop() -> None:
        return None

    noop()


empty_dag()
"""


def parse_dag_file(path: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    """Import one DAG file in a fresh interpreter (after ``airflow.sdk``, which every DAG pays).

    Returns ``seconds`` (the file's own parse time) and ``heavy`` (heavy modules it pulled in).
    """
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), json.dumps(HEAVY_MODULES)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{path.name} failed to import:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def load_dagbag(folder: Path):  # -> airflow.dag_processing.dagbag.DagBag
    """Parse ``folder`` into a DagBag (examples off), for structure checks and benchmarks."""
    import os

    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))
