"""mlops.training: params, windows, validation, split, search, determinism (no Airflow, no MLflow)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from mlops.training.dataset import feature_columns, frame_hash
from mlops.training.metrics import evaluate
from mlops.training.model import DelayModel
from mlops.training.params import HYPERPARAMETERS, TrainParams, Window, resolve_as_of
from mlops.training.run import train
from mlops.training.search import best_candidate, candidates
from mlops.training.split import search_split, split
from mlops.training.validation import TrainingSetInvalid, require_valid, validate_training_set
from tests.unit._frames import small_frame, tiny_params

AS_OF = "2013-03-15"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return small_frame("2013-02-01", AS_OF, frac=0.2)


@pytest.fixture(scope="module")
def trained(frame):
    return train(frame, tiny_params(), AS_OF)


def test_params_from_mapping_casts_and_ignores_unknown():
    p = TrainParams.from_mapping(
        {
            "window_days": "60",
            "learning_rate": 0.2,
            "dry_run": "true",
            "as_of": None,
            "bogus": 1,
            "seed": None,
        }
    )
    assert p.window_days == 60 and p.learning_rate == 0.2 and p.dry_run is True
    assert p.seed == TrainParams().seed


def test_params_reject_a_window_without_room_for_the_search():
    with pytest.raises(ValueError, match="window_days=20 must exceed twice holdout_days=10"):
        TrainParams.from_mapping({"window_days": 20, "holdout_days": 10})


def test_airflow_params_match_train_params():
    from mlops.airflow.params import TRAIN_PARAMS

    fields = set(TrainParams().as_dict())
    assert set(TRAIN_PARAMS) - {"as_of"} <= fields
    defaults = {k: v.value for k, v in TRAIN_PARAMS.items() if k != "as_of"}
    assert TrainParams.from_mapping(defaults) == TrainParams()


def test_window_is_local_days_before_the_as_of_date():
    w = Window.of(datetime(2013, 3, 15, 23, 30, tzinfo=UTC), tiny_params())
    assert (w.as_of, w.start, w.valid_start, w.holdout_start, w.end) == (
        date(2013, 3, 15),
        date(2013, 2, 1),
        date(2013, 3, 1),
        date(2013, 3, 8),
        date(2013, 3, 15),
    )
    assert len(w.days()) == 42 and w.days()[-1] == "2013-03-14"


def test_resolve_as_of_precedence():
    end = datetime(2013, 3, 11, tzinfo=UTC)
    req = [datetime(2013, 5, 2, 13, 5, tzinfo=UTC), datetime(2013, 5, 1, tzinfo=UTC)]
    assert resolve_as_of("2013-04-01", req, end, end) == (date(2013, 4, 1), "param")
    assert resolve_as_of(None, req, end, end) == (date(2013, 5, 2), "retrain_request")
    assert resolve_as_of(None, [], end, None) == (date(2013, 3, 11), "data_interval_end")
    assert resolve_as_of(None, [], None, end) == (date(2013, 3, 11), "run_after")


def test_validation_passes_on_a_good_set(frame):
    p = tiny_params()
    report = validate_training_set(frame, Window.of(AS_OF, p), p)
    assert report["passed"], [c for c in report["checks"] if not c["passed"]]
    require_valid(report, Window.of(AS_OF, p))


def _without_features_on(*days: str):
    """The training set of a window whose feature tables of ``days`` were never built."""

    def breakage(f: pd.DataFrame) -> pd.DataFrame:
        cols = feature_columns(f)
        f.loc[f["ds"].isin(days), cols] = np.nan
        return f

    return breakage


@pytest.mark.parametrize(
    "breakage, check",
    [
        (lambda f: f[f["ds"] != "2013-02-20"], "missing_days"),
        (lambda f: f[f["ds"] != "2013-03-10"], "holdout_coverage"),
        (lambda f: f.assign(is_delayed=np.int8(0)), "label_balance_train"),
        (lambda f: f.assign(distance=np.nan), "null_rates"),
        (lambda f: pd.concat([f, f.head(3)]), "unique_ids"),
        (lambda f: f.head(300), "volume"),
        (_without_features_on("2013-03-12", "2013-03-13"), "feature_coverage"),
    ],
)
def test_validation_names_the_failed_check(frame, breakage, check):
    p = tiny_params()
    w = Window.of(AS_OF, p)
    report = validate_training_set(breakage(frame.copy()), w, p)
    failed = {c["name"] for c in report["checks"] if not c["passed"]}
    assert check in failed
    with pytest.raises(TrainingSetInvalid, match=f"{check}.*champion is untouched"):
        require_valid(report, w)


def test_split_is_temporal_and_disjoint(frame):
    p = tiny_params()
    w = Window.of(AS_OF, p)
    train, holdout = split(frame, w)
    fit, valid = search_split(train, w)
    assert train["ds"].max() < holdout["ds"].min() == "2013-03-08"
    assert holdout["ds"].max() == "2013-03-14"
    assert fit["ds"].max() < valid["ds"].min() == "2013-03-01"
    assert len(train) + len(holdout) == len(frame)


def test_candidates_are_seeded_and_start_from_the_params():
    p = tiny_params(n_candidates=4, seed=7)
    c1, c2 = candidates(p), candidates(p)
    assert c1 == c2 and len(c1) == 4
    assert {k: c1[0][k] for k in HYPERPARAMETERS} == p.base_hyperparameters()
    assert candidates(tiny_params(n_candidates=4, seed=8))[1:] != c1[1:]


def test_best_candidate_prefers_auc_then_log_loss():
    scores = [
        {"candidate": 0, "valid_roc_auc": 0.7, "valid_log_loss": 0.5},
        {"candidate": 1, "valid_roc_auc": 0.72, "valid_log_loss": 0.6},
        {"candidate": 2, "valid_roc_auc": 0.72, "valid_log_loss": 0.55},
    ]
    assert best_candidate(scores)["candidate"] == 2


def test_train_reports_all_metrics(trained):
    assert set(trained.metrics) >= {"roc_auc", "pr_auc", "log_loss", "brier"}
    assert 0.5 < trained.metrics["roc_auc"] < 1
    assert len(trained.scores) == 2 and trained.best["best_rounds"] >= 1
    assert list(trained.holdout_predictions.columns) == ["flight_id", "ds", "is_delayed", "prediction"]


def test_training_is_deterministic(frame, trained):
    again = train(frame.sample(frac=1.0, random_state=3), tiny_params(), AS_OF)  # row order must not matter
    assert again.best == {**trained.best, "seconds": again.best["seconds"]}
    assert np.array_equal(
        again.holdout_predictions["prediction"].to_numpy(),
        trained.holdout_predictions["prediction"].to_numpy(),
    )


def test_model_round_trips_through_bytes(frame, trained):
    booster, meta = trained.model.to_bytes()
    loaded = DelayModel.from_bytes(booster, meta)
    _, holdout = split(frame, trained.window)
    assert np.array_equal(loaded.predict(holdout), trained.model.predict(holdout))


def test_model_takes_strings_and_unknown_categories(frame, trained):
    _, holdout = split(frame, trained.window)
    rows = holdout.head(20).copy()
    as_strings = rows.astype({c: "object" for c in trained.model.categories})
    assert np.array_equal(trained.model.predict(as_strings), trained.model.predict(rows))
    as_strings["carrier"] = "ZZ"
    p = trained.model.predict(as_strings)
    assert np.isfinite(p).all()


def test_model_names_missing_features(trained):
    with pytest.raises(KeyError, match="lacks model features"):
        trained.model.predict(pd.DataFrame({"carrier": ["AA"]}))


def test_evaluate_known_values():
    m = evaluate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m["positive_rate"] == 0.5


def test_frame_hash_sees_values_and_order(frame):
    assert frame_hash(frame) == frame_hash(frame.copy())
    assert frame_hash(frame) != frame_hash(frame.iloc[::-1])
    changed = frame.copy()
    changed.loc[0, "distance"] += 1
    assert frame_hash(frame) != frame_hash(changed)


def test_a_training_run_is_planned_once_and_travels_as_json(tmp_path):
    """``plan`` parses params and the window once; every later task gets them back from XCom."""
    import json

    from mlops.config import get_settings
    from mlops.training.run import TrainingRun

    end = datetime(2013, 3, 11, tzinfo=UTC)
    request = {"retrain.as_of": "2013-03-09", "retrain.reason": "feature drift: dep_hour"}
    params = {"window_days": "42", "holdout_days": 7, "dry_run": "true", "as_of": None}
    run = TrainingRun.plan(params, request, [datetime(2026, 1, 1, tzinfo=UTC)], end, None)
    assert (run.as_of, run.as_of_source, run.params.window_days, run.params.dry_run) == (
        "2013-03-09",
        "retrain_request",
        42,
        True,
    )
    assert run.training_dir.startswith(get_settings().lake_uri)
    assert run.training_set_uri == f"{run.training_dir}/training_set.parquet"
    again = TrainingRun.from_dict(json.loads(json.dumps(run.as_dict())))
    assert again == run
    weekly = TrainingRun.plan({}, {}, [], end, None)
    assert (weekly.as_of, weekly.as_of_source, weekly.retrain) == ("2013-03-11", "data_interval_end", {})


def test_the_fitted_candidate_round_trips_through_the_run(frame, trained, tmp_path):
    """``refit`` saves the candidate through the run; ``log_to_mlflow`` loads the same Result."""
    from mlops.training.run import TrainingRun

    run = TrainingRun(trained.params, trained.window, tmp_path.as_uri())
    fitted = run.save_candidate(trained)
    assert fitted["dir"].endswith(f"candidate={trained.best['candidate']}")
    loaded = run.load_candidate(fitted, trained.scores)
    np.testing.assert_array_equal(loaded.model.predict(frame), trained.model.predict(frame))
    pd.testing.assert_frame_equal(loaded.holdout_predictions, trained.holdout_predictions)
    assert (loaded.best, loaded.metrics, loaded.scores) == (trained.best, trained.metrics, trained.scores)


def test_params_read_booleans_as_every_stage_does():
    """One meaning of true (mlops.params.parse_bool): "maybe" was silently False before."""
    assert TrainParams.from_mapping({"dry_run": "on"}).dry_run is True
    assert TrainParams.from_mapping({"dry_run": "off"}).dry_run is False
    with pytest.raises(ValueError, match="dry_run='maybe' is not a boolean"):
        TrainParams.from_mapping({"dry_run": "maybe"})
