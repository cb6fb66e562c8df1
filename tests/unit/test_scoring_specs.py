"""Batch scoring takes the model spec (mlops.serving.scoring with ``spec=``).

* the air-time regressor: a real XGBoost model trained by the project's training code on real 2013
  flights, logged and registered in a real MLflow (tmp home) as ``flight_air_time_xgb@champion``,
  scores curated days into ``{lake}/models/air_time/predictions/`` with its own columns (minutes,
  no threshold, no decision), the registered version on every row, the inputs as scored; the
  flight-delay predictions folder is untouched; reruns rewrite the same bytes;
* the columns a spec decides: the decision only when ``threshold`` is listed, clear errors for a
  spec whose columns do not add up, for a threshold given to a regressor or missing for a classifier;
* a spec that is not Feast-backed (the synthetic machine-failure spec of the tests) scores the rows
  of its own frame with a real model trained on that frame.

Features come from the request columns only (Feast is replaced by ``compute.model_frame`` on empty
store values, as in test_scoring.py); the real Feast path is tests/dags/test_batch_predict_air_time.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from mlops import lake
from mlops.air_time.model import SPEC as AIR_TIME
from mlops.features import compute
from mlops.serving import scoring
from tests.conftest import use_home
from tests.unit._frames import curated, tiny_params
from tests.unit._synthetic_spec import SPEC as MACHINE

MODEL = "flight_air_time_xgb"
AS_OF = "2013-03-15"
DAYS = ["2013-03-20", "2013-03-21"]


def request_only_features(flights: pd.DataFrame, *_args, **_kwargs) -> pd.DataFrame:
    """The model inputs from the request columns only (Feast values missing), aligned with flights."""
    return compute.model_frame(flights, pd.DataFrame(index=flights.index))


def _air_time_frame() -> pd.DataFrame:
    """Labelled rows of [2013-02-01, AS_OF) as the air-time spec trains on them (request features)."""
    cur = curated()
    cur = cur[(cur["ds"] >= "2013-02-01") & (cur["ds"] < AS_OF) & cur["air_time"].notna()]
    cur = cur.sample(frac=0.3, random_state=0)
    features = compute.request_features(cur)
    frame = pd.concat([cur[["flight_id", "sched_dep_ts", "ds", "air_time"]], features], axis=1)
    frame["air_time"] = frame["air_time"].astype("float64")
    return frame.sort_values(["sched_dep_ts", "flight_id"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A tmp home: curated DAYS in the lake, and a real air-time model registered as champion."""
    from mlops.config import CHAMPION, get_settings
    from mlops.features import feature_store
    from mlops.models import registry
    from mlops.models.tracking import client, log_training
    from mlops.training.dataset import feature_columns, frame_hash
    from mlops.training.run import train
    from mlops.training.split import split
    from mlops.training.validation import validate_training_set
    from tests.unit.test_features import seed_curated

    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp_path_factory.mktemp("scoring_specs"))
        mp.setattr(feature_store, "historical_frame", request_only_features)
        settings = get_settings()
        flights = seed_curated(DAYS, settings, weather=False)
        data = _air_time_frame()
        params = tiny_params(window_days=35, holdout_days=7, n_candidates=1, n_estimators=60, min_rows=500)
        result = train(data, params, AS_OF, spec=AIR_TIME)
        _, holdout = split(data, result.window, AIR_TIME)
        manifest = {
            "window": result.window.as_dict(),
            "feature_service": AIR_TIME.feature_service,
            "features": feature_columns(data, AIR_TIME),
            "categorical": [],
            "rows": len(data),
            "partitions": [],
            "data_hash": frame_hash(data),
        }
        logged = log_training(
            result,
            example_frame=holdout,
            manifest=manifest,
            validation=validate_training_set(data, result.window, params, spec=AIR_TIME),
            airflow_context={"dag_id": "pytest", "run_id": "manual", "try_number": 1},
            settings=settings,
        )
        version = registry.register(logged["run_id"], logged["model_uri"], name=MODEL, settings=settings)
        client(settings).set_registered_model_alias(MODEL, CHAMPION, version)  # the gate is tested elsewhere
        yield {"settings": settings, "flights": flights, "version": version, "result": result}


