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
   threshold is breached **and** the storm guard allows it: no request within `cooldown_days`
   (of data time) of another request or after the champion's as-of date, no repeat of the same
   drift signature or of the same day's data, no `train_model` run queued or running. Otherwise
   the task is **skipped** - a skipped task emits no asset event - and the ledger
   `{lake}/reports/drift/requests/ledger.json` records why. The event carries the reason, the
   drifted features with their scores, the report URI and the data window.

**Params:** window, sample cap and seed, thresholds, cooldown, `allow_retrain` (off: report
only). Backfill with `airflow backfill create --dag-id monitor_drift --from-date ... --to-date ...`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from mlops.airflow.assets import RETRAIN_REQUEST
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.drift import DriftCheckOperator
from mlops.airflow.params import DRIFT_PARAMS, PARTITION, PARTITION_MACROS


@dag(
    schedule="@daily",
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=4,
    params=DRIFT_PARAMS,
    user_defined_macros=PARTITION_MACROS,
    default_args=default_args(timeout_minutes=45),
    doc_md=__doc__,
    tags=["mlops", "monitoring", "drift"],
)
def monitor_drift():
    check = DriftCheckOperator(task_id="check_drift", ds=PARTITION)  # refuses unknown conf keys

    @task(outlets=[RETRAIN_REQUEST], execution_timeout=timedelta(minutes=15))
    def request_retrain(summary: dict, params=None, ti=None, outlet_events=None) -> dict:
        """Emit `retrain_request` through the storm guard, or skip (no event) and say why."""
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.airflow import alerts
        from mlops.airflow.runtime import lake_task
        from mlops.monitoring import guard
        from mlops.monitoring.params import DriftParams

        with lake_task():
            decision = guard.guarded_request(
                summary["request"],
                DriftParams.from_mapping(params),
                run_id=ti.run_id,
                active_training_runs=lambda: ti.get_dr_count(
                    dag_id=guard.TRAIN_DAG_ID, states=["queued", "running"]
                ),
            )
        alerts.announce_retrain(summary["request"], decision, {"ti": ti})  # breached: requested or suppressed
        if not decision.requested:
            raise AirflowSkipException(f"no retrain_request: {decision.reason}")
        outlet_events[RETRAIN_REQUEST].extra = decision.extra
        return decision.extra

    request_retrain(check.output)


monitor_drift()

if __name__ == "__main__":
    monitor_drift().test()
