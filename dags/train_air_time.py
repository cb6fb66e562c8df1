"""
## Train the air-time model

Weekly (Mondays 02:00 UTC, after `train_model`) **or** whenever `monitor_drift_air_time` emits an
`air_time_retrain_request` (through the air-time model's own storm guard); backfillable, triggered
with params. The same tasks and operators as `train_model` (`mlops.airflow.training_dag`), given
the model spec `air_time`
(`include/mlops/air_time/model.py`, see `docs/specs.md`):

1. **plan** - the *as-of* date (data interval end, an `air_time_retrain_request`'s data-time as-of,
   whose reason and drifted features become MLflow tags, or the `as_of` param) and the window.
2. **build_training_set** / **validate_training_set** - every curated flight with a known
   `air_time` (minutes, wheels-off to wheels-on), with point-in-time Feast features of the
   service `air_time_v1`; label checks: mean 30-400 minutes, every value 1-900.
3. **score_candidate** / **refit** - an XGBoost regressor (monotone in `distance`), candidates
   ranked by validation MAE.
4. **log_to_mlflow** (experiment `flight-air-time`, behavioural checks: no negative minutes, a
   longer route never predicts a shorter flight) / **register** (`flight_air_time_xgb@challenger`) /
   **gate**: MAE on the same holdout, **lower is better**, by the margin (minutes).
5. **approval** (with `require_approval`) / **promote** `@champion` under the registry lock, recorded
   in the audit trail, independently of the flight-delay model's aliases.

Not here: a `champion` asset of its own (`publish_champion`): nothing consumes one yet.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param

from mlops.airflow.assets import AIR_TIME_RETRAIN_REQUEST
from mlops.airflow.params import TRAIN_PARAMS
from mlops.airflow.training_dag import training_dag

SPEC = "air_time"
#: The train_model form, with the margin in the gate metric's unit (the spec's default).
PARAMS = {
    **TRAIN_PARAMS,
    "promotion_margin": Param(
        0.1,
        type="number",
        minimum=0,
        maximum=10,
        title="Promotion margin (minutes of MAE)",
        description="The challenger becomes champion only if its holdout MAE is at least this many "
        "minutes below the champion's on the same holdout (and it passes the behavioural checks).",
    ),
}


train_air_time = training_dag(
    SPEC,
    dag_id="train_air_time",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 2 * * 1", timezone="UTC"), assets=AIR_TIME_RETRAIN_REQUEST
    ),
    doc_md=__doc__,
    tags=["mlops", "training", "air_time"],
    params=PARAMS,
)

if __name__ == "__main__":
    train_air_time.test()
