"""
## Ingest and validate the day's flights

Turns the day's raw export into a validated, curated lake partition, or stops it at the door.

The day is the run's logical date, or the `ds` param (manual re-ingest).

1. **wait_for_landing**: a deferrable sensor waits in the triggerer for
   `{landing}/flights/ds=YYYY-MM-DD/flights.csv` (amazon `S3KeySensor` for `s3://` through the
   `aws_default` connection; `LandingFileSensor` for `file://`).
2. **validate**: the Great Expectations suite `flights_raw_v1` (schema and types, nulls, ranges,
   carriers and airports, unique flight keys, weekday volume, partition date). Pass: the report
   (HTML + JSON) goes to `{lake}/reports/validation/ds=.../`. Fail: the batch and its report move
   to `{lake}/quarantine/flights/ds=.../` and the task fails **without retry**, with a message
   naming the partition, the failed checks, example values and the next step. Nothing reaches
   `curated/`.
3. **publish**: normalizes the validated export and writes
   `{lake}/curated/flights/ds=.../data.parquet` atomically (a rerun replaces it, never
   duplicates), then emits `curated_flights` with `ds`, `uri`, `rows`, `content_hash`,
   `source_sha256` and the validation summary.

**Params:** `ds` (ingest another day), `allow_partial` (accept a short day). Backfill with
`airflow backfill create --dag-id ingest_flights --from-date ... --to-date ...`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from mlops.airflow.assets import CURATED_FLIGHTS
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.gx import GXValidateOperator
from mlops.airflow.params import INGEST_PARAMS, PARTITION, PARTITION_MACROS
from mlops.airflow.sensors import SENSOR_TIMEOUT, landing_sensor
from mlops.config import get_settings
from mlops.simulator import landing_uri


@dag(
    schedule="@daily",
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=4,
    params=INGEST_PARAMS,
    user_defined_macros=PARTITION_MACROS,
    default_args=default_args(timeout_minutes=30),
    doc_md=__doc__,
    tags=["mlops", "ingest", "validation"],
)
def ingest_flights():
    wait_for_landing = landing_sensor(
        "wait_for_landing",
        uri=landing_uri(get_settings().landing_uri, PARTITION),
        execution_timeout=SENSOR_TIMEOUT,
    )

    validate = GXValidateOperator(
        task_id="validate", ds=PARTITION, allow_partial="{{ params.allow_partial }}"
    )

    @task(outlets=[CURATED_FLIGHTS])
    def publish(day: str, validation: dict, outlet_events=None) -> dict:
        """Write the curated partition atomically and emit `curated_flights`."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlops.airflow.storage import use_airflow_connection
        from mlops.ingest import LandingChanged, publish_partition

        use_airflow_connection()
        try:
            published = publish_partition(day, expected_sha256=validation["source_sha256"])
        except LandingChanged as exc:  # retrying cannot help: the validated bytes are gone
            raise AirflowFailException(str(exc)) from exc
        metadata = published.metadata(validation=validation)
        outlet_events[CURATED_FLIGHTS].extra = metadata
        return metadata

    wait_for_landing >> validate
    publish(PARTITION, validate.output)


ingest_flights()

if __name__ == "__main__":
    ingest_flights().test()
