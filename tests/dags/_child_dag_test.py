"""Test helper: ``dag.test()`` of a repo DAG in a child process, on a seeded home.

The parent (:func:`run_in_child`) copies ``dags/{dag_id}.py`` into a DAG folder of its own,
initializes the embedded Airflow metadata database of the home's settings and runs
``python -m tests.dags.test_{dag_id} plan.json``: the test module's ``__main__`` reads the plan,
loads the DAG (:func:`load_dag`), runs ``dag.test()`` as it needs and prints one ``RESULT`` line a
run (:func:`print_result`) and the asset events last (:func:`print_events`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.dags.conftest import REPO

if TYPE_CHECKING:
    from mlops.config import Settings


def run_in_child(
    tmp: Path, dag_id: str, settings: Settings, plan: dict[str, Any], *, timeout: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the test module of ``dag_id`` on ``plan`` (plus ``dag_file``) in a child process;
    returns its RESULT lines and its asset events (it must exit 0 and print both)."""
    from mlops.dev.embedded import environment, init_db

    dags = tmp / "dags"
    dags.mkdir()
    dag_file = dags / f"{dag_id}.py"
    shutil.copy(REPO / "dags" / f"{dag_id}.py", dag_file)
    env = {
        **environment(settings),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    init_db(env)
    plan_file = tmp / "plan.json"
    plan_file.write_text(json.dumps({**plan, "dag_file": str(dag_file)}))
    out, err = tmp / "child.out", tmp / "child.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", f"tests.dags.test_{dag_id}", str(plan_file)],
            env=env,
            cwd=REPO,
            stdout=stdout,
            stderr=stderr,
            text=True,
            timeout=timeout,
            check=False,
        )
    lines = out.read_text().splitlines()
    results = [json.loads(x[7:]) for x in lines if x.startswith("RESULT ")]
    events = [json.loads(x[7:]) for x in lines if x.startswith("EVENTS ")]
    assert proc.returncode == 0 and results and events, err.read_text()[-6000:]
    return results, events[0]


def load_dag(plan: dict[str, Any], dag_id: str) -> Any:
    """The DAG ``dag_id`` of the plan's DAG file (imported as the DAG processor would)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(dag_id, plan["dag_file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id]
    assert found, f"{plan['dag_file']} defines no DAG {dag_id!r}"
    return found[0]


def print_result(run: Any, **extra: Any) -> None:
    """One ``RESULT`` line: the run's state, its task states and ``extra``."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        tasks = {ti.task_id: str(ti.state) for ti in tis}
    print("RESULT " + json.dumps({**extra, "state": str(run.state), "tasks": tasks}), flush=True)


def print_events() -> None:
    """The ``EVENTS`` line: every asset event (asset name and extra), oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetModel.name, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .order_by(AssetEvent.id)
            .all()
        )
    print("EVENTS " + json.dumps([{"asset": name, "extra": extra} for name, extra in rows]), flush=True)
