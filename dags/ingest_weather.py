"""
## Ingest and validate the day's weather

The weather feed through the same operators as `ingest_flights`: the hourly observations at EWR,
JFK and LGA (feed spec `mlops.weather.feed`) become a validated, curated lake partition, or stop at
the door. The day is the run's logical date, or the `ds` param (manual re-ingest).

1. **wait_for_landing**: a deferrable sensor waits until
   `{landing}/weather/ds=YYYY-MM-DD/weather.csv` is complete (its `_SUCCESS` marker, written last;
   docs/landing-contract.md).
2. **validate**: the Great Expectations suite `weather_raw_v1`: schema and types, the partition day
   and its hours, airports, one observation per airport and hour, each airport reporting at least
   75% of the day's hours, nulls, physical ranges (humidity 0-100 %, wind 0-100 mph, pressure
   900-1100 mb, visibility 0-10 miles...), dew point not above the temperature. Pass: the report
   goes to `{lake}/reports/validation/weather/ds=.../`. Fail: the batch and its report go to
   `{lake}/quarantine/weather/ds=.../` and the task fails **without retry**, naming the partition,
   the failed checks and example values. The real 2013 data has two such days: 2013-02-12 (EWR
   reported a 1048 mph wind) and 2013-12-31 (no observations).
3. **publish**: writes `{lake}/curated/weather/ds=.../data.parquet` atomically and emits
   `curated_weather` (`ds`, `uri`, `rows`, `content_hash`, `source_sha256`, validation summary).

The features read weather from the curated lake only. A quarantined or missing weather day leaves
that day's weather features empty, and training leaves its flights out (counted on the run):
docs/feeds.md.

**Params:** `ds` (ingest another day), `allow_partial` (no effect on weather: a day's hours are
always checked). Backfill with `airflow backfill create --dag-id ingest_weather --from-date ...
--to-date ...`.
"""

from __future__ import annotations

from airflow.sdk import dag

from mlops.airflow.assets import CURATED_WEATHER
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
    tags=["mlops", "ingest", "validation", "weather"],
)
def ingest_weather():
    ingest_tasks("weather", CURATED_WEATHER)


ingest_weather()

if __name__ == "__main__":
    ingest_weather().test()
