"""Drift monitoring of the air-time model next to the flight-delay one.

* the comparison on real air-time frames (curated 2013 flights, a route-mean regressor fitted
  before the holdout): a like-for-like week breaches nothing; a week with only Newark's flights
  (JFK and LaGuardia closed) drifts on the airport, destination and carrier mix. The degraded
  model's performance verdict (MAE relative to the holdout's, the spec's 75%) is in
  test_monitoring_specs.py;
* each model keeps its own files (reports, history, ledger under its lake folder) and its own storm
  guard: its own lock, ledger and cooldown, and it counts its own training DAG's runs, so a
  flight-delay request never suppresses an air-time one (nor the other way round);
* the current window of a spec: its feed's rows or its frame, labels known per the spec, features
  from the feature store or (a spec outside it) its own frame.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mlops.monitoring import frames, guard, history, statistics
from mlops.monitoring.params import DriftParams
from mlops.spec.model import model_spec
from tests.unit import _synthetic_spec
from tests.unit.test_monitoring_specs import HOLDOUT_START, PARAMS, air_rows, route_mean_model

AIR = model_spec("air_time")
DELAY = model_spec("flight_delay")


@pytest.fixture(scope="module")
def air():
    reference = air_rows("2013-04-01", "2013-04-29")
    model = route_mean_model(reference[reference["ds"] < HOLDOUT_START])
    return reference, model


def _check(reference, current, model):
    return statistics.run_check(
        reference, current, PARAMS, predict=model, reference_holdout_start=HOLDOUT_START, spec=AIR
    ).summary


def test_a_like_for_like_week_of_air_time_breaches_nothing(air):
    reference, model = air
    summary = _check(reference, air_rows("2013-04-29", "2013-05-06"), model)
    assert not summary["breached"], summary["breaches"]
    assert summary["drift_share"] < PARAMS.drift_share
    assert "month" not in summary["feature_scores"] and "month" in summary["ignored_features"]
    assert summary["performance_metric"] == "mae" and summary["performance"] > 0


def test_a_week_of_newark_only_drifts_on_the_airport_mix(air):
    reference, model = air
    week = air_rows("2013-04-29", "2013-05-06")
    newark = week[week["origin"] == "EWR"].reset_index(drop=True)
    assert len(newark) >= PARAMS.min_current_rows
    summary = _check(reference, newark, model)
    assert {"origin", "carrier"} <= set(summary["drifted_features"]), summary["feature_scores"]
    kinds = {b["kind"] for b in summary["breaches"]}
    assert "data_drift" in kinds and summary["drift_detected"]
    assert summary["drift_share"] >= PARAMS.drift_share


def test_each_model_keeps_its_own_files(mlops_home):
    from mlops.config import get_settings

    s = get_settings()
    lake = s.lake_uri.rstrip("/")
    assert history.history_uri(s) == f"{lake}/reports/drift/history.parquet"  # DESIGN.md's path
    assert history.history_uri(s, DELAY) == history.history_uri(s)
    assert history.history_uri(s, "air_time") == f"{lake}/models/air_time/reports/drift/history.parquet"
    assert history.ledger_uri(s, "air_time") == f"{lake}/models/air_time/reports/drift/requests/ledger.json"
    assert history.report_file("2013-05-05", s, AIR) == (
        f"{lake}/models/air_time/reports/drift/ds=2013-05-05/report.html"
    )
    assert guard.guard_lock_name(AIR) == "flight_air_time_xgb.retrain-guard"
    assert guard.guard_lock_name() == "flight_delay_xgb.retrain-guard"


def request(ds: str, spec, **kw) -> dict:
    base = {
        "spec": spec.ref,
        "model_name": spec.model_name,
        "ds": ds,
        "breached": True,
        "data_version": f"data-{ds}",
        "signature": f"{spec.name}-sig-{ds}",
        "champion_version": "1",
        "champion_as_of": "2013-03-01",
        "window_start": ds,
        "window_end": ds,
        "drifted_features": {"origin": 0.4},
        "breaches": [{"kind": "data_drift", "value": 0.5, "threshold": 0.3, "message": "m"}],
        "reason": "3 of 7 features drifted",
        "report_uri": f"file:///lake/x/ds={ds}/report.html",
    }
    return {**base, **kw}


def test_a_flight_delay_request_does_not_suppress_an_air_time_one(mlops_home):
    p = DriftParams(cooldown_days=7)

    def ask(ds, spec, run_id, active=0, train_dag_id=guard.TRAIN_DAG_ID):
        return guard.guarded_request(
            request(ds, spec),
            p,
            run_id=run_id,
            active_training_runs=lambda: active,
            train_dag_id=train_dag_id,
        )

    delay = ask("2013-07-09", DELAY, "delay-1")
    air = ask("2013-07-09", AIR, "air-1", train_dag_id="train_air_time")
    assert delay.requested and air.requested, (delay.reason, air.reason)
    assert air.extra["model_name"] == "flight_air_time_xgb" and air.extra["spec"] == "air_time"
    # Each guard's cooldown counts only its own requests.
    delay_again = ask("2013-07-10", DELAY, "delay-2")
    assert not delay_again.requested and "cooldown after request" in delay_again.reason
    air_busy = ask("2013-07-20", AIR, "air-2", active=1, train_dag_id="train_air_time")
    assert not air_busy.requested and "1 train_air_time run(s)" in air_busy.reason
    assert ask("2013-07-20", DELAY, "delay-3", active=0).requested  # not the air-time model's training
    # Separate ledgers, each with its model's decisions only.
    delay_table, air_table = history.retrain_requests(spec=DELAY), history.retrain_requests(spec=AIR)
    assert delay_table[["ds", "decision"]].values.tolist() == [
        ["2013-07-09", "requested"],
        ["2013-07-10", "suppressed"],
        ["2013-07-20", "requested"],
    ]
    assert air_table[["ds", "decision"]].values.tolist() == [
        ["2013-07-09", "requested"],
        ["2013-07-20", "suppressed"],
    ]
    assert {e["model_name"] for e in history.read_ledger(spec="air_time")} == {"flight_air_time_xgb"}


def test_the_guard_locks_are_per_model(mlops_home):
    """Holding the flight-delay guard's lock does not block the air-time guard (a short timeout)."""
    with guard.guard_lock(spec=DELAY) as outer, guard.guard_lock(spec=AIR, timeout=5) as inner:
        assert outer and inner


