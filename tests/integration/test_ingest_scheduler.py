"""``ingest_flights`` and ``flights_upstream_simulator`` through Airflow.

- Adapters (fast): ``GXValidateOperator`` fails bad data for good (``AirflowFailException``) with
  the partition's message; ``LandingFileSensor`` defers to ``LandingFileTrigger``, which fires
  once the file lands.
- Scheduler (slow): a week of ``airflow backfill create`` for both DAGs through the real
  scheduler, dag-processor and triggerer (the Feb 8-9 2013 blizzard included). Ingest is
  unpaused before upstream has delivered, so its sensors defer in the triggerer and resume when
  the simulator drops the files. The month-long run for the report is
  ``benchmarks/ingest_backfill.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from mlops import lake
from mlops.config import get_settings
from mlops.ingest import simulator

DAGS = Path(__file__).resolve().parents[2] / "dags"
FIRST, LAST = "2013-02-04", "2013-02-10"  # Monday .. Sunday, the blizzard on Fri 8 and Sat 9


# --- adapters -------------------------------------------------------------------------------------


def test_gx_operator_fails_bad_data_without_retry(mlops_home: Path):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.airflow.operators.gx import GXValidateOperator

    settings = get_settings()
    simulator.export_day("2013-03-05", settings.landing_uri, fault="unknown_carrier")
    op = GXValidateOperator(task_id="validate", ds="2013-03-05", allow_partial="False")
    with pytest.raises(AirflowFailException) as info:
        op.execute(context={})
    message = str(info.value)
    assert message.startswith("ds=2013-03-05: ")
    assert "rows with carrier not in the 16 known carriers (e.g. 'ZZ')" in message
    assert "batch moved to quarantine/flights/ds=2013-03-05" in message
    assert message.endswith("fix upstream and clear the task")

    simulator.export_day("2013-03-05", settings.landing_uri)
    summary = op.execute(context={})
    assert summary["success"] and summary["ds"] == "2013-03-05" and summary["rows"] > 900


def test_file_sensor_defers_and_trigger_fires(tmp_path: Path):
    from airflow.sdk.exceptions import TaskDeferred

    from mlops.airflow.sensors import LandingFileSensor, landing_sensor
    from mlops.airflow.triggers import LandingFileTrigger

    uri = lake.join(tmp_path.as_uri(), "flights", "ds=2013-03-05", "flights.csv")
    sensor = landing_sensor("wait", uri=uri, poke_interval=0.2)
    assert isinstance(sensor, LandingFileSensor)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context={})
    trigger = info.value.trigger
    assert isinstance(trigger, LandingFileTrigger) and trigger.uri == uri
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops.airflow.triggers.LandingFileTrigger"
    assert LandingFileTrigger(**kwargs).uri == uri

    async def land_later_and_wait():
        async def land():
            await asyncio.sleep(0.5)
            lake.write_text(uri, "x\n")

        task = asyncio.create_task(land())
        event = await asyncio.wait_for(anext(trigger.run()), timeout=30)
        await task
        return event

    event = asyncio.run(land_later_and_wait())
    assert event.payload == {"status": "success", "uri": uri}
    assert sensor.execute_complete(context={}, event=event.payload) == uri
    assert sensor.execute(context={}) == uri  # present now: no deferral


def _run_trigger(trigger, upstream, timeout: float = 60) -> tuple[dict, float]:
    """Run ``trigger`` while ``upstream()`` (a coroutine function) writes; (event payload, seconds
    from the start until the event)."""

    async def main():
        t0 = time.monotonic()
        writer = asyncio.create_task(upstream())
        event = await asyncio.wait_for(anext(trigger.run()), timeout=timeout)
        elapsed = time.monotonic() - t0
        await writer
        return event.payload, elapsed

    return asyncio.run(main())


def test_ingest_sensor_waits_for_the_marker_not_the_data_file(mlops_home: Path, tmp_path: Path):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import TaskDeferred

    from mlops.airflow.sensors import LandingFileSensor, landing_sensor
    from mlops.airflow.triggers import LandingFileTrigger

    dag = DagBag(dag_folder=str(DAGS / "ingest_flights.py")).dags["ingest_flights"]
    assert dag.get_task("wait_for_landing").completeness == "marker"  # the DAG's own sensor

    uri = lake.join(tmp_path.as_uri(), "flights", "ds=2013-03-05", "flights.csv")
    lake.write_text(uri, "year,month\n2013,3\n")  # the data file, upstream still writing
    sensor = landing_sensor("wait", uri=uri, completeness="marker", poke_interval=0.2)
    assert isinstance(sensor, LandingFileSensor)
    with pytest.raises(TaskDeferred) as info:  # the data file alone is not a delivery
        sensor.execute(context={})
    trigger = info.value.trigger
    classpath, kwargs = trigger.serialize()
    assert kwargs["completeness"] == "marker" and LandingFileTrigger(**kwargs).completeness == "marker"

    async def upstream():
        await asyncio.sleep(1.5)
        lake.write_text(uri, "year,month\n2013,3\n2013,3\n")
        await asyncio.sleep(1.5)
        lake.write_text(lake.join(uri.rsplit("/", 1)[0], "_SUCCESS"), "")  # last

    payload, elapsed = _run_trigger(trigger, upstream)
    assert payload == {"status": "success", "uri": uri}
    assert elapsed >= 3.0, f"fired after {elapsed:.1f}s, before the marker was written"
    assert sensor.execute(context={}) == uri  # complete now: no deferral


def test_stability_fallback_waits_until_the_file_stops_changing(tmp_path: Path):
    from airflow.sdk.exceptions import TaskDeferred

    from mlops.airflow.sensors import landing_sensor

    uri = lake.join(tmp_path.as_uri(), "flights", "ds=2013-03-05", "flights.csv")
    path = lake.local_path(uri)
    path.parent.mkdir(parents=True)
    path.write_text("year,month\n")
    sensor = landing_sensor("wait", uri=uri, completeness="stable:2", poke_interval=0.2)
    with pytest.raises(TaskDeferred) as info:  # one look cannot tell a stable file
        sensor.execute(context={})
    appended_until = {}

    async def upstream():  # appends a line every 0.5 s for 3 s, with no marker ever
        for _ in range(6):
            await asyncio.sleep(0.5)
            with path.open("a") as fh:
                fh.write("2013,3\n")
        appended_until["t"] = time.monotonic()

    t0 = time.monotonic()
    payload, elapsed = _run_trigger(info.value.trigger, upstream)
    assert payload["status"] == "success"
    quiet = t0 + elapsed - appended_until["t"]
    assert elapsed >= 3.0 + 2.0 - 0.3 and quiet >= 1.7, f"fired after {elapsed:.1f}s, {quiet:.1f}s quiet"
    with pytest.raises(ValueError, match="MLOPS_LANDING_COMPLETENESS='stable:soon' is not a landing"):
        from mlops.ingest.landing import Completeness

        Completeness.parse("stable:soon")


def test_permanent_lake_errors_fail_without_retry_in_validate_and_publish(mlops_home: Path):
    """A directory where the report or the partition file goes (EISDIR: what an operator's mistake
    or a broken mount looks like, reproducible as root): AirflowFailException naming the
    partition, the final path and the next step, instead of a retried IsADirectoryError."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.airflow.operators.gx import GXValidateOperator
    from mlops.ingest import steps

    ds = "2013-03-05"
    simulator.export_day(ds, get_settings().landing_uri)
    p = steps.partition(ds)
    report = lake.local_path(lake.join(p.reports, "validation.json"))
    report.mkdir(parents=True)
    with pytest.raises(AirflowFailException) as info:
        GXValidateOperator(task_id="validate", ds=ds).execute(context={})
    assert str(info.value).startswith(f"ds={ds}: cannot write {report}: Is a directory (EISDIR)")
    assert "Not retried" in str(info.value) and str(info.value).endswith("then clear the task.")
    report.rmdir()
    summary = GXValidateOperator(task_id="validate", ds=ds).execute(context={})

    dag = DagBag(dag_folder=str(DAGS / "ingest_flights.py")).dags["ingest_flights"]
    publish = dag.get_task("publish").python_callable
    curated = lake.local_path(p.curated)
    curated.mkdir(parents=True)
    with pytest.raises(AirflowFailException) as info:
        publish(ds, summary, outlet_events={})
    assert str(info.value).startswith(f"ds={ds}: cannot write {curated}: Is a directory (EISDIR)")
    assert "a directory is in the way of the file: move it away; then clear the task." in str(info.value)


