"""Behavioural model tests (Made With ML style): invariance and directional expectations.

``train_model.log_to_mlflow`` runs them once and the promotion gate reads their outcome
(``mlops.models.registry.gate_and_promote``); here they run on a small
model trained from curated data, and on deliberately broken predictors to show they bite.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.training.behaviour import behavioural_checks
from mlops.training.run import train
from mlops.training.split import split
from tests.unit._frames import small_frame, tiny_params

AS_OF = "2013-03-15"


@pytest.fixture(scope="module")
def setup():
    frame = small_frame("2013-02-01", AS_OF, frac=0.3, seed=1)
    params = tiny_params(n_candidates=1, n_estimators=60, max_depth=4)
    result = train(frame, params, AS_OF)
    _, holdout = split(frame, result.window)
    return result, holdout


def _by_name(checks):
    return {c["name"]: c for c in checks}


def test_trained_model_passes_its_behavioural_checks(setup):
    result, holdout = setup
    checks = behavioural_checks(result.model.predict, holdout, result.model.features)
    failed = [c for c in checks if not c["passed"]]
    assert not failed, failed
    names = set(_by_name(checks))
    assert {"range", "invariance_irrelevant_fields", "invariance_row_order"} <= names
    assert "direction_prev_leg_dep_delay" in names


def test_invariance_catches_a_model_that_reads_an_identifier(setup):
    result, holdout = setup

    def leaky(frame: pd.DataFrame) -> np.ndarray:
        ids = frame["flight_id"].astype(str).map(lambda s: (hash(s) % 100) / 1000)
        return result.model.predict(frame) * 0.9 + ids.to_numpy()

    checks = _by_name(behavioural_checks(leaky, holdout, result.model.features))
    assert not checks["invariance_irrelevant_fields"]["passed"]


def test_invariance_catches_batch_dependence(setup):
    result, holdout = setup

    def batchy(frame: pd.DataFrame) -> np.ndarray:
        p = result.model.predict(frame)
        return np.clip(p + np.linspace(0, 0.01, len(p)), 0, 1)

    checks = _by_name(behavioural_checks(batchy, holdout, result.model.features))
    assert not checks["invariance_row_order"]["passed"]


def test_direction_catches_an_inverted_relationship(setup):
    result, holdout = setup

    def inverted(frame: pd.DataFrame) -> np.ndarray:
        return np.clip(0.5 - frame["prev_leg_dep_delay"].fillna(0).to_numpy() / 300, 0, 1)

    checks = _by_name(behavioural_checks(inverted, holdout, result.model.features))
    assert not checks["direction_prev_leg_dep_delay"]["passed"]


def test_range_catches_non_probabilities(setup):
    result, holdout = setup
    checks = _by_name(
        behavioural_checks(lambda f: result.model.predict(f) * 3, holdout, result.model.features)
    )
    assert not checks["range"]["passed"]


def test_a_late_inbound_aircraft_means_higher_risk(setup):
    """Directional expectation on the real model, stated as a test."""
    result, holdout = setup
    rows = holdout.head(500).copy()
    low, high = rows.copy(), rows.copy()
    low["prev_leg_dep_delay"], high["prev_leg_dep_delay"] = 0.0, 90.0
    assert result.model.predict(high).mean() >= result.model.predict(low).mean()
