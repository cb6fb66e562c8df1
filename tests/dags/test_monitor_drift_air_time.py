"""monitor_drift_air_time: the air-time model's drift DAG, built by the same builder as monitor_drift.

Wiring (parsed DagBag): daily and backfillable, the drift params form, ``check_drift`` is a
``DriftCheckOperator`` given the spec ``air_time``, only ``request_retrain`` emits, and it emits
``air_time_retrain_request`` (never ``retrain_request``).

End to end (slow): a seeded lake (curated flights and weather, feature tables, Feast applied) and an
air-time champion trained as of 2013-03-01, then ``dag.test()`` of two consecutive days in a child
process with the embedded Airflow environment. With a prediction-drift threshold low enough to
breach, the first day requests retraining (one ``air_time_retrain_request`` event, whose metadata
names the model) and the second is skipped by the air-time guard's cooldown; the reports, history
(MAE, the spec's metric) and ledger are under ``{lake}/models/air_time/``, the checks are runs of
``flight-air-time-monitoring``, and the flight-delay model's history and ledger are never written.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

DAG_ID = "monitor_drift_air_time"


def test_daily_backfillable_with_the_drift_form(dagbag):
    from mlops.airflow.defaults import END_DATE
    from mlops.airflow.params import DRIFT_PARAMS

    dag = dagbag.dags[DAG_ID]
    assert dag.schedule == "@daily" and dag.end_date == END_DATE and dag.max_active_runs >= 2
    assert set(dag.params) == set(DRIFT_PARAMS)
    assert "air_time" in dag.tags


def test_the_check_is_given_the_spec_and_only_the_guard_emits(dagbag):
    dag = dagbag.dags[DAG_ID]
    check, request = dag.get_task("check_drift"), dag.get_task("request_retrain")
    assert type(check).__name__ == "DriftCheckOperator" and check.spec == "air_time"
    assert request.task_id in check.downstream_task_ids
    assert [a.name for a in request.outlets] == ["air_time_retrain_request"]
    assert not check.outlets
    flight = dagbag.dags["monitor_drift"]
    assert flight.get_task("check_drift").spec == "flight_delay"
    assert [a.name for a in flight.get_task("request_retrain").outlets] == ["retrain_request"]


def test_the_builder_wants_the_spec_by_name():
    from airflow.sdk import Asset

    from mlops.airflow.drift_dag import build_drift_dag
    from mlops.spec.model import model_spec

    with pytest.raises(TypeError, match="name or import path"):
        build_drift_dag(model_spec("air_time"), dag_id="x", retrain_asset=Asset("x"), train_dag_id="t")


# --- end to end: dag.test() in a child process -----------------------------------------------------

CURATED = ("2013-01-25", "2013-03-06")
FEATURE_DAYS = ("2013-02-19", "2013-03-05")
AS_OF = "2013-03-01"
TRAIN = {"as_of": AS_OF, "window_days": 10, "holdout_days": 3, "n_candidates": 1, "n_estimators": 40}
#: Small and certain to breach: a 2-day window sampled to 1,000 rows, a prediction-drift threshold
#: any window passes, a 2-day cooldown (so 2013-03-04 is past the champion's cooldown and
#: 2013-03-05 inside the request's).
CONF = {
    "window_days": 2,
    "sample_size": 1000,
    "min_current_rows": 300,
    "min_labelled_rows": 300,
    "prediction_threshold": 0.001,
    "cooldown_days": 2,
}
DAYS = ["2013-03-04", "2013-03-05"]


def _run_plan(plan_file: str) -> None:
    """``dag.test()`` of each day; one RESULT line per run, then the asset events."""
    import pendulum

    from tests.dags._child_dag_test import load_dag, print_events, print_result

    plan = json.loads(Path(plan_file).read_text())
    dag = load_dag(plan, DAG_ID)
    for ds in plan["days"]:
        print_result(dag.test(logical_date=pendulum.parse(f"{ds}T00:00:00Z"), run_conf=plan["conf"]), ds=ds)
    print_events()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    """What ingest + materialize leave for these days and an air-time champion (train_air_time's
    steps in one process), then the days' runs in a child process."""
    from mlops.dev.seed import seed_lake, train_and_register
    from tests._seeded import seeded_home
    from tests.dags._child_dag_test import run_in_child

    tmp = tmp_path_factory.mktemp("monitor_air_time")
    with pytest.MonkeyPatch.context() as mp:
        settings = seeded_home(mp, tmp / "home")
        timings = {}
        started = time.monotonic()
        seed_lake(CURATED, FEATURE_DAYS, settings)
        version = train_and_register(TRAIN, settings, spec="air_time", promoted=True).version
        timings["seed_and_train"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        results, events = run_in_child(tmp, DAG_ID, settings, {"days": DAYS, "conf": CONF}, timeout=2400)
        timings["dag_tests"] = round(time.monotonic() - started, 1)
        results = {r["ds"]: r for r in results}
        assert len(results) == len(DAYS), results
        print(f"{DAG_ID} timings (s):", timings)
        yield {"settings": settings, "version": version, "results": results, "events": events}


@pytest.mark.slow
@pytest.mark.timeout(3000)  # seed+train 143-393 s, two dag.test() runs 207-256 s at load 12-18
def test_a_breach_requests_once_then_the_air_time_cooldown_holds(monitored):
    from mlops.monitoring import history

    first, second = (monitored["results"][ds] for ds in DAYS)
    assert first["state"].endswith("success") and second["state"].endswith("success"), (first, second)
    assert first["tasks"] == {"check_drift": "success", "request_retrain": "success"}, first
    assert second["tasks"] == {"check_drift": "success", "request_retrain": "skipped"}, second
    events = [e for e in monitored["events"] if e["asset"].endswith("retrain_request")]
    assert [e["asset"] for e in events] == ["air_time_retrain_request"], monitored["events"]
    extra = events[0]["extra"]
    assert extra["model_name"] == "flight_air_time_xgb" and extra["ds"] == DAYS[0]
    assert extra["champion_version"] == monitored["version"] and extra["as_of"] == "2013-03-05"
    ledger = history.retrain_requests(monitored["settings"], "air_time")
    assert ledger[["ds", "decision"]].values.tolist() == [[DAYS[0], "requested"], [DAYS[1], "suppressed"]]
    assert "cooldown after request" in ledger.iloc[1]["reason"]


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_reports_history_and_runs_are_the_air_time_models(monitored):
    from mlops import lake, layout
    from mlops.models import tracking
    from mlops.monitoring import history

    s = monitored["settings"]
    table = history.drift_history(s, "air_time")
    assert table["ds"].tolist() == DAYS
    assert set(table["model_name"]) == {"flight_air_time_xgb"} and set(table["performance_metric"]) == {"mae"}
    assert all(row["performance"] > 0 and row["n_labelled"] >= 300 for _, row in table.iterrows())
    assert table.iloc[0]["retrain_decision"] == "requested"
    for ds in DAYS:
        report = layout.report_dir(s.lake_uri, layout.DRIFT, ds, "air_time")
        assert "/models/air_time/reports/drift/" in report
        assert lake.exists(lake.join(report, layout.DRIFT_HTML)) and lake.exists(
            lake.join(report, layout.DRIFT_JSON)
        )
        document = json.loads(lake.read_text(lake.join(report, layout.DRIFT_JSON)))
        assert document["context"]["model_name"] == "flight_air_time_xgb"
        assert document["summary"]["performance_metric"] == "mae"
    # The flight-delay model's history and ledger were never written.
    assert not lake.exists(layout.drift_history_file(s.lake_uri))
    assert not lake.exists(layout.drift_ledger_file(s.lake_uri))
    client = tracking.client(s)
    experiment = client.get_experiment_by_name("flight-air-time-monitoring")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["mlops.drift_ds"] for r in runs) == DAYS
    assert {r.data.tags["mlops.model_name"] for r in runs} == {"flight_air_time_xgb"}
    for r in runs:  # the spec's metric and every regression metric of the labelled rows
        assert r.data.metrics["performance"] == pytest.approx(r.data.metrics["performance.mae"])
        assert {"performance.rmse", "performance.r2"} <= set(r.data.metrics)


if __name__ == "__main__":
    _run_plan(sys.argv[1])
