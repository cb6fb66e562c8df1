"""The air-time model, from its spec alone, through the same training run, registry and gate.

A month of curated 2013 flights with their feature tables and the Feast repo applied (what
``ingest_flights`` + ``materialize_features`` leave), then what ``train_model``'s tasks do, with
``spec="air_time"``: plan, build (Feast ``get_historical_features`` with the feature service
``air_time_v1``), validate, search, refit, log (experiment ``flight-air-time``), register
(``flight_air_time_xgb@challenger``) and gate on the holdout MAE, lower is better: a good
regressor becomes the champion, a worse one trained as of the same day is rejected, and the
flight-delay model's registry entry is untouched.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CURATED = ("2013-01-20", "2013-03-01")
FEATURE_DAYS = ("2013-02-15", "2013-02-28")
AS_OF = "2013-03-01"
TRAIN = {"as_of": AS_OF, "window_days": 14, "holdout_days": 4, "n_candidates": 2, "n_estimators": 80}
WEAK = {**TRAIN, "n_candidates": 1, "max_depth": 1, "n_estimators": 2, "learning_rate": 0.05}
MODEL = "flight_air_time_xgb"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    from mlops.dev.seed import seed_lake
    from tests._seeded import seeded_home

    with pytest.MonkeyPatch.context() as mp:
        s = seeded_home(mp, tmp_path_factory.mktemp("air_time"))
        seed_lake(CURATED, FEATURE_DAYS, s)
        yield s


@pytest.fixture(scope="module")
def champion(settings):
    """train_model's tasks for the air-time spec, in one process, then its gate."""
    from mlops.dev.seed import train_and_register

    trained = train_and_register(TRAIN, settings, spec="air_time")
    return {
        "run": trained.run,
        "result": trained.result,
        "logged": trained.logged,
        "version": trained.version,
        "decision": trained.decision,
    }


def test_the_training_set_is_the_specs(champion):
    from mlops import lake
    from mlops.air_time.model import SPEC

    run = champion["run"]
    assert run.spec == "air_time" and run.model_spec is SPEC
    assert "/air_time-" in run.training_dir
    manifest = run.read_manifest()
    assert manifest["feature_service"] == "air_time_v1" and manifest["label"] == "air_time"
    assert manifest["features"] == list(SPEC.features)
    frame = run.load_frame()
    assert frame["air_time"].notna().all() and frame["air_time"].dtype == "float64"
    # Feast served the air_time_v1 views (weather, congestion, route statistics, aircraft).
    for column in ("wx_wind_speed", "cong_sched_prev_1h", "route_flights_7d", "plane_seats"):
        assert frame[column].notna().mean() > 0.5, column
    report = json.loads(lake.read_text(run.path("validation.json")))
    passed = {check["name"]: check["passed"] for check in report["checks"]}
    assert passed["label_range"] and passed["label_balance_holdout"], report["checks"]


def test_a_regressor_with_regression_metrics_and_behaviour(champion):
    run, result = champion["run"], champion["result"]
    holdout = run.holdout()
    metrics = result.metrics
    assert set(metrics) >= {"mae", "rmse", "r2"}
    # Much better than predicting the training mean (what a model that learned nothing does).
    train_mean = float(run.load_frame()["air_time"].mean())
    baseline = float(np.mean(np.abs(holdout["air_time"] - train_mean)))
    assert metrics["mae"] < 0.3 * baseline, (metrics, baseline)
    assert metrics["r2"] > 0.9
    # The search ranked its candidates by validation MAE, lowest first.
    assert result.best["valid_mae"] == min(score["valid_mae"] for score in result.scores)
    checks = {check["name"]: check for check in champion["logged"]["checks"]}
    assert {"range", "invariance_irrelevant_fields", "direction_distance", "monotonic_distance"} <= set(
        checks
    )
    assert all(check["passed"] for check in checks.values()), checks


def test_logged_in_its_own_experiment_and_registered_model(champion, settings):
    from mlops.models import registry, tracking

    client = tracking.client(settings)
    run = client.get_run(champion["logged"]["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "flight-air-time"
    assert run.data.tags["mlops.model_name"] == MODEL and run.data.tags["mlops.spec"] == "air_time"
    assert run.data.tags["mlops.feature_service"] == "air_time_v1"
    assert {"mae", "rmse", "r2"} <= set(run.data.metrics)
    assert "plots/predicted_vs_actual.png" in {
        a.path for a in client.list_artifacts(run.info.run_id, "plots")
    }
    version = registry.version_info(champion["version"], settings, MODEL)
    assert float(version.tags["holdout.mae"]) == pytest.approx(run.data.metrics["mae"], rel=1e-5)


def test_the_gate_promotes_then_keeps_the_lower_mae(champion, settings):
    from mlops.config import CHAMPION
    from mlops.dev.seed import train_and_register
    from mlops.models import registry

    first = champion["decision"]
    assert first["promoted"] and first["reason"] == "no champion yet", first
    assert registry.alias_version(CHAMPION, settings, MODEL) == champion["version"]

    trained = train_and_register(WEAK, settings, spec="air_time", gate=False)
    run, logged, weak = trained.run, trained.logged, trained.version
    assert all(check["passed"] for check in logged["checks"]), logged["checks"]
    decision = registry.gate_and_promote(weak, run, checks=logged["checks"], settings=settings, name=MODEL)
    assert not decision["promoted"], decision
    ours, theirs = decision["challenger_metrics"]["mae"], decision["champion_metrics"]["mae"]
    assert ours > theirs and "champion kept" in decision["reason"] and "mae" in decision["reason"]
    assert registry.alias_version(CHAMPION, settings, MODEL) == champion["version"]
    # The other model's registry entry is untouched.
    assert registry.alias_version(CHAMPION, settings) is None


def test_the_daily_check_of_the_air_time_champion(champion, settings):
    """monitor_drift's check with the air-time spec: its champion, its features from air_time_v1,
    regression performance on the flights whose air time was known, its own MLflow experiment."""
    from mlops.models import tracking
    from mlops.monitoring import check
    from mlops.monitoring.params import DriftParams

    params = DriftParams(window_days=2, sample_size=2000, min_current_rows=200, min_labelled_rows=200)
    summary = check.check("2013-02-28", params, settings, spec="air_time")
    context = summary["context"]
    assert context["model_name"] == MODEL and context["champion_version"] == champion["version"]
    assert context["reference_source"] == "training_set"
    # No batch predictions of the air-time model: every sampled flight was scored in the task.
    assert (
        context["predictions_source"]["batch_predictions"] == 0
        and context["predictions_source"]["scored_in_task"]
    )
    assert summary["performance_metric"] == "mae" and summary["n_labelled"] >= 200, summary
    assert summary["performance"] > 0 and summary["performance_reference"] > 0
    assert {"mae", "rmse", "r2"} <= set(summary["performance_metrics"])
    assert "air_time" not in summary["drifted_features"]
    run = tracking.client(settings).get_run(context["mlflow_run_id"])
    experiment = tracking.client(settings).get_experiment(run.info.experiment_id)
    assert experiment.name == "flight-air-time-monitoring"
    assert run.data.metrics["performance"] == pytest.approx(summary["performance"], rel=1e-6)
