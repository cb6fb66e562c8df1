"""
## Guard the champion's rollout: roll back to `@previous` when it does worse live

Hourly (and on demand with the `ds` param). Compares `flight_delay_xgb@champion`'s live numbers
with `@previous`'s and, when a threshold is breached, moves `@champion` back to `@previous`.

1. **check_rollout** (`RolloutCheckOperator`) scrapes the prediction service's `/metrics`
   (`metrics_url` param or `MLOPS_SERVING_METRICS_URL`; the scrape is kept in
   `{lake}/reports/rollout/metrics/`) and judges, on the `window_days` days ending with `ds`:
   - **online ROC-AUC**, paired: the flights the champion answered (`{lake}/predictions_online/`,
     since it last became champion) whose labels have arrived (curated `is_delayed`), scored again
     by `@previous` from the same logged inputs. Same flights, same labels: a drop beyond
     `max_auc_drop` that a paired bootstrap puts above zero (`confidence`) is a breach;
   - **error rate** (`/predict` 5xx) and **p99 latency**, each version over the scrape intervals it
     alone answered (the service's per-version prediction counter says who): the champion's
     since its promotion, `@previous`'s from when it was champion;
   - nothing on thin evidence: `min_labelled` flights (`min_class_rows` of each class),
     `min_requests` requests per version. The verdict lists what could not be judged and why.
2. **roll_back** (`RollbackOperator`) on a breach: under the registry's promotion lock, only if both
   aliases are still what the check compared and `@previous`'s version is READY; both moves are
   recorded in the audit trail as `rollback-guard` (`mlops audit`), then a `rollback` alert goes
   out (`mlops.airflow.alerts`). No breach, `allow_rollback` off or no `@previous`: **skipped**.
   A retry or a second run for the same breach moves nothing.

**Params:** thresholds and minimum samples (empty: `MLOPS_ROLLOUT_<NAME>` from the environment,
else the defaults of `mlops.monitoring.rollout.RolloutParams`), `metrics_url`, `allow_rollback`.
"""

from __future__ import annotations

from airflow.sdk import dag

from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.rollout import ROLLOUT_PARAMS, RollbackOperator, RolloutCheckOperator
from mlops.airflow.params import PARTITION, PARTITION_MACROS


@dag(
    schedule="@hourly",
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=1,
    params=ROLLOUT_PARAMS,
    user_defined_macros=PARTITION_MACROS,
    default_args=default_args(timeout_minutes=20),
    doc_md=__doc__,
    tags=["mlops", "monitoring", "rollout"],
)
def rollout_guard():
    check = RolloutCheckOperator(task_id="check_rollout", ds=PARTITION)
    RollbackOperator(task_id="roll_back", summary=check.output)


rollout_guard()

if __name__ == "__main__":
    rollout_guard().test()
