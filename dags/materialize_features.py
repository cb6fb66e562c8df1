"""
## Materialize the flight-delay features

Runs whenever `ingest_flights` publishes `curated_flights` or `ingest_weather` publishes
`curated_weather` (several partitions may arrive in one run), or manually with the
`start_ds`/`end_ds` params.

1. **plan** - every `ds` of the triggering `curated_flights` events, and for each `curated_weather`
   day D the days reading it (D and D+1) that have curated flights (or the params' days), plus
   those of events that arrived after the run was queued (Airflow would otherwise strand them: see
   `mlops.airflow.events.partition_days`). Weather that arrives before its day's flights builds
   nothing (the run is skipped): the flights' event builds the day with it.
2. **build_features** - point-in-time feature tables of those days from the curated lake
   (`{lake}/features/<feature_view>/ds=YYYY-MM-DD/data.parquet`, rewritten atomically; days already
   built whose 28-day windows include a new day are rebuilt too). Rules: `mlops.features.compute`.
3. **feast_apply** - `feast apply` of `feature_repo/` (project `flight_delay`, feature service
   `flight_delay_v1`), serialized by a lock (file lock or PostgreSQL advisory lock).
4. **materialize** - `FeastMaterializeOperator` loads the covered event-time interval, with an
   overlap for late rows, into the online store (same lock).
5. **publish** - emits `flight_features` with `{start, end, partitions}`.

Reruns are idempotent: the same curated partitions give the same files and the same online rows.

**Deadline:** a run still unfinished 2 h after it was queued sends a `deadline_missed` alert
(Airflow `DeadlineAlert`; asset-triggered runs have no logical date, so the deadline counts from
the arrival of the curated data that queued the run; channels in `mlops.airflow.alerts`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from mlops.airflow.alerts import deadline
from mlops.airflow.assets import CURATED_FLIGHTS, CURATED_WEATHER, FLIGHT_FEATURES
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.feast import FeastMaterializeOperator
from mlops.airflow.params import FEATURE_PARAMS, check_params

#: The features of newly curated data are due online this long after the run was queued.
FEATURES_DEADLINE = timedelta(hours=2)


@dag(
    schedule=CURATED_FLIGHTS | CURATED_WEATHER,
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    params=FEATURE_PARAMS,
    doc_md=__doc__,
    tags=["mlops", "features", "feast"],
    default_args=default_args(timeout_minutes=60),
    max_active_runs=1,
    deadline=deadline(FEATURES_DEADLINE, reference="queued_at"),
)
def materialize_features():
    @task(inlets=[CURATED_FLIGHTS, CURATED_WEATHER], execution_timeout=timedelta(minutes=5))
    def plan(params=None, triggering_asset_events=None, inlet_events=None, dag_run=None) -> list[str]:
        """The days to build: the triggering events' ds (and the stranded ones), else the params' range."""
        from mlops.airflow import events
        from mlops.features.compute import day_range, days_to_build

        check_params(params, FEATURE_PARAMS)  # a misspelt conf key fails here, without retry
        run_after = getattr(dag_run, "run_after", None)
        new = {
            asset.name: events.partition_days(
                events.events_of(triggering_asset_events, asset.name), inlet_events, asset, run_after
            )
            for asset in (CURATED_FLIGHTS, CURATED_WEATHER)
        }
        days = days_to_build(new[CURATED_FLIGHTS.name], new[CURATED_WEATHER.name])
        if not days and new[CURATED_WEATHER.name] and not new[CURATED_FLIGHTS.name]:
            raise AirflowSkipException(
                f"weather of {', '.join(new[CURATED_WEATHER.name])} curated before its flights: "
                "nothing to rebuild; curated_flights of those days builds them with it"
            )
        if not days and params and params.get("start_ds"):
            days = day_range(params["start_ds"], params.get("end_ds") or params["start_ds"])
        if not days:
            raise ValueError(
                "no partition to build: this run has no curated_flights or curated_weather event with "
                "a 'ds' in its extra; trigger it with params start_ds (and end_ds), e.g. "
                '{"start_ds": "2013-01-01", "end_ds": "2013-01-31"}'
            )
        return days

    # multiple_outputs=False: a dict return is one XCom (the template below indexes it), not one per key.
    @task(multiple_outputs=False)
    def build_features(days: list[str]) -> dict:
        """Build the feature tables of ``days`` (idempotent) and return the covered interval."""
        from mlops.airflow.runtime import lake_task
        from mlops.features.compute import build_feature_tables

        with lake_task():
            result = build_feature_tables(days)
        if not result.partitions:
            raise FileNotFoundError(
                f"no curated partition for any of {days}: nothing to build; ingest them first "
                "(ingest_flights) and clear this task"
            )
        return result.as_dict()

    @task(multiple_outputs=False)
    def feast_apply() -> dict:
        """``feast apply`` of feature_repo/, serialized across runs and processes."""
        from mlops.airflow.runtime import lake_task
        from mlops.features import feature_store

        with lake_task():
            return feature_store.apply()

    materialize = FeastMaterializeOperator(
        task_id="materialize",
        start="{{ ti.xcom_pull(task_ids='build_features')['start'] }}",
        end="{{ ti.xcom_pull(task_ids='build_features')['end'] }}",
        overlap_hours="{{ params.overlap_hours }}",
    )

    @task(outlets=[FLIGHT_FEATURES], execution_timeout=timedelta(minutes=5), multiple_outputs=False)
    def publish(built: dict, materialized: dict, outlet_events=None) -> dict:
        """Emit ``flight_features`` with the materialized interval and the partitions."""
        extra = {
            "start": materialized["start"],
            "end": materialized["end"],
            "partitions": built["partitions"],
            "rows": built["rows"],
        }
        outlet_events[FLIGHT_FEATURES].extra = extra
        return extra

    days = plan()
    built = build_features(days)
    applied = feast_apply()
    built >> applied >> materialize
    publish(built, materialize.output)


materialize_features()

if __name__ == "__main__":
    materialize_features().test()
