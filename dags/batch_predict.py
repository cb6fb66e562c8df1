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

**Deadline:** a run still unfinished 6 h after its logical date sends a `deadline_missed` alert
(Airflow `DeadlineAlert`; channels in `mlops.airflow.alerts`; backfill runs are not announced).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task

from mlops import layout
from mlops.airflow.alerts import deadline
from mlops.airflow.assets import FLIGHT_PREDICTIONS
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.params import BATCH_PARAMS, LAST_SCORING_DAY, PARTITION, SCORING_MACROS
from mlops.airflow.sensors import SENSOR_TIMEOUT, landing_sensor
from mlops.config import get_settings

#: The feature table materialize_features writes last for the (last) day to score.
FEATURES_READY = layout.features_built_file(get_settings().lake_uri, LAST_SCORING_DAY)
#: The day's predictions are due this long after the run's logical date (its data interval).
SCORING_DEADLINE = timedelta(hours=6)


@dag(
    schedule="@daily",
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=2,
    params=BATCH_PARAMS,
    user_defined_macros=SCORING_MACROS,
    doc_md=__doc__,
    tags=["mlops", "scoring"],
    default_args=default_args(timeout_minutes=60),
    deadline=deadline(SCORING_DEADLINE, reference="logical_date"),
)
def batch_predict():
    wait_for_features = landing_sensor(
        "wait_for_features", uri=FEATURES_READY, execution_timeout=SENSOR_TIMEOUT
    )

    @task(execution_timeout=timedelta(minutes=10))
    def resolve_model(params=None) -> dict:
        """The registered version that scores this run (recorded in XCom and on every row)."""
        from mlops.airflow.runtime import lake_task
        from mlops.serving.scoring import NoModelToScore, resolve_version

        with lake_task(fail=(NoModelToScore,)):
            return resolve_version(params.get("model_version"))

    @task(outlets=[FLIGHT_PREDICTIONS])
    def score(day: str, model: dict, params=None, outlet_events=None) -> dict:
        """Score the day (or `day`..`end_ds`) with exactly `model` and emit `flight_predictions`."""
        from mlops.airflow.params import scoring_days
        from mlops.airflow.runtime import lake_task
        from mlops.serving import scoring

        days = scoring_days(params, day)
        with lake_task(fail=(FileNotFoundError,)):  # days without feature tables: run materialize first
            scoring.require_features(days)
        timings: dict[str, float] = {}
        with lake_task():
            results = scoring.score_days(
                days,
                model["model_version"],
                threshold=float(params["threshold"]),
                model_as_of=model.get("as_of"),
                timings=timings,
            )
        extra = {
            **scoring.event_metadata(results),
            "model_source": model["source"],
            "run_id": model["run_id"],
            "seconds": {k: round(v, 2) for k, v in timings.items()},
        }
        outlet_events[FLIGHT_PREDICTIONS].extra = extra
        return extra

    model = resolve_model()
    wait_for_features >> model
    score(PARTITION, model)


batch_predict()

if __name__ == "__main__":
    batch_predict().test()
