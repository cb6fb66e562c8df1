"""
## Probe: which task outcomes emit an outlet asset event (Airflow 3.3)

Used by tests/integration/test_drift_scheduler.py only (not in dags/). Three tasks with outlets:
one succeeds, one raises `AirflowSkipException`, one is a `short_circuit` returning False.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

SUCCEEDED = Asset(name="probe_succeeded")
SKIPPED = Asset(name="probe_skipped")
SHORT_CIRCUITED = Asset(name="probe_short_circuited")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["probe"],
    default_args={"owner": "ml-platform", "retries": 0, "execution_timeout": timedelta(minutes=5)},
)
def outlet_probe():
    @task(outlets=[SUCCEEDED])
    def succeeds() -> None:
        return None

    @task(outlets=[SKIPPED])
    def skips() -> None:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("nothing to request")

    @task.short_circuit(outlets=[SHORT_CIRCUITED])
    def short_circuits() -> bool:
        return False

    @task
    def after_short_circuit() -> None:
        return None

    succeeds()
    skips()
    short_circuits() >> after_short_circuit()


outlet_probe()
