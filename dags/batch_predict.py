"""
## Score the day's flights with the champion

Daily, and backfillable (`airflow backfill create --dag-id batch_predict --from-date ... --to-date ...`).

The day is the run's logical date, or the `ds` param (re-score a day); with the `end_ds` param one
run scores every day from it through `end_ds` (one feature retrieval for the range: a month scores
about 3.7x faster than in daily runs, see benchmarks/).

1. **wait_for_features** - a deferrable sensor waits for the (last) day's feature tables
   (`{lake}/features/aircraft_previous_leg/ds=YYYY-MM-DD/data.parquet`, the last one
   `materialize_features` writes for a day).
2. **resolve_model** - the exact version to score with: `flight_delay_xgb@champion` as of now, or
   the `model_version` param. Resolved once per run and passed on, so a retry of `score` uses the
   same version even if the champion moved meanwhile.
3. **score** - every curated flight of the day(s) with its point-in-time features from Feast
   (`get_historical_features` at each scheduled departure, the training path), scored by that
   version; writes `{lake}/predictions/ds=YYYY-MM-DD/data.parquet` atomically (a rerun replaces
   it: no duplicates) with the version on every row, and emits `flight_predictions`
   (`ds`, `uri`, `rows`, `model_version`, `threshold`, counts; for a range, the totals and a `days`
   list). A day of the range whose features are missing fails the task, naming the days.

Columns and the online twin (`{lake}/predictions_online/`, written by `mlops serve`): see
`mlops.serving.scoring`. A day scored by a model trained after it is flagged in the event
(`model_trained_after_day`) and the log: pass `model_version` to backfill with an older model.

Built by `mlops.airflow.scoring_dag.build_scoring_dag` with the model spec `flight_delay` (the same
builder makes `batch_predict_air_time`).

**Deadline:** a run still unfinished 6 h after its logical date sends a `deadline_missed` alert
(Airflow `DeadlineAlert`; channels in `mlops.airflow.alerts`; backfill runs are not announced).
"""

from __future__ import annotations

from mlops.airflow.assets import FLIGHT_PREDICTIONS
from mlops.airflow.params import BATCH_PARAMS
from mlops.airflow.scoring_dag import build_scoring_dag

batch_predict = build_scoring_dag(
    "flight_delay",
    dag_id="batch_predict",
    outlet=FLIGHT_PREDICTIONS,
    params=BATCH_PARAMS,
    doc_md=__doc__,
    tags=["mlops", "scoring"],
)

if __name__ == "__main__":
    batch_predict.test()
