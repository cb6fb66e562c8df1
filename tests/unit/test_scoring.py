"""Batch scoring (mlops.serving.scoring) without Feast or MLflow: real curated days, fake features and model.

* the output contract: columns in order, dtypes, one row per curated flight, the version per row;
* decisions at the threshold; categorical inputs stored as strings;
* idempotence: a rerun rewrites the same bytes, never duplicates; a missing partition is a clear
  error naming it; no champion is a clear error saying what to do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops import lake, layout
from mlops.config import get_settings
from mlops.features import compute, feature_store
from mlops.models import registry
from mlops.serving import scoring
from tests.unit.test_features import seed_curated

DAYS = ["2013-06-11", "2013-06-12"]


def fake_features(flights: pd.DataFrame, *_args, **_kwargs) -> pd.DataFrame:
    """MODEL_FEATURES from the request columns only (Feast values missing), aligned with flights."""
    return compute.model_frame(flights, pd.DataFrame(index=flights.index))


def fake_predict(frame: pd.DataFrame) -> np.ndarray:
    hour = frame["sched_dep_hour"].to_numpy(dtype="float64")
    return 1.0 / (1.0 + np.exp(-(hour - 15.0)))


@pytest.fixture
def home(mlops_home, monkeypatch):
    settings = get_settings()
    curated = seed_curated(DAYS, settings)
    monkeypatch.setattr(feature_store, "historical_frame", fake_features)
    return settings, curated


def _ids() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "flight_id": ["2013-06-12_UA_1_EWR", "2013-06-12_AA_2_JFK"],
            "ds": ["2013-06-12"] * 2,
            "carrier": ["UA", "AA"],
            "flight": [1, 2],
            "origin": ["EWR", "JFK"],
            "dest": ["IAH", "LAX"],
            "tailnum": ["N1", None],
            "sched_dep_ts": pd.to_datetime(["2013-06-12 12:00", "2013-06-12 13:00"], utc=True),
        }
    )


def test_assemble_contract():
    ids = _ids()
    feats = pd.DataFrame({"wx_temp": [70.0, None], "plane_engine": pd.Categorical(["Turbo-fan", None])})
    out = scoring.assemble(
        ids, feats, [0.2, 0.5], threshold=0.5, model_name="flight_delay_xgb", model_version=3, source="batch"
    )
    assert list(out.columns) == scoring.BATCH_COLUMNS
    assert len(set(out.columns)) == len(out.columns)
    assert out["predicted_delayed"].tolist() == [False, True]  # >= threshold is delayed
    assert out["model_version"].tolist() == ["3", "3"] and str(out["model_version"].dtype) == "string"
    assert str(out["sched_dep_ts"].dtype) == "datetime64[us, UTC]"
    assert out["plane_engine"].tolist()[0] == "Turbo-fan" and pd.isna(out["plane_engine"].iloc[1])
    assert str(out["plane_engine"].dtype) == "string"
    assert out["wx_temp"].iloc[0] == 70.0 and np.isnan(out["wx_temp"].iloc[1])
    assert out["cong_sched_prev_1h"].isna().all()  # features not given: missing, not an error
    assert pd.isna(out["tailnum"].iloc[1])
    with pytest.raises(ValueError, match="differ"):
        scoring.assemble(
            ids, feats.head(1), [0.1, 0.2], threshold=0.5, model_name="m", model_version="1", source="x"
        )
    with pytest.raises(ValueError, match=r"row columns \['flight'\] missing.*flight_delay"):
        scoring.assemble(
            ids.drop(columns="flight"),
            feats,
            [0.1, 0.2],
            threshold=0.5,
            model_name="m",
            model_version="1",
            source="x",
        )


def test_per_row_values():
    out = scoring.assemble(
        _ids(),
        pd.DataFrame(index=range(2)),
        [0.4, 0.4],
        threshold=[0.3, 0.5],
        model_name="m",
        model_version=["1", "2"],
        source="online",
    )
    assert out["predicted_delayed"].tolist() == [True, False]
    assert out["model_version"].tolist() == ["1", "2"] and set(out["source"]) == {"online"}


def test_score_days_writes_one_partition_per_day(home):
    settings, curated = home
    results = scoring.score_days(DAYS, "5", threshold=0.6, settings=settings, predict=fake_predict)
    assert [r.ds for r in results] == DAYS
    for r in results:
        assert r.uri == lake.join(settings.lake_uri, "predictions", f"ds={r.ds}", "data.parquet")
        frame = scoring.read_predictions(r.ds, settings)
        day = curated[curated["ds"] == r.ds]
        assert len(frame) == r.rows == len(day)  # every scheduled flight, cancelled ones included
        assert set(frame["flight_id"]) == set(day["flight_id"])
        assert frame["flight_id"].is_unique and (frame["ds"] == r.ds).all()
        assert list(frame.columns) == scoring.BATCH_COLUMNS
        assert set(frame["model_version"]) == {"5"} and set(frame["source"]) == {"batch"}
        assert (frame["threshold"] == 0.6).all()
        assert (frame["predicted_delayed"] == (frame["delay_probability"] >= 0.6)).all()
        assert r.decided == r.as_dict()["predicted_delayed"] == int(frame["predicted_delayed"].sum())
        assert frame["sched_dep_ts"].is_monotonic_increasing
        # The features stored are the ones scored.
        assert np.allclose(fake_predict(frame), frame["delay_probability"])
        assert not r.model_trained_after_day


def test_rerun_is_idempotent(home):
    settings, _ = home
    first = scoring.score_days(DAYS[:1], "5", settings=settings, predict=fake_predict)[0]
    before = lake.read_bytes(first.uri)
    again = scoring.score_days(DAYS[:1], "5", settings=settings, predict=fake_predict)[0]
    assert lake.read_bytes(again.uri) == before
    files = list(lake.list_uris(lake.join(settings.lake_uri, "predictions")))
    assert files == [first.uri]
    # Another version replaces the partition (no mix of versions in a day).
    scoring.score_days(DAYS[:1], "6", settings=settings, predict=fake_predict)
    assert set(scoring.read_predictions(DAYS[0], settings)["model_version"]) == {"6"}


def test_missing_partition_is_named(home):
    settings, _ = home
    with pytest.raises(FileNotFoundError, match=r"2013-06-20.*ingest_flights"):
        scoring.score_days(["2013-06-20"], "5", settings=settings, predict=fake_predict)


def test_in_sample_days_are_flagged(home):
    settings, _ = home
    r = scoring.score_days(DAYS[:1], "5", settings=settings, predict=fake_predict, model_as_of="2013-07-01")[
        0
    ]
    assert r.model_trained_after_day and r.model_as_of == "2013-07-01"


def test_no_champion_says_what_to_do(mlops_home, monkeypatch):
    monkeypatch.setattr(registry, "alias_version", lambda *a, **k: None)
    with pytest.raises(scoring.NoModelToScore, match=r"@champion is not set.*train_model"):
        scoring.resolve_version(None)


def test_a_range_is_one_event_with_totals_and_every_day(home):
    settings, curated = home
    results = scoring.score_days(DAYS, "5", threshold=0.6, settings=settings, predict=fake_predict)
    extra = scoring.event_metadata(results)
    assert (extra["ds"], extra["end_ds"]) == (DAYS[0], DAYS[-1])
    assert extra["rows"] == len(curated) == sum(d["rows"] for d in extra["days"])
    assert extra["predicted_delayed"] == sum(r.decided for r in results) and extra["threshold"] == 0.6
    assert [d["ds"] for d in extra["days"]] == DAYS and extra["model_version"] == "5"
    pooled = np.mean([p for ds in DAYS for p in scoring.read_predictions(ds, settings)["delay_probability"]])
    assert extra["mean_prediction"] == pytest.approx(pooled)
    # One day keeps the one-day shape.
    assert scoring.event_metadata(results[:1]) == results[0].as_dict()


def test_days_without_feature_tables_are_named(home):
    settings, _ = home
    with pytest.raises(FileNotFoundError, match=r"2 day\(s\) 2013-06-11\.\.2013-06-12.*materialize_features"):
        scoring.require_features(DAYS, settings)
    for ds in DAYS:
        lake.write_parquet(
            layout.feature_file(settings.lake_uri, compute.DAILY_VIEWS[-1], ds), pd.DataFrame({"x": [1]})
        )
    scoring.require_features(DAYS, settings)
