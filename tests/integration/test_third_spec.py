"""Proof that the seam is a spec: a third feed and model, defined in the tests, end to end.

The ``machine_runs`` feed and the ``machine_failure`` model (:mod:`tests.unit._synthetic_spec`:
synthetic machine runs, their own schema, partition key ``day``, GX suite ``machine_runs_raw_v1``,
label ``failed``, gate PR-AUC) go through the platform's own DAG builders and operators, run with
``dag.test()`` against a real metadata database, real MLflow (sqlite), the real GX suite and the lake
of a fresh ``MLOPS_HOME``; the platform code has no line about them.

1. ``ingest_machine_runs`` (:func:`mlops.airflow.ingest.ingest_tasks` with the feed's import path:
   landing sensor, ``GXValidateOperator``, publish) for ten days the simulator landed
   (:func:`mlops.ingest.simulator.export_day` with the feed spec), and an eleventh whose
   temperatures arrive in kelvin: quarantined, nothing curated.
2. Features: the spec's frame (``ModelSpec.frame``) reads the curated partitions; Feast and
   ``materialize_features`` cannot take a third spec's views yet (``feature_repo/`` is one repo, the
   materialization iterates the flight views): see the report of issue 16.
3. ``train_machine_failure`` (:func:`mlops.airflow.training_dag.training_dag` with the spec) twice
   as of the same day: a weak first model becomes ``@champion`` (no champion yet), a stronger second
   one wins the PR-AUC gate, ``@previous`` keeps the first; the audit trail and the run's lineage
   (the curated ``machine_runs`` partitions, rows and hashes) say so.
4. Six more days land, hotter (upstream's machines run 20 F warmer from 2013-03-12): ingested, then
   ``score_machine_failure`` (:func:`mlops.airflow.scoring_dag.build_scoring_dag`) scores them with
   the champion into the spec's own predictions folder (``{lake}/models/machine_failure/``), and
   ``monitor_drift_machine_failure`` (:func:`mlops.airflow.drift_dag.build_drift_dag`) checks the
   week: the temperature drifted, so did the predictions; report, history and retrain request are
   the spec's own.

The spec is named by its import path only, never added to ``mlops.spec.model.SPECS``: the
registry gate, lineage and the monitoring find it again from the run's ``mlops.spec`` tag (a seam
this test found: the gate used to look specs up in ``SPECS`` alone).

The DAGs live in a file written to the test's own DAG folder (``dag.test()`` syncs the DAG bundle it
belongs to); the runs happen in one child process with the test's Airflow environment
(``python -m tests.integration.test_third_spec PLAN.json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FEED_REF = "tests.unit._synthetic_spec:FEED"
SPEC_REF = "tests.unit._synthetic_spec:LAKE_SPEC"
MODEL = "machine_failure_xgb"
DAYS = [f"2013-03-{d:02d}" for d in range(1, 11)]
BAD_DAY = "2013-03-11"  # landed with temperatures in kelvin
AS_OF = "2013-03-11"
HOT_DAYS = [f"2013-03-{d:02d}" for d in range(12, 18)]
CHECK_DAY = HOT_DAYS[-1]
WINDOW = {"as_of": AS_OF, "window_days": 10, "holdout_days": 3}
WEAK = {**WINDOW, "n_candidates": 1, "n_estimators": 10, "max_depth": 1, "learning_rate": 0.05}
STRONG = {**WINDOW, "n_candidates": 2, "n_estimators": 40}

DAG_FILE = textwrap.dedent(
    f'''\
    """The third spec's DAGs: built by the platform's builders from the test's feed and model specs."""

    from airflow.sdk import Asset, Param, dag

    from mlops.airflow.defaults import START_DATE, default_args
    from mlops.airflow.drift_dag import build_drift_dag
    from mlops.airflow.ingest import ingest_tasks
    from mlops.airflow.params import INGEST_PARAMS, PARTITION_MACROS, TRAIN_PARAMS
    from mlops.airflow.scoring_dag import build_scoring_dag
    from mlops.airflow.training_dag import training_dag

    FEED = "{FEED_REF}"
    SPEC = "{SPEC_REF}"  # by import path: no line in mlops.spec.model.SPECS
    CURATED = Asset("curated_machine_runs")
    PREDICTIONS = Asset("machine_failure_predictions")
    RETRAIN = Asset("machine_failure_retrain_request")
    #: The training form, with windows as short as a week (a machine's runs come 200 a day).
    TRAIN_FORM = {{
        **TRAIN_PARAMS,
        "window_days": Param(20, type="integer", minimum=7, maximum=730, title="Training window (days)"),
    }}


    @dag(
        schedule="@daily",
        start_date=START_DATE,
        catchup=False,
        params=INGEST_PARAMS,
        user_defined_macros=PARTITION_MACROS,
        default_args=default_args(timeout_minutes=30),
        tags=["third_spec"],
    )
    def ingest_machine_runs():
        ingest_tasks(FEED, CURATED)


    ingest = ingest_machine_runs()

    train_machine_failure = training_dag(
        SPEC,
        dag_id="train_machine_failure",
        schedule=None,
        doc_md="third spec",
        tags=["third_spec"],
        params=TRAIN_FORM,
    )

    # No deadline alert: Airflow 3.3's dag.test() fails a DAG that has one once its run ends
    # (DagRun.update_state looks the alert up with the SDK object as its id: "'dict' object has no
    # attribute 'hex'"); the scheduler runs them fine.
    score_machine_failure = build_scoring_dag(
        SPEC,
        dag_id="score_machine_failure",
        outlet=PREDICTIONS,
        schedule=None,
        tags=["third_spec"],
        deadline=None,
    )

    monitor_drift_machine_failure = build_drift_dag(
        SPEC,
        dag_id="monitor_drift_machine_failure",
        retrain_asset=RETRAIN,
        train_dag_id="train_machine_failure",
        schedule=None,
        tags=["third_spec"],
    )
    '''
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# --- the child process: dag.test() of each planned run ------------------------------------------------


def _run_plan(plan_file: str) -> None:
    """Run each ``{"dag_id", "logical_date", "conf"}`` of the plan with ``dag.test()``; print one
    JSON line per run: its state and each task's state."""
    import importlib.util

    import pendulum
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    plan = json.loads(Path(plan_file).read_text())
    spec = importlib.util.spec_from_file_location("third_spec_dags", plan["dag_file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = {d.dag_id: d for d in vars(module).values() if type(d).__name__ == "DAG"}
    for step in plan["runs"]:
        started = time.monotonic()
        run = dags[step["dag_id"]].test(
            logical_date=pendulum.parse(step["logical_date"]), run_conf=step.get("conf") or None
        )
        with create_session() as session:
            tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
            tasks = {
                ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(ti.state) for ti in tis
            }
        out = {
            **step,
            "state": str(run.state),
            "tasks": tasks,
            "seconds": round(time.monotonic() - started, 1),
        }
        print("RESULT " + json.dumps(out), flush=True)


def _child(env: dict[str, str], plan: dict, tmp: Path) -> list[dict]:
    plan_file = tmp / f"plan-{time.monotonic_ns()}.json"
    plan_file.write_text(json.dumps(plan))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.integration.test_third_spec", str(plan_file)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or len(results) != len(plan["runs"]):
        raise AssertionError(
            f"dag.test() child exited {proc.returncode} after {len(results)} of {len(plan['runs'])} runs:\n"
            f"{proc.stderr[-6000:]}"
        )
    return results


# --- the test ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def third(tmp_path_factory):
    from mlops.config import get_settings
    from mlops.dev.embedded import environment, init_db
    from mlops.ingest.simulator import export_day
    from mlops.spec.feed import feed_spec
    from tests.conftest import use_home

    tmp = tmp_path_factory.mktemp("third_spec")
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp / "home")
        mp.setenv("MLOPS_REQUIRE_APPROVAL", "false")
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        settings = get_settings()
        dags = tmp / "dags"
        dags.mkdir()
        (dags / "third_spec_dags.py").write_text(DAG_FILE)
        env = {
            **environment(settings),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        started = time.monotonic()
        init_db(env)
        timings = {"db_migrate": round(time.monotonic() - started, 1)}
        feed = feed_spec(FEED_REF)
        for ds in DAYS:  # upstream lands the days (the simulator, given the feed spec)
            export_day(ds, settings.landing_uri, feed=feed)
        export_day(BAD_DAY, settings.landing_uri, fault="kelvin", feed=feed)
        for ds in HOT_DAYS:  # landed now, ingested after the training runs (the plan's order)
            export_day(ds, settings.landing_uri, feed=feed)
        ingest = [
            {"dag_id": "ingest_machine_runs", "logical_date": f"{ds}T00:00:00Z"} for ds in [*DAYS, BAD_DAY]
        ]
        train = [
            {"dag_id": "train_machine_failure", "logical_date": f"{AS_OF}T00:00:00Z", "conf": conf}
            for conf in (WEAK, STRONG)
        ]
        hot = [{"dag_id": "ingest_machine_runs", "logical_date": f"{ds}T00:00:00Z"} for ds in HOT_DAYS]
        score = {
            "dag_id": "score_machine_failure",
            "logical_date": f"{CHECK_DAY}T00:00:00Z",
            "conf": {"ds": HOT_DAYS[0], "end_ds": CHECK_DAY},
        }
        drift = {"dag_id": "monitor_drift_machine_failure", "logical_date": f"{CHECK_DAY}T00:00:00Z"}
        plan = {
            "dag_file": str(dags / "third_spec_dags.py"),
            "runs": [*ingest, *train, *hot, score, drift],
        }
        started = time.monotonic()
        results = _child(env, plan, tmp)
        timings["dag_tests"] = round(time.monotonic() - started, 1)
        print("third spec timings (s):", timings, [(r["dag_id"], r["seconds"]) for r in results])
        yield {"settings": settings, "feed": feed, "results": results, "timings": timings}


def _runs(third, dag_id):
    return [r for r in third["results"] if r["dag_id"] == dag_id]


def test_ingest_validates_with_its_own_suite_and_quarantines_a_bad_day(third):
    import pandas as pd

    from mlops import lake

    s, feed = third["settings"], third["feed"]
    runs = {r["logical_date"][:10]: r for r in _runs(third, "ingest_machine_runs")}
    for ds in [*DAYS, *HOT_DAYS]:
        assert runs[ds]["state"] == "success", runs[ds]
        assert runs[ds]["tasks"] == {
            "wait_for_landing": "success",
            "validate": "success",
            "publish": "success",
        }
        curated = pd.read_parquet(feed.curated_file(s.lake_uri, ds))
        assert list(curated.columns) == list(feed.curated_columns) and len(curated) == 200
        assert set(curated["day"]) == {ds} and curated["run_id"].is_unique
        report = json.loads(lake.read_text(lake.join(feed.report_dir(s.lake_uri, ds), "validation.json")))
        assert report["suite"] == "machine_runs_raw_v1" and report["success"]
    bad = runs[BAD_DAY]
    assert bad["state"] == "failed" and bad["tasks"]["validate"] == "failed", bad
    assert bad["tasks"]["publish"] == "upstream_failed"
    assert not lake.exists(feed.curated_file(s.lake_uri, BAD_DAY))
    quarantined = json.loads(
        lake.read_text(lake.join(feed.quarantine_dir(s.lake_uri, BAD_DAY), "validation.json"))
    )
    assert not quarantined["success"] and "temperature outside [-20, 150]" in json.dumps(quarantined)


def test_training_registers_and_the_gate_promotes_by_the_specs_metric(third):
    from mlops.config import CHAMPION
    from mlops.models import audit, registry, tracking

    s = third["settings"]
    weak, strong = _runs(third, "train_machine_failure")
    for run in (weak, strong):
        assert run["state"] == "success", run
        assert {run["tasks"][t] for t in ("register", "gate", "approval", "promote")} == {"success"}, run
    client = tracking.client(s)
    versions = sorted(client.search_model_versions(f"name='{MODEL}'"), key=lambda v: int(v.version))
    assert [str(v.version) for v in versions] == ["1", "2"]
    run = client.get_run(versions[1].run_id)
    assert run.data.tags["mlops.spec"] == SPEC_REF and run.data.tags["mlops.model_name"] == MODEL
    assert client.get_experiment(run.info.experiment_id).name == "machine-failure"
    assert {"pr_auc", "roc_auc", "log_loss"} <= set(run.data.metrics)
    assert registry.alias_version(CHAMPION, s, MODEL) == "2"
    assert registry.alias_version("previous", s, MODEL) == "1"
    moves = [
        (e.alias, e.from_version, e.to_version, e.actor)
        for e in audit.read(MODEL, s)
        if e.kind == "alias_moved"
    ]
    assert ("champion", None, "1", "gate") in moves and ("champion", "1", "2", "gate") in moves, moves
    assert ("previous", None, "1", "gate") in moves, moves
    v2 = registry.version_info("2", s, MODEL)
    assert float(v2.tags["holdout.pr_auc"]) > float(
        registry.version_info("1", s, MODEL).tags["holdout.pr_auc"]
    )


def test_lineage_lists_the_feeds_partitions(third, capsys):
    from mlops.cli import main
    from mlops.models.lineage import lineage

    info = lineage("2", third["settings"], MODEL)
    assert info["spec"] == SPEC_REF
    parts = info["lineage"]["partitions"]
    assert [p["ds"] for p in parts] == DAYS
    assert all(p["rows"] == 200 and p["content_hash"].startswith("sha256:") for p in parts)
    assert all(p["validation"]["suite"] == "machine_runs_raw_v1" for p in parts)
    assert info["lineage"]["features"] == ["temperature", "vibration", "age_days", "site"]
    assert main(["lineage", "champion", "--model", SPEC_REF]) == 0
    out = capsys.readouterr().out
    print(out)
    header = out.splitlines()[0]
    assert header.startswith(f"{MODEL} version 2  aliases: ") and "champion" in header
    assert f"curated partitions: {len(DAYS)} read, 0 absent; feed machine_runs" in out
    assert "weather: not used by this model" in out


def test_batch_scoring_writes_the_specs_predictions(third):
    import pandas as pd

    from mlops import layout
    from mlops.spec.model import model_spec

    spec, s = model_spec(SPEC_REF), third["settings"]
    (run,) = _runs(third, "score_machine_failure")
    assert run["state"] == "success", run
    assert run["tasks"] == {"wait_for_rows": "success", "resolve_model": "success", "score": "success"}
    for ds in HOT_DAYS:
        uri = layout.predictions_file(s.lake_uri, ds, spec.lake_folder)
        assert "/models/machine_failure/predictions/" in uri
        frame = pd.read_parquet(uri)
        assert list(frame.columns)[: len(spec.batch_columns)] == list(spec.batch_columns), frame.columns
        assert len(frame) == 200 and frame["run_id"].is_unique and set(frame["day"].astype(str)) == {ds}
        assert frame["failure_probability"].between(0, 1).all()
        assert set(frame["model_version"].astype(str)) == {"2"} and set(frame["model_name"]) == {MODEL}
    assert not any((Path(s.lake_uri.removeprefix("file://")) / "predictions").glob("ds=*")), (
        "the third spec wrote into the flight-delay model's predictions folder"
    )


def test_the_drift_check_sees_the_heat(third):
    from mlops import lake
    from mlops.monitoring import history
    from mlops.spec.model import model_spec

    spec, s = model_spec(SPEC_REF), third["settings"]
    uri = history.report_json_file(CHECK_DAY, s, spec)
    assert "/models/machine_failure/reports/drift/" in uri
    document = json.loads(lake.read_text(uri))
    summary = document["summary"]
    print(json.dumps({k: summary.get(k) for k in ("drifted_features", "breaches")}, default=str))
    assert document["champion"]["version"] == "2" and document["champion"]["model_name"] == MODEL
    # The week was scored by score_machine_failure (its predictions, not re-scored in the check).
    assert document["current"]["predictions_source"] == {"batch_predictions": 1200, "scored_in_task": 0}
    assert list(summary["drifted_features"]) == ["temperature"], summary["drifted_features"]
    kinds = {breach["kind"] for breach in summary["breaches"]}
    assert summary["breached"] and {"prediction_drift", "performance"} <= kinds, summary["breaches"]
    assert (
        summary["performance_metric"] == "roc_auc"
        and summary["performance"] < summary["performance_reference"]
    )
    assert lake.exists(lake.join(history.report_dir(CHECK_DAY, s, spec), "report.html"))
    rows = history.drift_history(s, spec)
    assert list(rows["ds"].astype(str)) == [CHECK_DAY]


def test_the_specs_storm_guard_decides_on_the_retrain_request(third):
    """The breach goes to the spec's own guard, which holds it: its champion (as of 2013-03-11) is
    6 days old at the check, inside the 7-day cooldown after a promotion; no asset event."""
    from mlops.monitoring import history
    from mlops.spec.model import model_spec

    (run,) = _runs(third, "monitor_drift_machine_failure")
    assert run["tasks"] == {"check_drift": "success", "request_retrain": "skipped"}, run
    requests = history.retrain_requests(third["settings"], model_spec(SPEC_REF))
    assert list(requests["ds"]) == [CHECK_DAY] and list(requests["decision"]) == ["suppressed"]
    assert requests["reason"][0].startswith(
        "cooldown after promotion: champion v2 was trained as of 2013-03-11"
    )


if __name__ == "__main__":
    _run_plan(sys.argv[1])
