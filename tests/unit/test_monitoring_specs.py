"""The monitoring comparison (:func:`mlops.monitoring.statistics.run_check`) driven by a model spec.

* the air-time regressor: performance is MAE/RMSE/R² of the rows whose air time is known,
  judged relative to the holdout's MAE (lower is better); a model that is off by a quarter
  breaches, the same model on a like-for-like week does not;
* the third spec of the tests (machine failures: own label, columns and day column) runs the
  same comparison with no platform change, and a hotter week drifts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.monitoring import statistics
from mlops.monitoring.params import DriftParams
from mlops.spec.model import model_spec
from tests.unit import _synthetic_spec
from tests.unit._frames import curated

PARAMS = DriftParams(sample_size=1500, min_current_rows=200, min_labelled_rows=200, seed=3)
HOLDOUT_START = "2013-04-22"


def air_rows(start: str, end: str) -> pd.DataFrame:
    from mlops.features.compute import request_features

    cur = curated()
    cur = cur[(cur["ds"] >= start) & (cur["ds"] < end) & cur["air_time"].notna()]
    frame = pd.concat(
        [cur[["flight_id", "sched_dep_ts", "ds"]], cur["air_time"].astype("float64"), request_features(cur)],
        axis=1,
    )
    return frame.reset_index(drop=True)


def route_mean_model(reference: pd.DataFrame, scale: float = 1.0):
    """A stand-in regressor: the route's mean air time in the reference (times ``scale``)."""
    means = reference.groupby(["origin", "dest"], observed=True)["air_time"].mean()
    overall = float(reference["air_time"].mean())

    def predict(frame: pd.DataFrame) -> np.ndarray:
        keys = pd.MultiIndex.from_arrays([frame["origin"].astype(str), frame["dest"].astype(str)])
        values = means.reindex(keys).to_numpy(dtype="float64")
        return np.where(np.isnan(values), overall, values) * scale

    return predict


@pytest.fixture(scope="module")
def air():
    reference = air_rows("2013-04-01", "2013-04-29")
    current = air_rows("2013-04-29", "2013-05-06")
    # Fitted on the reference's days before its holdout: the holdout's MAE is out of sample.
    model = route_mean_model(reference[reference["ds"] < HOLDOUT_START])
    return reference, current, model


def test_air_time_performance_is_judged_on_mae_relative_to_the_holdout(air):
    spec = model_spec("air_time")
    reference, current, model = air
    good = statistics.run_check(
        reference,
        current,
        PARAMS,
        predict=model,
        reference_holdout_start=HOLDOUT_START,
        spec=spec,
    ).summary
    assert good["performance_metric"] == "mae" and good["n_labelled"] >= 200
    assert good["performance"] == pytest.approx(good["performance_metrics"]["mae"])
    assert {"mae", "rmse", "r2"} <= set(good["performance_metrics"])
    assert good["performance_reference"] > 0 and good["performance_degradation"] < 0.75, good
    assert "performance" not in {b["kind"] for b in good["breaches"]}
    assert good["roc_auc"] is None and good["calibration_error"] is None  # no classifier metrics
    assert "air_time" not in good["feature_scores"]  # the label is not a monitored feature

    # The same routes, every prediction a quarter too long, on the current rows only.
    shifted = current.assign(prediction=model(current) * 1.25)
    bad = statistics.run_check(
        reference,
        shifted,
        PARAMS,
        predict=model,
        reference_holdout_start=HOLDOUT_START,
        spec=spec,
    ).summary
    assert bad["performance"] > bad["performance_reference"]
    kinds = {b["kind"]: b for b in bad["breaches"]}
    assert "performance" in kinds and kinds["performance"]["threshold"] == 0.75, bad["breaches"]
    assert (
        "mae" in kinds["performance"]["message"]
        and "worse than the holdout" in kinds["performance"]["message"]
    )


def test_the_flight_delay_performance_rule_is_unchanged():
    """Without a relative limit the spec keeps the absolute ROC-AUC drop (DriftParams.max_auc_drop)."""
    quality = statistics.Performance(roc_auc=0.60, roc_auc_reference=0.70, value=0.60, reference=0.70)
    drift = statistics.FeatureDrift(None, {}, 0)
    found = statistics.breaches(drift, 0.0, quality, 1000, PARAMS)
    assert [b["kind"] for b in found] == ["performance"] and "ROC-AUC" in found[0]["message"]
    assert quality.degradation == pytest.approx(0.1 / 0.7)


def machine_days(days: list[str], shift: float = 0.0) -> pd.DataFrame:
    spec = _synthetic_spec.SPEC
    frame = pd.concat([_synthetic_spec.day_rows(day, shift) for day in days], ignore_index=True)
    return frame[[*spec.meta_columns, spec.label, *spec.features]]


def test_a_third_spec_runs_the_same_comparison():
    spec = _synthetic_spec.SPEC
    reference = machine_days([f"2013-06-{d:02d}" for d in range(1, 15)])
    same = machine_days([f"2013-06-{d:02d}" for d in range(20, 24)])
    hot = machine_days([f"2013-06-{d:02d}" for d in range(20, 24)], shift=15.0)

    def predict(frame: pd.DataFrame) -> np.ndarray:  # the data's own logistic, a perfect model
        logit = 0.25 * (frame["temperature"] - 65.0) + 0.6 * (frame["vibration"] - 3.0) - 1.0
        return (1.0 / (1.0 + np.exp(-logit))).to_numpy(dtype="float64")

    params = DriftParams(sample_size=5000, min_current_rows=200, min_labelled_rows=200, ignore_features=())
    calm = statistics.run_check(
        reference, same, params, predict=predict, reference_holdout_start="2013-06-10", spec=spec
    ).summary
    assert set(calm["feature_scores"]) == {"temperature", "vibration", "age_days", "site"}
    assert not calm["breached"], calm["breaches"]
    assert calm["performance_metric"] == "roc_auc" and calm["roc_auc"] > 0.75
    drifted = statistics.run_check(
        reference, hot, params, predict=predict, reference_holdout_start="2013-06-10", spec=spec
    ).summary
    assert "temperature" in drifted["drifted_features"] and drifted["breached"]
