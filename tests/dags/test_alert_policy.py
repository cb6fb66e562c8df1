"""Alert policy of the DAGs (issue 18): every task alerts on failure; the two time-critical DAGs
carry a DeadlineAlert whose callback is the alerts module's, awaited in the triggerer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlops.airflow import alerts


def _callbacks(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def test_every_task_alerts_when_it_fails_after_its_retries(dagbag):
    assert dagbag.dags, dagbag.import_errors
    missing = [
        f"{dag_id}.{task.task_id}"
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if alerts.task_failed not in _callbacks(task.on_failure_callback)
    ]
    assert not missing, f"tasks without the task_failed alert (use defaults.default_args): {missing}"


@pytest.mark.parametrize(
    ("dag_id", "reference", "interval"),
    [
        ("batch_predict", "DagRunLogicalDateDeadline", 6),
        ("materialize_features", "DagRunQueuedAtDeadline", 2),
    ],
)
def test_deadline_alerts(dagbag, dag_id, reference, interval):
    from airflow.sdk import AsyncCallback

    deadlines = dagbag.dags[dag_id].deadline
    deadlines = deadlines if isinstance(deadlines, list) else [deadlines]
    assert len(deadlines) == 1, deadlines
    alert = deadlines[0]
    assert type(alert.reference).__name__ == reference
    assert alert.interval == timedelta(hours=interval)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "mlops.airflow.alerts.deadline_missed"
    assert alert.callback.kwargs["interval"] == f"{interval} h"
