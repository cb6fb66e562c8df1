"""
## Score the day's flights with the air-time champion

Daily, and backfillable (`airflow backfill create --dag-id batch_predict_air_time --from-date ...
--to-date ...`): the same builder and tasks as `batch_predict`
(`mlops.airflow.scoring_dag.build_scoring_dag`), given the model spec `air_time`
(`include/mlops/air_time/model.py`, see `docs/specs.md`).

The day is the run's logical date, or the `ds` param; with `end_ds` one run scores every day from it
through `end_ds` (one feature retrieval for the range).

1. **wait_for_features** - a deferrable sensor waits for the (last) day's feature tables.
2. **resolve_model** - `flight_air_time_xgb@champion` as of now, or the `model_version` param,
   resolved once per run.
3. **score** - every curated flight of the day(s), with point-in-time features of the feature
   service `air_time_v1`, scored by that version: minutes in the air (`air_time_minutes`), no
   threshold (a regressor). Writes `{lake}/models/air_time/predictions/ds=YYYY-MM-DD/data.parquet`
   atomically (a rerun replaces it) with the version on every row and the model inputs as scored
   (what `monitor_drift_air_time` reads), and emits `air_time_predictions` (`ds`, `uri`, `rows`,
   `model_version`, `mean_prediction`; for a range, the totals and a `days` list).

Independent of the flight-delay model: its own champion, folder and asset; the two DAGs can run,
backfill and be triggered separately. A day scored by a model trained after it is flagged in the
event (`model_trained_after_day`): pass `model_version` to backfill with an older model.

**Deadline:** a run still unfinished 6 h after its logical date sends a `deadline_missed` alert.
"""

from __future__ import annotations

from mlops.airflow.assets import AIR_TIME_PREDICTIONS
from mlops.airflow.scoring_dag import build_scoring_dag

batch_predict_air_time = build_scoring_dag(
    "air_time",
    dag_id="batch_predict_air_time",
    outlet=AIR_TIME_PREDICTIONS,
    doc_md=__doc__,
    tags=["mlops", "scoring", "air_time"],
)

if __name__ == "__main__":
    batch_predict_air_time.test()
