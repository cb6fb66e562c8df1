"""
## Ingest and validate the day's flights

Turns the day's raw export into a validated, curated lake partition, or stops it at the door.

The day is the run's logical date, or the `ds` param (manual re-ingest).

1. **wait_for_landing**: a deferrable sensor waits in the triggerer until
   `{landing}/flights/ds=YYYY-MM-DD/flights.csv` is complete: upstream writes a `_SUCCESS` marker
   beside it **last** (docs/landing-contract.md), or, for feeds that cannot
   (`MLOPS_LANDING_COMPLETENESS=stable:SECONDS`), the file's size and mtime stay unchanged that
   long (amazon `S3KeySensor` for `s3://` through the `aws_default` connection;
   `LandingFileSensor` for `file://`).
2. **validate**: checks the file against the marker's size and SHA-256 (a mismatch means upstream
   is still writing: retried), then the Great Expectations suite `flights_raw_v1` (schema and
   types, nulls, ranges, carriers and airports, unique flight keys, weekday volume, partition
   date). Pass: the report (HTML + JSON) goes to `{lake}/reports/validation/ds=.../`. Fail: the
   batch and its report go to `{lake}/quarantine/flights/ds=.../` (the landing file is removed
   only if upstream has not changed it since it was read) and the task fails **without retry**,
   with a message naming the partition, the failed checks, example values and the next step.
   Nothing reaches `curated/`.
3. **publish**: normalizes the validated export and writes
   `{lake}/curated/flights/ds=.../data.parquet` atomically (a rerun replaces it, never
   duplicates), then emits `curated_flights` with `ds`, `uri`, `rows`, `content_hash`,
   `source_sha256` and the validation summary.

Permanent errors fail without retry, naming the partition, the path and what to do: bad data, a
landing file changed since validation, a lake that refuses the write (permission denied,
read-only or full file system).

The same three tasks ingest every feed (`mlops.airflow.ingest.ingest_tasks` with the feed's spec,
`mlops.flight_delay.feed`); `ingest_weather` is this DAG with the weather spec.

**Params:** `ds` (ingest another day), `allow_partial` (accept a short day). Backfill with
`airflow backfill create --dag-id ingest_flights --from-date ... --to-date ...`.
"""

from __future__ import annotations

from airflow.sdk import dag

from mlops.airflow.assets import CURATED_FLIGHTS
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.ingest import ingest_tasks
from mlops.airflow.params import INGEST_PARAMS, PARTITION_MACROS


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
    ingest_tasks("flights", CURATED_FLIGHTS)


ingest_flights()

if __name__ == "__main__":
    ingest_flights().test()
