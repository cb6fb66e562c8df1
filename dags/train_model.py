"""
## Train the flight-delay model

Weekly (Mondays 00:00 UTC) **or** whenever `monitor_drift` emits a `retrain_request`.

1. **plan** - the *as-of* date: the data interval end, a `retrain_request`'s data-time as-of (its
   reason and drifted features become MLflow tags) or the `as_of` param. Only curated days before
   it are read, so a backfill over past weeks trains the models that would have been trained then.
2. **build_training_set** / **validate_training_set** - point-in-time Feast features (service
   `flight_delay_v1`) with a manifest of the partitions read (rows, sha256); a failed check
   (volume, day coverage, label balance, nulls) fails the run without retry.
3. **score_candidate** (one mapped task per candidate, scored on the days before the holdout) /
   **refit** (the best one on all training days, scored on the latest `holdout_days`).
4. **log_to_mlflow** (experiment `flight-delay`) / **register** (`flight_delay_xgb@challenger`) /
   **gate**: would it replace the champion (beats it on the same holdout by the margin, passes
   the behavioural checks)? Nothing moves yet; the version's model card is logged to MLflow.
5. **approval** - with `require_approval` on and a challenger the gate would promote: waits in
   *Required Actions* (body: the model card) for *promote* / *reject*; no answer in time rejects.
6. **promote** - moves `@champion` (old one `@previous`) under a cross-process lock, if the gate
   (and the approver) said so and the champion did not change meanwhile; every move and answer
   lands in the audit trail (`mlops audit`).
7. **publish_champion** - emits `champion_model` (version in the metadata) when the champion moved.

Params (trigger form): window, holdout, XGBoost hyperparameters, candidates, seed, margin, dry run,
require approval.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

from mlops.airflow.assets import CHAMPION_MODEL, RETRAIN_REQUEST
from mlops.airflow.training_dag import training_dag

train_model = training_dag(
    "flight_delay",
    dag_id="train_model",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 * * 1", timezone="UTC"), assets=RETRAIN_REQUEST
    ),
    doc_md=__doc__,
    tags=["mlops", "training"],
    champion=CHAMPION_MODEL,
)

if __name__ == "__main__":
    train_model.test()