def test_landing_sensor_for_s3_is_the_amazon_deferrable_sensor():
    from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

    from mlops.airflow.sensors import landing_sensor

    uri = "s3://landing/flights/ds=2013-03-05/flights.csv"
    sensor = landing_sensor("wait", uri=uri)
    assert isinstance(sensor, S3KeySensor) and sensor.deferrable and sensor.aws_conn_id == "aws_default"
    assert sensor.bucket_key == uri
    # With markers: the data key and, beside it, the _SUCCESS key (written last).
    marked = landing_sensor("wait", uri=uri, completeness="marker")
    assert marked.bucket_key == [uri, "s3://landing/flights/ds=2013-03-05/_SUCCESS"]
    assert landing_sensor("wait", uri=uri, completeness="stable:60").bucket_key == uri  # PUT is atomic
    with pytest.raises(ValueError, match="no landing sensor"):
        landing_sensor("wait", uri="gs://bucket/x")


# --- the real scheduler ---------------------------------------------------------------------------


def _task_log(airflow_home: Path, dag_id: str, task_id: str) -> list[Path]:
    return sorted((airflow_home / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/*.log"))


def _wait_for_deferred(airflow_home: Path, timeout: float = 240) -> bool:
    """Wait until a wait_for_landing task has logged its first (unsuccessful) check."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in _task_log(airflow_home, "ingest_flights", "wait_for_landing"):
            if "not there yet" in path.read_text(errors="replace"):
                return True
        time.sleep(3)
    return False


def _backfill(dag_id: str, env: dict[str, str]) -> None:
    from mlops.dev import embedded

    # No retry on "database is locked": the embedded profile's SQLite guard must prevent it.
    embedded.backfill(dag_id, FIRST, LAST, env, max_active_runs=4)


# Part of `make test` (CI): the suite's real-scheduler run, 2-4 min on 2 cores (246 s in a run at load 4-9).
@pytest.mark.timeout(1800)
def test_week_backfill_through_the_scheduler(mlops_home: Path):
    from mlops.dev import embedded
    from mlops.ingest import steps

    settings = get_settings()
    days = [f"2013-02-{d:02d}" for d in range(4, 11)]
    # Parse the DAGs and create both backfills before the services start (no contention with the
    # dag-processor for SQLite); ingest is unpaused first, before upstream has delivered.
    env = embedded.environment(settings, port=embedded.free_port())
    airflow_home = Path(env["AIRFLOW_HOME"])
    embedded.init_db(env)
    embedded.reserialize(env)
    _backfill("ingest_flights", env)
    _backfill("flights_upstream_simulator", env)
    svc = embedded.Services(env=env).start()
    try:
        t0 = time.monotonic()
        embedded.unpause(["ingest_flights"], env)
        deferred = _wait_for_deferred(airflow_home)  # nothing landed yet: the sensors defer
        embedded.unpause(["flights_upstream_simulator"], env)
        sim_runs = embedded.wait_for_runs("flights_upstream_simulator", env, 7, timeout=2400, services=svc)
        runs = embedded.wait_for_runs("ingest_flights", env, 7, timeout=2400, services=svc)
        wall = time.monotonic() - t0
    finally:
        svc.stop()

    backfilled = [r for r in runs if str(r["run_id"]).startswith("backfill__")]
    assert len(backfilled) == 7 and all(r["state"] == "success" for r in backfilled), runs
    assert all(r["state"] == "success" for r in sim_runs if str(r["run_id"]).startswith("backfill__"))
    print(f"\n7-day backfill of both DAGs: {wall:.0f}s wall")
    assert deferred, "no wait_for_landing task logged a first unsuccessful check before deferring"

    for ds in days:
        p = steps.partition(ds, settings)
        meta = steps.read_curated_metadata(p.curated)
        assert meta["mlops.ds"] == ds and int(meta["mlops.rows"]) > 600
        assert lake.exists(lake.join(p.reports, "validation.html"))
    assert not list(lake.list_uris(lake.join(settings.lake_uri, "quarantine")))

    # The GX import noise never reaches a task log; the task's own summary does.
    validate_logs = _task_log(Path(env["AIRFLOW_HOME"]), "ingest_flights", "validate")
    assert validate_logs
    text = "\n".join(p.read_text(errors="replace") for p in validate_logs)
    assert "Skipping registering function" not in text
    assert "rows passed" in text

    # curated_flights asset events carry each partition's metadata (read from the metadata DB).
    events = {e["ds"]: e for e in _asset_events(env, "curated_flights")}
    for ds in days:
        meta = steps.read_curated_metadata(steps.partition(ds, settings).curated)
        event = events[ds]
        assert event["content_hash"] == meta["mlops.content_hash"] and event["rows"] == int(
            meta["mlops.rows"]
        )
        assert event["uri"].endswith(f"/curated/flights/ds={ds}/data.parquet")
        assert event["validation"]["success"] and event["validation"]["suite"] == "flights_raw_v1"


ASSET_EVENTS = """
import json, sys
from sqlalchemy import select
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
with create_session() as session:
    rows = session.scalars(
        select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        .where(AssetModel.name == sys.argv[1])
    ).all()
    print(json.dumps([r.extra for r in rows]))
"""


def _asset_events(env: dict[str, str], name: str) -> list[dict]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", ASSET_EVENTS, name], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
