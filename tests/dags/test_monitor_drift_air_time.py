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
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dags.conftest import REPO

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
    """``dag.test()`` of each day; print one JSON line per run, then the asset events."""
    import importlib.util

    import pendulum
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    plan = json.loads(Path(plan_file).read_text())
    spec = importlib.util.spec_from_file_location("monitor_drift_air_time", plan["dag_file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for ds in plan["days"]:
        run = module.dag.test(logical_date=pendulum.parse(f"{ds}T00:00:00Z"), run_conf=plan["conf"])
        with create_session() as session:
            tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
            tasks = {ti.task_id: str(ti.state) for ti in tis}
        print("RESULT " + json.dumps({"ds": ds, "state": str(run.state), "tasks": tasks}), flush=True)
    with create_session() as session:
        rows = (
            session.query(AssetModel.name, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .all()
        )
    print("EVENTS " + json.dumps([{"asset": name, "extra": extra} for name, extra in rows]), flush=True)


def _seed(settings) -> str:
    """What ingest + materialize leave for these days, and an air-time champion (train_air_time's
    steps in one process). Returns its version."""
    from mlops import lake, layout, reference
    from mlops.features import compute, feature_store
    from mlops.ingest.normalize import normalize
    from mlops.models import registry, tracking
    from mlops.training.run import TrainingRun, stage_timings
    from tests._weather import seed_weather

    curated = normalize(reference.load("flights"))
    days = set(compute.day_range(*CURATED))
    for ds, part in curated[curated["ds"].isin(days)].groupby("ds"):
        lake.write_parquet(layout.curated_file(settings.lake_uri, str(ds)), part.reset_index(drop=True))
    seed_weather(compute.day_range(*CURATED), settings)
    compute.build_feature_tables(compute.day_range(*FEATURE_DAYS), settings, include_dependents=False)
    feature_store.apply(settings)
    run = TrainingRun.plan(TRAIN, {}, [], None, None, settings, spec="air_time")
    built = run.build(settings)
    report = run.validate()
    scores = [run.score(candidate) for candidate in run.candidates()]
    fitted = run.save_candidate(run.refit(scores))
    context = {"dag_id": "pytest", "run_id": "manual", "task_id": "log_to_mlflow", "try_number": 1}
    logged = tracking.log_run(
        run, fitted, scores, report, stage_timings(built, report, scores, fitted), context, settings
    )
    name = "flight_air_time_xgb"
    version = registry.register(logged["run_id"], logged["model_uri"], name=name, settings=settings)
    decision = registry.gate_and_promote(version, run, checks=logged["checks"], settings=settings, name=name)
    assert decision["promoted"], decision
    return version


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    from mlops.config import get_settings
    from mlops.dev.embedded import environment, init_db
    from mlops.features import feature_store
    from tests.conftest import use_home

    tmp = tmp_path_factory.mktemp("monitor_air_time")
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp / "home")
        for var in feature_store.FEAST_ENV_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        settings = get_settings()
        timings = {}
        started = time.monotonic()
        version = _seed(settings)
        timings["seed_and_train"] = round(time.monotonic() - started, 1)
        dags = tmp / "dags"
        dags.mkdir()
        dag_file = dags / "monitor_drift_air_time.py"
        shutil.copy(REPO / "dags" / "monitor_drift_air_time.py", dag_file)
        env = {
            **environment(settings),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        init_db(env)
        plan_file = tmp / "plan.json"
        plan_file.write_text(json.dumps({"dag_file": str(dag_file), "days": DAYS, "conf": CONF}))
        started = time.monotonic()
        out, err = tmp / "child.out", tmp / "child.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            proc = subprocess.run(
                [sys.executable, "-m", "tests.dags.test_monitor_drift_air_time", str(plan_file)],
                env=env,
                cwd=REPO,
                stdout=stdout,
                stderr=stderr,
                text=True,
                timeout=2400,
                check=False,
            )
        timings["dag_tests"] = round(time.monotonic() - started, 1)
        lines = out.read_text().splitlines()
        results = {r["ds"]: r for r in (json.loads(x[7:]) for x in lines if x.startswith("RESULT "))}
        events = [json.loads(x[7:]) for x in lines if x.startswith("EVENTS ")]
        assert proc.returncode == 0 and len(results) == len(DAYS) and events, err.read_text()[-6000:]
        print("monitor_drift_air_time timings (s):", timings)
        yield {"settings": settings, "version": version, "results": results, "events": events[0]}


@pytest.mark.slow
@pytest.mark.timeout(3000)  # seed+train 393 s, two dag.test() runs 207 s at load ~18
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
