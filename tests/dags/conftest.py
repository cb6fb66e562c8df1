from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="session")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    """A DagBag of the repo's DAGs, parsed under a throwaway AIRFLOW_HOME."""
    home = tmp_path_factory.mktemp("airflow_home")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))
