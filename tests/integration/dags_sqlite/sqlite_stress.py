"""A DAG whose tasks write to the metadata DB constantly (XComs), for the SQLite lock test."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


def sqlite_stress():
    @task
    def fan_out() -> list[int]:
        return list(range(6))

    @task
    def work(i: int) -> int:
        return i * i

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    total(work.expand(i=fan_out()))


for _i in range(8):
    dag(
        dag_id=f"sqlite_stress_{_i}",
        schedule="@daily",
        start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
        catchup=False,
        tags=["test"],
        max_active_runs=4,
    )(sqlite_stress)()
