"""mlops.models.registry and mlops.models.tracking against a real MLflow (SQLite backend in a temporary home).

Register, gate and promote, keep @previous, reject regressions, stale and misbehaving
challengers, roll back; and the lineage of a version.
"""

from __future__ import annotations

import pytest

from mlops.config import CHALLENGER, CHAMPION, PREVIOUS
from mlops.models import registry
from mlops.training.split import split
from tests.conftest import use_home
from tests.integration._registry_helpers import STRONG, WEAK, frame, train_and_register


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        h = use_home(mp, tmp_path_factory.mktemp("mlops"))
        yield h


@pytest.fixture(scope="module")
def data(home):
    return frame()


@pytest.fixture(scope="module")
def models(data):
    """v1 weak, v2 strong (same as-of)."""
    weak, weak_result = train_and_register(data, **WEAK)
    strong, strong_result = train_and_register(data, **STRONG)
    assert strong_result.metrics["roc_auc"] > weak_result.metrics["roc_auc"] + 0.01
    _, holdout = split(data, strong_result.window)
    return {"weak": weak, "strong": strong, "holdout": holdout}


def test_register_sets_challenger_and_is_idempotent(models):
    from mlops.models.tracking import client

    assert registry.alias_version(CHALLENGER) == models["strong"]
    mv = registry.version_info(models["strong"])
    assert mv.tags["mlops.as_of"] == "2013-03-15" and "holdout.roc_auc" in mv.tags
    again = registry.register(mv.run_id, mv.source)
    assert again == models["strong"]
    assert len(client().search_model_versions("name = 'flight_delay_xgb'")) == 2


def test_promotion_sequence(models, data):
    holdout = models["holdout"]
    first = registry.promote(models["weak"], holdout, margin=0.002)
    assert first.promoted and first.reason == "no champion yet"
    assert registry.alias_version(CHAMPION) == models["weak"]

    second = registry.promote(models["strong"], holdout, margin=0.002)
    assert second.promoted, second.reason
    assert second.champion_metrics["roc_auc"] < second.challenger_metrics["roc_auc"]
    assert registry.alias_version(CHAMPION) == models["strong"]
    assert registry.alias_version(PREVIOUS) == models["weak"]

    retry = registry.promote(models["strong"], holdout, margin=0.002)
    assert retry.promoted and "already champion" in retry.reason
    assert registry.alias_version(PREVIOUS) == models["weak"]

    # A worse challenger never replaces the champion.
    worse, _ = train_and_register(data, **WEAK)
    rejected = registry.promote(worse, holdout, margin=0.002)
    assert not rejected.promoted and "champion kept" in rejected.reason
    assert registry.alias_version(CHAMPION) == models["strong"]
    assert registry.version_info(worse).tags["promotion.decision"] == "rejected"

    # Not even by a hair: the margin applies.
    same, _ = train_and_register(data, **STRONG)
    tie = registry.promote(same, holdout, margin=0.002)
    assert not tie.promoted and registry.alias_version(CHAMPION) == models["strong"]


def test_failed_behavioural_check_blocks_promotion(models, data):
    better, _ = train_and_register(data, n_candidates=1, n_estimators=80)
    checks = [{"name": "invariance_irrelevant_fields", "passed": False, "detail": "test"}]
    d = registry.promote(better, models["holdout"], margin=0.0, checks=checks)
    assert not d.promoted and "behavioural checks failed" in d.reason
    assert registry.alias_version(CHAMPION) == models["strong"]


def test_stale_challenger_is_not_promoted(models, data):
    champion = registry.alias_version(CHAMPION)
    older, _ = train_and_register(data, as_of="2013-03-14", n_candidates=1, n_estimators=80)
    d = registry.promote(older, models["holdout"], margin=-1.0)
    assert not d.promoted and d.reason.startswith("stale")
    assert registry.alias_version(CHAMPION) == champion


