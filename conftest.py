"""Root pytest configuration: isolate Airflow from the user's machine before anything imports it.

Tests never touch ``~/airflow`` or the repo's ``.mlops``: AIRFLOW_HOME points at a throwaway
directory (unless a test sets its own), examples are off and the DAGs folder is the repo's.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="pytest-airflow-home-"))
os.environ.setdefault("MLOPS_HOME", tempfile.mkdtemp(prefix="pytest-mlops-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__LOGGING__NAMESPACE_LEVELS", "great_expectations=WARNING")