def test_history_rows_carry_the_model_and_its_metric(mlops_home):
    summary = {
        "breached": False,
        "breaches": [],
        "drift_share": 0.1,
        "performance_metric": "mae",
        "performance": 9.5,
        "performance_reference": 8.2,
        "timings": {"total": 1.0},
    }
    context = {"model_name": AIR.model_name, "window_start": "2013-05-01", "window_end": "2013-05-07"}
    with guard.guard_lock(spec=AIR):
        history.upsert_history(history.history_row("2013-05-07", summary, context), spec=AIR)
    table = history.drift_history(spec=AIR)
    row = table.iloc[0]
    assert (row["model_name"], row["performance_metric"], row["performance"]) == (
        "flight_air_time_xgb",
        "mae",
        9.5,
    )
    assert history.drift_history(spec=DELAY).empty  # the flight-delay table is untouched


def test_label_arrival_per_spec():
    from tests.unit._frames import curated

    flights = curated()
    day = flights[flights["ds"] == "2013-05-05"].head(50)
    known = frames.label_known_at(AIR, day)  # the flights feed: known at arrival
    landed = day["air_time"].notna()
    assert (known[landed] > day.loc[landed, "dep_ts"]).all() and known[~landed].isna().all()
    runs = _synthetic_spec.day_rows("2013-06-01")
    lake_spec = _synthetic_spec.LAKE_SPEC  # a feed with no rule: the label is known with its row
    assert frames.label_known_at(lake_spec, runs).equals(pd.to_datetime(runs["observed_at"], utc=True))


def test_a_spec_without_feeds_checks_the_rows_of_its_frame(mlops_home):
    from mlops.config import get_settings

    spec = _synthetic_spec.SPEC
    rows = frames.window_rows(["2013-06-01", "2013-06-02"], get_settings(), spec)
    assert len(rows) == 2 * _synthetic_spec.ROWS_PER_DAY and set(rows["day"]) == {"2013-06-01", "2013-06-02"}


def test_a_spec_outside_the_feature_store_is_scored_on_its_own_frame(mlops_home):
    from mlops.config import get_settings

    spec = _synthetic_spec.SPEC
    rows = frames.window_rows(["2013-06-01", "2013-06-02"], get_settings(), spec)
    some = rows.sample(n=50, random_state=1)
    features = frames.features_of(some, get_settings(), spec)
    assert list(features.columns) == list(spec.features) and len(features) == 50
    assert features["temperature"].tolist() == some["temperature"].tolist()  # aligned with the rows
    assert isinstance(features["site"].dtype, pd.CategoricalDtype)  # typed as training typed it