def test_gate_reads_the_behavioural_checks_the_run_logged(models, data, home):
    """The gate takes the checks ``log_to_mlflow`` ran (it does not run them again) and refuses a
    model that failed one; the holdout comes from the TrainingRun's saved training set."""
    from mlops import lake
    from mlops.training.dataset import save_training_set
    from mlops.training.params import Window
    from mlops.training.run import TrainingRun
    from tests.unit._frames import tiny_params

    params = tiny_params()
    run = TrainingRun(params, Window.of("2013-03-15", params), (home / "ts").as_uri())
    save_training_set(data, {"rows": len(data)}, run.training_dir)
    assert lake.exists(run.training_set_uri)
    logged = [{"name": "range", "passed": True, "detail": "as log_to_mlflow logged it"}]
    decision = registry.gate_and_promote(models["weak"], run, checks=logged)
    assert decision["checks"] == logged and not decision["promoted"]
    assert decision["margin"] == params.promotion_margin
    failed = [*logged, {"name": "direction_prev_leg_dep_delay", "passed": False, "detail": "-0.01"}]
    decision = registry.gate_and_promote(models["weak"], run, checks=failed, margin=-1.0)
    assert not decision["promoted"]
    assert decision["reason"] == "behavioural checks failed: ['direction_prev_leg_dep_delay']"


def test_rollback_swaps_champion_and_previous(models):
    champion, previous = registry.alias_version(CHAMPION), registry.alias_version(PREVIOUS)
    d = registry.rollback(actor="cli:tester", reason="p99 latency doubled", expected_champion=champion)
    assert (registry.alias_version(CHAMPION), registry.alias_version(PREVIOUS)) == (previous, champion)
    assert d.champion_after == previous and d.promoted and "p99 latency doubled" in d.reason
    again = registry.rollback(actor="rollback-guard", reason="same breach", expected_champion=champion)
    assert not again.promoted and "rollback skipped" in again.reason
    assert registry.alias_version(CHAMPION) == previous, "a second rollback for one breach moves nothing"
    registry.rollback(actor="cli:tester", reason="back again")
    assert registry.alias_version(CHAMPION) == champion


def test_history_and_lineage(models, capsys):
    from mlops.cli import main
    from mlops.models.lineage import format_lineage, lineage

    history = registry.champion_history()
    assert [h["version"] for h in history][:2] == [models["weak"], models["strong"]]
    assert history[1]["decision"] == "promoted" and CHAMPION in history[1]["aliases"]

    info = lineage(models["strong"])
    lin = info["lineage"]
    assert lin["as_of"] == "2013-03-15" and lin["feature_service"] == "flight_delay_v1"
    assert len(lin["partitions"]) == 42 and all("sha256" in p for p in lin["partitions"])
    assert lin["validation"]["passed"] and lin["airflow"]["dag_id"] == "pytest"
    assert lin["code"]["git_commit"] and set(lin["metrics"]) >= {"roc_auc", "pr_auc", "log_loss", "brier"}
    text = format_lineage(info)
    assert "curated partitions: 42 read" in text and "Validation: passed" in text

    assert main(["lineage", "champion"]) == 0
    out = capsys.readouterr().out
    assert f"flight_delay_xgb version {models['strong']}" in out


def test_run_has_plots_signature_and_requirements(models):
    import mlflow
    from mlflow.models import get_model_info

    mv = registry.version_info(models["strong"])
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(mv.run_id, "plots")}
    assert arts == {
        "plots/roc.png",
        "plots/precision_recall.png",
        "plots/calibration.png",
        "plots/feature_importance.png",
    }
    info = get_model_info(f"models:/flight_delay_xgb/{models['strong']}")
    assert info.signature is not None and "carrier" in info.signature.inputs.input_names()
    run = mlflow.get_run(mv.run_id)
    assert {"roc_auc", "pr_auc", "log_loss", "brier"} <= set(run.data.metrics)
    assert run.data.tags["mlops.feature_service"] == "flight_delay_v1"
    reqs = mlflow.pyfunc.get_model_dependencies(f"models:/flight_delay_xgb/{models['strong']}")
    text = open(reqs).read()
    assert "xgboost==" in text and "mlflow==" in text


def test_champion_loads_as_pyfunc_from_plain_strings(models):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model("models:/flight_delay_xgb@champion")
    rows = models["holdout"].head(10)
    features = [c for c in rows.columns if c not in ("flight_id", "sched_dep_ts", "ds", "is_delayed")]
    plain = rows[features].astype({c: "object" for c in ("carrier", "origin", "dest")})
    p = model.predict(plain)
    assert len(p) == 10 and ((p >= 0) & (p <= 1)).all()
