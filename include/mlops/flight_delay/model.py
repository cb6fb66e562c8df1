"""The flight-delay model spec: will a flight arrive 15 or more minutes late?

An XGBoost classifier of ``is_delayed`` (US DOT definition, :mod:`mlops.schema`) from the
features Feast serves through ``flight_delay_v1`` plus request-time and derived features
(:data:`mlops.flight_delay.features.MODEL_FEATURES`), registered as ``flight_delay_xgb`` in the
experiment ``flight-delay``, gated on holdout ROC-AUC (higher is better).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.flight_delay.features import MODEL_FEATURES
from mlops.spec.model import BINARY, Behaviour, Estimator, Gate, LabelChecks, ModelSpec, Monitoring

if TYPE_CHECKING:
    import pandas as pd


def delayed(curated: pd.DataFrame) -> pd.Series:
    """``is_delayed`` as ingestion defined it: arrival delay >= 15 min; null when cancelled or diverted."""
    return curated["is_delayed"]


SPEC = ModelSpec(
    name="flight_delay",
    model_name="flight_delay_xgb",
    experiment="flight-delay",
    description="P(arrival delay >= 15 min), known before scheduled departure",
    task=BINARY,
    label="is_delayed",
    label_doc=(
        "1 when the flight arrived 15 or more minutes late (US DOT), 0 when earlier; cancelled and "
        "diverted flights have no label and are neither trained nor evaluated on"
    ),
    label_of="mlops.flight_delay.model:delayed",
    label_dtype="int8",
    feature_service="flight_delay_v1",
    features=tuple(MODEL_FEATURES),
    frame="mlops.training.dataset:feast_frame",
    estimator=Estimator(),  # TrainParams' own defaults are this model's
    gate=Gate(metric="roc_auc", higher_is_better=True, tiebreak="log_loss"),
    label_checks=LabelChecks(mean_name="delayed rate", mean_range=None, value_range=(0.0, 1.0)),
    behaviour=Behaviour(
        irrelevant_fields=("flight_id", "flight", "tailnum", "ds"),
        # Only causal, unconfounded signals: a late inbound aircraft and a congested departure
        # bank make a delay more likely whatever else is true. (Window rates such as a carrier's
        # 7-day delayed rate are confounded with the carrier and season.)
        directions={"prev_leg_dep_delay": +1, "cong_dep_delay_mean_prev_2h": +1},
    ),
    monitoring=Monitoring(
        experiment="flight-delay-monitoring",
        ignore_features=("month",),
        metric="roc_auc",
        higher_is_better=True,
        max_relative_degradation=None,  # DriftParams.max_auc_drop, absolute
        label_known_at="mlops.flight_delay.features:arrival_known_ts",  # outcomes known at arrival
    ),
    request_fields={
        "carrier": "string",
        "flight": "integer",
        "origin": "string",
        "dest": "string",
        "sched_dep_ts": "date-time",
        "tailnum": "string",
    },
    prediction_column="delay_probability",
    online="mlops.flight_delay.serving:DELAY",
    lake_dir="",  # DESIGN.md's paths: {lake}/predictions/, {lake}/reports/drift/
    batch_columns=(
        "flight_id",
        "ds",
        "carrier",
        "flight",
        "origin",
        "dest",
        "tailnum",
        "sched_dep_ts",
        "delay_probability",
        "predicted_delayed",
        "threshold",
        "model_name",
        "model_version",
        "source",
    ),
)
