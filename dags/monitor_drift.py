"""
## Monitor drift and performance of the champion

Daily, backfillable. For the day `ds` (the logical date, or the `ds` param) it compares the
`window_days` days ending with `ds` against what `@champion` was trained on.

1. **check_drift** (`DriftCheckOperator`, Evidently 0.7): data drift per feature (Wasserstein /
   Jensen-Shannon against the champion's training window), prediction drift (against the
   champion's holdout predictions) and, on the rows whose labels had arrived by the end of `ds`,
   ROC-AUC and calibration against the holdout. Each side is sampled to at most `sample_size`
   rows with `seed` (recorded). The report (HTML + JSON) goes to
   `{lake}/reports/drift/ds=YYYY-MM-DD/`, the run to MLflow (experiment
   `flight-delay-monitoring`), a row to the history table `{lake}/reports/drift/history.parquet`.
   Links on the task: **Drift report**, **MLflow run**. No champion yet: skipped.
2. **request_retrain** emits `retrain_request` (which starts `train_model`) only when a
   threshold is breached **and** this model's storm guard allows it: no request within `cooldown_days`
   (of data time) of another request or after the champion's as-of date, no repeat of the same
   drift signature or of the same day's data, no `train_model` run queued or running. Otherwise
   the task is **skipped** - a skipped task emits no asset event - and the ledger
   `{lake}/reports/drift/requests/ledger.json` records why. The event carries the reason, the
   drifted features with their scores, the report URI and the data window.

**Params:** window, sample cap and seed, thresholds, cooldown, `allow_retrain` (off: report
only). Built by `mlops.airflow.drift_dag.build_drift_dag` (spec `flight_delay`), as
`monitor_drift_air_time` is for the air-time model. Backfill with `airflow backfill create --dag-id monitor_drift --from-date ... --to-date ...`.
"""

from __future__ import annotations

from mlops.airflow.assets import RETRAIN_REQUEST
from mlops.airflow.drift_dag import build_drift_dag

dag = build_drift_dag(
    "flight_delay",
    dag_id="monitor_drift",
    retrain_asset=RETRAIN_REQUEST,
    train_dag_id="train_model",
    doc_md=__doc__,
)

if __name__ == "__main__":
    dag.test()
