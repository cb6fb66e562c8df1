"""monitor_drift's wiring: schedule and end date, the params form, the operator and its links,
the retrain_request outlet, and parse safety of the operator module."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from tests.dags.conftest import REPO


def test_daily_backfillable_and_ends_with_the_replayed_year(dagbag):
    from mlops.airflow.defaults import END_DATE

    dag = dagbag.dags["monitor_drift"]
    assert dag.schedule == "@daily"
    assert dag.end_date == END_DATE
    assert dag.max_active_runs >= 2  # backfills run checks concurrently: the guard is built for it


def test_params_form_matches_drift_params():
    from mlops.airflow.params import DRIFT_PARAMS
    from mlops.monitoring.params import DriftParams

    fields = {f.name for f in dataclasses.fields(DriftParams)}
    assert set(DRIFT_PARAMS) - {"ds"} == fields
    defaults = DriftParams()
    for name, param in DRIFT_PARAMS.items():
        assert param.schema.get("title"), f"{name} has no title for the form"
        if name in fields:
            value = getattr(defaults, name)
            assert (list(value) if isinstance(value, tuple) else value) == param.value, name


def test_check_operator_links_and_the_outlet(dagbag):
    dag = dagbag.dags["monitor_drift"]
    check, request = dag.get_task("check_drift"), dag.get_task("request_retrain")
    assert type(check).__name__ == "DriftCheckOperator"
    assert "Drift report" in [link.name for link in check.operator_extra_links]
    assert request.task_id in check.downstream_task_ids
    assert [a.name for a in request.outlets] == ["retrain_request"]
    assert not check.outlets  # only the guarded task may emit the request


def test_operator_module_is_parse_safe():
    code = (
        "import sys, json; import mlops.airflow.operators.drift, mlops.monitoring.check, mlops.monitoring.guard;"
        "print(json.dumps(sorted(m for m in ('pandas','evidently','mlflow','feast','xgboost') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
