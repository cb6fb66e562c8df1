"""
## Monitor drift and performance of the air-time model's champion

Daily, backfillable; the same tasks as `monitor_drift`, given the model spec `air_time`
(`include/mlops/air_time/model.py`, registered model `flight_air_time_xgb`). For the day `ds` it
compares the `window_days` days ending with `ds` against what `flight_air_time_xgb@champion` was
trained on:

1. **check_drift** (`DriftCheckOperator`, spec `air_time`): data drift of the `air_time_v1`
   features (Wasserstein / Jensen-Shannon against the champion's training window), drift of the
   predicted minutes against the champion's holdout predictions and, on the flights that had
   landed by the end of `ds`, **MAE**, RMSE and R² against the holdout's. A performance breach is
   an MAE more than 75% above the holdout's (the spec's `Monitoring.max_relative_degradation`;
   `max_auc_drop` and `max_calibration_error` apply to classifiers only). Current flights come
   from `batch_predict_air_time`'s output (`{lake}/models/air_time/predictions/ds=...`) when it
   scored them with the champion, else are scored in the task. Report (HTML + JSON):
   `{lake}/models/air_time/reports/drift/ds=YYYY-MM-DD/`; history:
   `{lake}/models/air_time/reports/drift/history.parquet`; MLflow experiment
   `flight-air-time-monitoring`. No champion yet: skipped.
2. **request_retrain** emits `air_time_retrain_request` (which starts `train_air_time`) only when a
   threshold is breached **and** the air-time model's own storm guard allows it: its own lock,
   ledger (`{lake}/models/air_time/reports/drift/requests/ledger.json`) and cooldowns, and no
   `train_air_time` run queued or running. The flight-delay model's requests never suppress it
   (nor the other way round). Otherwise the task is **skipped** and the ledger records why.

**Params:** as `monitor_drift`. Backfill with
`airflow backfill create --dag-id monitor_drift_air_time --from-date ... --to-date ...`.
"""

from __future__ import annotations

from mlops.airflow.assets import AIR_TIME_RETRAIN_REQUEST
from mlops.airflow.drift_dag import build_drift_dag

dag = build_drift_dag(
    "air_time",
    dag_id="monitor_drift_air_time",
    retrain_asset=AIR_TIME_RETRAIN_REQUEST,
    train_dag_id="train_air_time",
    doc_md=__doc__,
    tags=["mlops", "monitoring", "drift", "air_time"],
)

if __name__ == "__main__":
    dag.test()
