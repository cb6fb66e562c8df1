"""The database callback sink leaves out the task callback requests the dag-processor would drop
after parsing their DAG file (:mod:`mlops.airflow.callbacks`): the success of a task that ended in
the triggerer (every landing sensor: 122 requests and 50 parses of the ingestion DAG files in the
demo). Failure and retry requests, and any other callback, still reach the database. On Airflow's
own classes: the request model, the sink, and the dag-processor's rule (``is_failure_callback``)."""

from __future__ import annotations

import uuid

import pytest


class _Recorder:
    """Where the sink adds its row (the metadata database's session in Airflow)."""

    def __init__(self) -> None:
        self.added: list = []

    def add(self, obj) -> None:
        self.added.append(obj)


def _request(state):
    from airflow.api_fastapi.execution_api.datamodels.taskinstance import TaskInstance
    from airflow.callbacks.callback_requests import TaskCallbackRequest

    ti = TaskInstance(
        id=uuid.uuid4(),
        task_id="wait_for_landing",
        dag_id="ingest_flights",
        run_id="backfill__2013-05-01T00:00:00+00:00",
        try_number=1,
        dag_version_id=uuid.uuid4(),
        map_index=-1,
    )
    return TaskCallbackRequest(
        filepath="ingest_flights.py",
        bundle_name="dags-folder",
        bundle_version=None,
        ti=ti,
        task_callback_type=state,
    )


@pytest.fixture
def sink():
    from airflow.callbacks.database_callback_sink import DatabaseCallbackSink

    original = getattr(DatabaseCallbackSink.send, "mlops_original", DatabaseCallbackSink.send)
    installed = DatabaseCallbackSink.send
    DatabaseCallbackSink.send = original  # Airflow's own, even where the local settings ran
    yield DatabaseCallbackSink
    DatabaseCallbackSink.send = installed
    DatabaseCallbackSink.send = original


def _sent(sink, request) -> list:
    """The rows the sink adds for ``request``."""
    session = _Recorder()
    sink().send(request, session=session)
    return session.added


def test_only_the_requests_the_dag_processor_runs_are_sent(sink):
    from airflow.callbacks.callback_requests import DagCallbackRequest
    from airflow.utils.state import TaskInstanceState

    from mlops.airflow.callbacks import install, runs_in_dag_processor

    states = [TaskInstanceState.SUCCESS, TaskInstanceState.FAILED, TaskInstanceState.UP_FOR_RETRY, None]
    before = {state: len(_sent(sink, _request(state))) for state in states}
    assert before == dict.fromkeys(states, 1)  # Airflow sends all of them, the success too

    assert install() is True
    assert install() is True  # once only
    after = {state: len(_sent(sink, _request(state))) for state in states}
    assert after == {**before, TaskInstanceState.SUCCESS: 0}
    # The filter is the dag-processor's own rule: it runs exactly what is still sent.
    assert [runs_in_dag_processor(_request(s)) for s in states] == [False, True, True, True]
    dag_request = DagCallbackRequest(
        filepath="ingest_flights.py",
        bundle_name="dags-folder",
        bundle_version=None,
        dag_id="ingest_flights",
        run_id="backfill__2013-05-01T00:00:00+00:00",
        is_failure_callback=False,
    )
    assert len(_sent(sink, dag_request)) == 1


CHILD = """
import json, sys
import airflow  # runs the local settings: the wrap waits for Airflow to import the sink
from airflow.callbacks.callback_requests import TaskCallbackRequest  # noqa: F401
pending = "airflow.callbacks.database_callback_sink" not in sys.modules
from airflow.models.callback import Callback
from sqlalchemy.orm import configure_mappers
configure_mappers()  # every ORM model's mapper (a sink imported too early broke this)
from airflow.callbacks.database_callback_sink import DatabaseCallbackSink
print(json.dumps({"pending": pending, "wrapped": getattr(DatabaseCallbackSink.send, "mlops_skip_noop", False),
                  "callback": Callback.__tablename__}))
"""


def test_the_local_settings_wrap_the_sink_once_airflow_imports_it(tmp_path):
    """In an Airflow process the local settings run while ``import airflow`` is still under way;
    importing the sink's module then (its ORM models before Airflow's others) made SQLAlchemy fail
    every mapper ("expression 'Trigger' failed to locate a name"): the demo died on it. The wrap
    waits for Airflow's own import of the module."""
    import json
    import os
    import subprocess
    import sys

    from mlops.config import airflow_env
    from mlops.dev.embedded import write_local_settings

    home = tmp_path / "airflow"
    write_local_settings(home)
    env = {**os.environ, **airflow_env(), "AIRFLOW_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"pending": True, "wrapped": True, "callback": "callback"}