def test_air_time_scores_minutes_with_its_champion_into_its_own_folder(home):
    from mlops.models import registry

    settings, flights, version = home["settings"], home["flights"], home["version"]
    model = scoring.resolve_version(None, settings, spec="air_time")
    assert (
        model["model_name"] == MODEL and model["model_version"] == version and model["source"] == "champion"
    )
    assert model["as_of"] == AS_OF and model["spec"] == "air_time"
    results = scoring.score_days(
        DAYS, version, spec="air_time", settings=settings, model_as_of=model["as_of"], threshold=None
    )
    predictor = registry.predictor(version, settings, MODEL)
    for r in results:
        assert r.uri == lake.join(
            settings.lake_uri, "models", "air_time", "predictions", f"ds={r.ds}", "data.parquet"
        )
        frame = scoring.read_predictions(r.ds, settings, spec="air_time")
        day = flights[flights["ds"] == r.ds]
        assert len(frame) == r.rows == len(day) and set(frame["flight_id"]) == set(day["flight_id"])
        assert list(frame.columns) == scoring.batch_columns("air_time")
        assert list(frame.columns[: len(AIR_TIME.batch_columns)]) == list(AIR_TIME.batch_columns)
        assert not {"threshold", "predicted_delayed", "delay_probability"} & set(frame.columns)
        assert set(frame["model_name"]) == {MODEL} and set(frame["model_version"]) == {version}
        assert set(frame["source"]) == {"batch"} and str(frame["sched_dep_ts"].dtype) == "datetime64[us, UTC]"
        assert frame["sched_dep_ts"].is_monotonic_increasing
        # The inputs stored are the ones scored: the registered version predicts the same minutes from them.
        inputs = frame[list(AIR_TIME.features)].astype(
            {"carrier": "category", "origin": "category", "dest": "category"}
        )
        np.testing.assert_allclose(predictor(inputs), frame["air_time_minutes"], rtol=0, atol=1e-9)
        # Minutes in the air, and a real model of them: far better than one mean for every flight.
        flown = frame.merge(day[["flight_id", "air_time"]], on="flight_id").dropna(subset=["air_time"])
        mae = float(np.mean(np.abs(flown["air_time_minutes"] - flown["air_time"])))
        baseline = float(np.mean(np.abs(flown["air_time"] - flown["air_time"].mean())))
        assert mae < 0.3 * baseline, (mae, baseline)
        assert (frame["air_time_minutes"] > 0).all()
        # Its event: no threshold and no decision count, the mean in minutes.
        event = r.as_dict()
        assert "threshold" not in event and "predicted_delayed" not in event
        assert event["prediction_column"] == "air_time_minutes"
        assert event["mean_prediction"] == pytest.approx(frame["air_time_minutes"].mean(), abs=1e-6)
        assert not event["model_trained_after_day"]
    # The flight-delay model's predictions folder is not written.
    assert not list(lake.list_uris(lake.join(settings.lake_uri, "predictions")))
    extra = scoring.event_metadata(results)
    assert (extra["ds"], extra["end_ds"], extra["rows"]) == (DAYS[0], DAYS[-1], sum(r.rows for r in results))
    assert "threshold" not in extra and [d["ds"] for d in extra["days"]] == DAYS


def test_air_time_rerun_rewrites_the_same_bytes(home):
    settings, version = home["settings"], home["version"]
    first = scoring.score_day(DAYS[0], spec="air_time", settings=settings)
    before = lake.read_bytes(first.uri)
    again = scoring.score_day(DAYS[0], version, spec="air_time", settings=settings)
    assert again.uri == first.uri and lake.read_bytes(again.uri) == before
    files = list(
        lake.list_uris(lake.join(settings.lake_uri, "models", "air_time", "predictions", f"ds={DAYS[0]}"))
    )
    assert files == [first.uri]


def test_air_time_errors_name_its_model_and_feed(home, monkeypatch):
    from mlops.models import registry

    settings = home["settings"]
    with pytest.raises(FileNotFoundError, match=r"no curated flights partition.*2013-06-20.*ingest_flights"):
        scoring.score_days(["2013-06-20"], home["version"], spec="air_time", settings=settings)
    monkeypatch.setattr(registry, "alias_version", lambda *a, **k: None)
    with pytest.raises(scoring.NoModelToScore, match=r"flight_air_time_xgb@champion is not set.*'air_time'"):
        scoring.resolve_version(None, settings, spec="air_time")


def test_the_spec_decides_the_columns():
    assert scoring.decision_column("flight_delay") == "predicted_delayed"
    assert scoring.decision_column("air_time") is None and scoring.decision_column(MACHINE) is None
    assert scoring.BATCH_COLUMNS == scoring.batch_columns("flight_delay")
    assert scoring.ONLINE_COLUMNS == [*scoring.BATCH_COLUMNS, *scoring.ONLINE_EXTRA_COLUMNS]
    assert scoring.batch_columns(MACHINE) == [*MACHINE.batch_columns, *MACHINE.features]
    assert scoring.row_columns(MACHINE) == ["run_id", "day"]
    # A threshold without a decision column, or with two candidates: refused, naming the spec.
    no_decision = dataclasses.replace(AIR_TIME, batch_columns=(*AIR_TIME.batch_columns, "threshold"))
    with pytest.raises(ValueError, match=r"'air_time' lists 'threshold'.*found none"):
        scoring.decision_column(no_decision)
    two = dataclasses.replace(MACHINE, batch_columns=(*MACHINE.batch_columns, "threshold", "fails", "alarm"))
    with pytest.raises(ValueError, match=r"\['fails', 'alarm'\].*ModelSpec.batch_columns"):
        scoring.decision_column(two)
    one = dataclasses.replace(MACHINE, batch_columns=(*MACHINE.batch_columns, "threshold", "will_fail"))
    assert scoring.decision_column(one) == "will_fail"


