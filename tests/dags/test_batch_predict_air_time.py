"""batch_predict_air_time: the air-time model's batch scoring, built by the same builder as batch_predict.

Wiring (parsed DagBag): daily and backfillable, the batch form without a threshold (a regressor),
the same tasks as ``batch_predict`` in the same order, a sensor on the day's feature tables, and
the ``air_time_predictions`` outlet (never ``flight_predictions``); the builder refuses a form that
does not fit the spec and takes a spec object (the synthetic spec: no feed, no sensor).

End to end (slow): a seeded lake (curated flights and weather, feature tables, Feast applied) and an
air-time champion trained as of 2013-03-01, then ``dag.test()`` in a child process with the embedded
Airflow environment: one run scores 2013-03-04..2013-03-05 (``end_ds``), a second re-scores
2013-03-05 with ``model_version`` given. The partitions are under ``{lake}/models/air_time/``, one row
per curated flight, minutes from the champion with real Feast features, the second run rewrites the
same bytes, each run emits one ``air_time_predictions`` event, and the flight-delay predictions are
never written.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import pytest

DAG_ID = "batch_predict_air_time"


def test_daily_backfillable_with_the_batch_form_without_threshold(dagbag):
    from mlops.airflow.defaults import END_DATE
    from mlops.airflow.params import BATCH_PARAMS

    dag = dagbag.dags[DAG_ID]
    assert dag.schedule == "@daily" and dag.end_date == END_DATE and not dag.catchup
    assert dag.max_active_runs >= 2 and "air_time" in dag.tags
    assert set(dag.params) == set(BATCH_PARAMS) - {"threshold"}
    version = dag.params.get_param("model_version")
    assert "flight_air_time_xgb" in version.description and version.value is None
    assert dag.fileloc.endswith("/dags/batch_predict_air_time.py")
    # The flight-delay DAG keeps its form, with the threshold.
    assert set(dagbag.dags["batch_predict"].params) == set(BATCH_PARAMS)


def test_the_same_tasks_as_batch_predict_and_its_own_outlet(dagbag):
    from mlops.features.compute import DAILY_VIEWS

    dag, flight = dagbag.dags[DAG_ID], dagbag.dags["batch_predict"]
    assert set(dag.task_ids) == set(flight.task_ids) == {"wait_for_features", "resolve_model", "score"}
    assert "wait_for_features" in dag.get_task("resolve_model").upstream_task_ids
    assert "resolve_model" in dag.get_task("score").upstream_task_ids
    assert [a.name for a in dag.get_task("score").outlets] == ["air_time_predictions"]
    assert [a.name for a in flight.get_task("score").outlets] == ["flight_predictions"]
    sensor = dag.get_task("wait_for_features")
    assert f"/features/{DAILY_VIEWS[-1]}/ds=" in sensor.uri and "mlops_last_scoring_day" in sensor.uri
    assert flight.fileloc.endswith("/dags/batch_predict.py")


def test_the_builder_fits_the_form_to_the_spec():
    from mlops.airflow.params import BATCH_PARAMS
    from mlops.airflow.scoring_dag import batch_params, build_scoring_dag
    from tests.unit._synthetic_spec import SPEC

    with pytest.raises(ValueError, match=r"'air_time' has no decision.*drop the 'threshold' param"):
        build_scoring_dag("air_time", dag_id="x", params=BATCH_PARAMS)
    no_threshold = {k: v for k, v in BATCH_PARAMS.items() if k != "threshold"}
    with pytest.raises(ValueError, match=r"decides predicted_delayed.*needs a 'threshold' param"):
        build_scoring_dag("flight_delay", dag_id="x", params=no_threshold)
    with pytest.raises(ValueError, match=r"lacks \['end_ds'\]"):
        build_scoring_dag(
            "air_time", dag_id="x", params={k: v for k, v in no_threshold.items() if k != "end_ds"}
        )
    assert "predicted_delayed" in batch_params("flight_delay")["threshold"].description
    with pytest.raises(ValueError, match="unknown model spec 'no_such_model'"):
        build_scoring_dag("no_such_model", dag_id="x")
    # A spec object without feeds: nothing to wait for; its own outlet by default.
    dag = build_scoring_dag(SPEC, dag_id="batch_predict_machine_failure")
    assert set(dag.task_ids) == {"resolve_model", "score"}
    assert [a.name for a in dag.get_task("score").outlets] == ["machine_failure_predictions"]
    assert set(dag.params) == set(no_threshold) and dag.fileloc == __file__


# --- end to end: dag.test() in a child process -----------------------------------------------------

CURATED = ("2013-01-20", "2013-03-06")
FEATURE_DAYS = ("2013-02-15", "2013-03-05")
AS_OF = "2013-03-01"
TRAIN = {"as_of": AS_OF, "window_days": 14, "holdout_days": 4, "n_candidates": 1, "n_estimators": 60}
DAYS = ["2013-03-04", "2013-03-05"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_plan(plan_file: str) -> None:
    """``dag.test()`` of each planned run; one RESULT line per run (with the last day's file hash),
    then the asset events."""
    import pendulum

    from tests.dags._child_dag_test import load_dag, print_events, print_result

    plan = json.loads(Path(plan_file).read_text())
    dag = load_dag(plan, DAG_ID)
    # dag.test() of a DAG with a DeadlineAlert fails in Airflow 3.3 (DagRun.update_state looks the
    # alerts up by id, and an unserialized DAG holds their definitions: "'dict' object has no
    # attribute 'hex'"). The deadline is exercised with the real scheduler in
    # tests/integration/test_alerts_scheduler.py; here it is left out.
    assert dag.deadline, "the DAG should carry its scoring deadline"
    dag.deadline = None
    for run_plan in plan["runs"]:
        run = dag.test(logical_date=pendulum.parse(f"{run_plan['ds']}T00:00:00Z"), run_conf=run_plan["conf"])
        last = Path(plan["watch"])
        print_result(run, ds=run_plan["ds"], sha256=_sha(last) if last.exists() else None)
    print_events()


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """What ingest + materialize leave for these days and an air-time champion (train_air_time's
    steps in one process), then the planned runs in a child process."""
    from mlops import layout
    from mlops.dev.seed import seed_lake, train_and_register
    from tests._seeded import seeded_home
    from tests.dags._child_dag_test import run_in_child

    tmp = tmp_path_factory.mktemp("batch_air_time")
    with pytest.MonkeyPatch.context() as mp:
        settings = seeded_home(mp, tmp / "home")
        timings = {}
        started = time.monotonic()
        seed_lake(CURATED, FEATURE_DAYS, settings)
        version = train_and_register(TRAIN, settings, spec="air_time", promoted=True).version
        timings["seed_and_train"] = round(time.monotonic() - started, 1)
        watch = layout.predictions_file(settings.lake_uri, DAYS[1], "air_time").removeprefix("file://")
        runs = [
            {"ds": DAYS[0], "conf": {"end_ds": DAYS[1]}},  # one run, both days
            {"ds": DAYS[1], "conf": {"model_version": version}},  # the second day again, by version
        ]
        started = time.monotonic()
        results, events = run_in_child(tmp, DAG_ID, settings, {"runs": runs, "watch": watch}, timeout=1500)
        timings["dag_tests"] = round(time.monotonic() - started, 1)
        assert len(results) == len(runs), results
        print(f"{DAG_ID} timings (s):", timings)
        yield {"settings": settings, "version": version, "results": results, "events": events}


@pytest.mark.slow
def test_a_range_then_a_rescore_by_version(scored):
    from mlops import lake, layout
    from mlops.air_time.model import SPEC as AIR_TIME
    from mlops.features import compute
    from mlops.models import registry
    from mlops.serving import scoring

    settings, version = scored["settings"], scored["version"]
    for result in scored["results"]:
        assert result["state"].endswith("success"), result
        assert result["tasks"] == {
            "wait_for_features": "success",
            "resolve_model": "success",
            "score": "success",
        }
    first, second = scored["results"]
    assert first["sha256"] and first["sha256"] == second["sha256"]  # same inputs and version: same bytes
    curated = compute.read_curated(DAYS, settings)
    predictor = registry.predictor(version, settings, "flight_air_time_xgb")
    for ds in DAYS:
        uri = layout.predictions_file(settings.lake_uri, ds, "air_time")
        assert "/models/air_time/predictions/" in uri
        frame = lake.read_parquet(uri)
        day = curated[curated["ds"] == ds]
        assert len(frame) == len(day) and set(frame["flight_id"]) == set(day["flight_id"])
        assert list(frame.columns) == scoring.batch_columns("air_time")
        assert set(frame["model_version"]) == {version} and set(frame["model_name"]) == {
            "flight_air_time_xgb"
        }
        # Real Feast features of air_time_v1 were scored (weather, congestion, route statistics).
        for column in ("wx_wind_speed", "cong_sched_prev_1h", "route_flights_7d"):
            assert frame[column].notna().mean() > 0.5, column
        inputs = frame[list(AIR_TIME.features)].astype(
            {c: "category" for c in ("carrier", "origin", "dest", "plane_engine")}
        )
        assert abs(predictor(inputs) - frame["air_time_minutes"].to_numpy()).max() < 1e-6
        flown = frame.merge(day[["flight_id", "air_time"]], on="flight_id").dropna(subset=["air_time"])
        assert float((flown["air_time_minutes"] - flown["air_time"]).abs().mean()) < 20.0
    assert not lake.exists(layout.predictions_file(settings.lake_uri, DAYS[0]))  # not the delay model's
    events = scored["events"]
    assert [e["asset"] for e in events] == ["air_time_predictions"] * 2, events
    ranged, again = (e["extra"] for e in events)
    assert (ranged["ds"], ranged["end_ds"]) == tuple(DAYS) and [d["ds"] for d in ranged["days"]] == DAYS
    assert ranged["model_version"] == again["model_version"] == version
    assert ranged["model_source"] == "champion" and again["model_source"] == "param"
    assert ranged["rows"] == len(curated) and again["rows"] == len(curated[curated["ds"] == DAYS[1]])
    assert "threshold" not in ranged and "threshold" not in again
    assert again["prediction_column"] == "air_time_minutes" and again["mean_prediction"] > 30


if __name__ == "__main__":
    _run_plan(sys.argv[1])
