"""The ingestion DAGs' landing sensors start and end in the triggerer (no task process): the
scheduler gets the trigger from the serialized DAG, the triggerer renders the URI with the
partition macro and the trigger ends the task itself."""

from __future__ import annotations

import asyncio
import runpy
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


def _serialized(dag_file: str):
    """The DAG as the scheduler and triggerer see it (serialized: no ``user_defined_macros``)."""
    from airflow.serialization.serialized_objects import DagSerialization

    dag = runpy.run_path(str(DAGS / f"{dag_file}.py"), run_name="dag_file")[dag_file]()
    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


@pytest.mark.parametrize("dag_file", ["ingest_flights", "ingest_weather"])
def test_the_serialized_sensor_starts_from_its_trigger_and_renders_the_partition(
    mlops_home: Path, dag_file: str
) -> None:
    from airflow.serialization.serialized_objects import BaseSerialization

    from mlops.airflow.triggers import LandingFileTrigger

    dag = _serialized(dag_file)
    task = dag.get_task("wait_for_landing")
    assert task.start_from_trigger is True
    args = task.start_trigger_args
    assert args.trigger_cls == "mlops.airflow.triggers.LandingFileTrigger"
    kwargs = BaseSerialization.deserialize(args.trigger_kwargs)
    assert kwargs["end_task"] is True and kwargs["completeness"] == "marker"
    trigger = LandingFileTrigger(**kwargs)
    # What the triggerer does (TriggerRunner.run_trigger): template fields are the sensor's that
    # the trigger has, rendered with the run's context and the serialized DAG (no user macros).
    trigger.template_fields = ("uri",)
    trigger.render_template_fields({"params": {"ds": None}, "ds": "2013-05-03", "dag": dag})
    feed = dag_file.removeprefix("ingest_")
    assert trigger.uri.endswith(f"/landing/{feed}/ds=2013-05-03/{feed}.csv"), trigger.uri
    # A manual re-ingest's ds param wins, and a malformed one is refused at render time.
    again = LandingFileTrigger(**kwargs)
    again.template_fields = ("uri",)
    again.render_template_fields({"params": {"ds": "2013-02-12"}, "ds": "2013-05-03", "dag": dag})
    assert "/ds=2013-02-12/" in again.uri
    bad = LandingFileTrigger(**kwargs)
    bad.template_fields = ("uri",)
    with pytest.raises(Exception, match="2013-13-45"):
        bad.render_template_fields({"params": {"ds": "2013-13-45"}, "ds": "2013-05-03", "dag": dag})


def test_the_trigger_ends_the_task_once_the_marker_is_there(mlops_home: Path) -> None:
    from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

    from mlops.airflow.triggers import LandingFileTrigger
    from mlops.config import get_settings
    from mlops.ingest import simulator
    from mlops.ingest.landing import marker_uri

    export = simulator.export_day("2013-05-03", get_settings().landing_uri)

    async def first_event(trigger: LandingFileTrigger):
        async for event in trigger.run():
            return event
        return None

    ending = LandingFileTrigger(export.uri, poke_interval=0.1, completeness="marker", end_task=True)
    event = asyncio.run(asyncio.wait_for(first_event(ending), 30))
    assert isinstance(event, TaskSuccessEvent) and event.xcoms == {"return_value": export.uri}
    # Without end_task (a sensor deferred from a worker), the task resumes in the worker as before.
    resuming = LandingFileTrigger(export.uri, poke_interval=0.1, completeness="marker")
    event = asyncio.run(asyncio.wait_for(first_event(resuming), 30))
    assert type(event) is TriggerEvent and event.payload == {"status": "success", "uri": export.uri}
    # No marker: no event (the sensor keeps waiting; upstream may still be writing).
    Path(marker_uri(export.uri).removeprefix("file://")).unlink()
    waiting = LandingFileTrigger(export.uri, poke_interval=0.1, completeness="marker", end_task=True)
    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(first_event(waiting), 1))