def test_assemble_follows_the_spec():
    ids = pd.DataFrame(
        {
            "run_id": ["a", "b", "c"],
            "day": ["2013-01-01"] * 3,
            "observed_at": pd.to_datetime(["2013-01-01 01:00"] * 3, utc=True),
        }
    )
    feats = pd.DataFrame(
        {
            "temperature": [60.0, 70.0, None],
            "site": pd.Categorical(["north", None, "east"]),
            "age_days": [1, 2, 3],
        }
    )
    out = scoring.assemble(
        ids, feats, [0.1, 0.6, 0.9], model_name="m", model_version=2, source="batch", spec=MACHINE
    )
    assert list(out.columns) == scoring.batch_columns(MACHINE)  # vibration not given: null
    assert str(out["run_id"].dtype) == "string" and out["model_version"].tolist() == ["2"] * 3
    assert str(out["site"].dtype) == "string" and pd.isna(out["site"].iloc[1])
    assert out["vibration"].isna().all() and out["age_days"].dtype == "float64"
    with pytest.raises(ValueError, match=r"'machine_failure' has no decision.*pass no threshold"):
        scoring.assemble(
            ids,
            feats,
            [0.1, 0.6, 0.9],
            threshold=0.5,
            model_name="m",
            model_version=2,
            source="b",
            spec=MACHINE,
        )
    one = dataclasses.replace(MACHINE, batch_columns=(*MACHINE.batch_columns, "threshold", "will_fail"))
    decided = scoring.assemble(
        ids, feats, [0.1, 0.6, 0.9], threshold=0.6, model_name="m", model_version=2, source="b", spec=one
    )
    assert decided["will_fail"].tolist() == [False, True, True] and (decided["threshold"] == 0.6).all()
    with pytest.raises(ValueError, match=r"decides will_fail = prediction >= threshold: pass a threshold"):
        scoring.assemble(ids, feats, [0.1, 0.6, 0.9], model_name="m", model_version=2, source="b", spec=one)
    with pytest.raises(ValueError, match=r"row columns \['day'\] missing.*'machine_failure'"):
        scoring.assemble(
            ids.drop(columns="day"),
            feats,
            [0.1, 0.6, 0.9],
            model_name="m",
            model_version=2,
            source="b",
            spec=MACHINE,
        )


def test_a_spec_without_feast_scores_the_rows_of_its_own_frame(mlops_home):
    """The synthetic spec (rows from its own frame, no feed, no Feast): a real model trained on
    that frame scores two later days into {lake}/models/machine_failure/predictions/."""
    from mlops.config import get_settings
    from mlops.training.run import train

    settings = get_settings()
    params = tiny_params(
        window_days=20, holdout_days=4, n_candidates=1, n_estimators=30, min_rows=800, min_holdout_rows=150
    )
    data = MACHINE.build_frame("2013-01-01", "2013-01-21")
    result = train(data, params, "2013-01-21", spec=MACHINE)
    days = ["2013-01-25", "2013-01-26"]
    assert not scoring.feast_backed(MACHINE)
    scoring.require_features(days, settings, spec=MACHINE)  # no feature tables to wait for
    assert scoring.inputs_ready_file(MACHINE, settings.lake_uri, days[0]) is None
    results = scoring.score_days(days, "1", spec=MACHINE, settings=settings, predict=result.model.predict)
    expected = MACHINE.build_frame(days[0], "2013-01-27")
    for r in results:
        assert "/models/machine_failure/predictions/ds=" in r.uri
        frame = scoring.read_predictions(r.ds, settings, spec=MACHINE)
        rows = expected[expected["day"] == r.ds]
        assert len(frame) == r.rows == len(rows) == 200 and list(frame.columns) == scoring.batch_columns(
            MACHINE
        )
        assert (frame["day"] == r.ds).all() and frame["failure_probability"].between(0, 1).all()
        merged = rows.merge(frame, on="run_id", suffixes=("", "_scored"))
        np.testing.assert_allclose(merged["temperature_scored"], merged["temperature"])
        # A real model: hot runs fail more often, and it ranks them so.
        from sklearn.metrics import roc_auc_score

        assert roc_auc_score(merged["failed"], merged["failure_probability"]) > 0.7
