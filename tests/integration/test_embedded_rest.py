"""What ``mlops demo`` asks of Airflow through the api-server's REST API instead of ``airflow``
CLI starts (a minute each on a loaded machine): unpause once the dag-processor has parsed a DAG,
create a backfill, trigger an asset-scheduled DAG without a logical date. Against a real
api-server and dag-processor (no scheduler: the runs stay queued, which is all these calls do)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlops.config import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _db(env: dict[str, str]) -> Path:
    return Path(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))


def test_unpause_backfill_and_trigger_through_the_rest_api(mlops_home: Path):
    from mlops.dev import embedded

    with embedded.running(get_settings(), components=("api-server", "dag-processor")) as svc:
        # Straight after start: the dag-processor may not have parsed yet; the call waits for it.
        svc.unpause_dags(["flights_upstream_simulator", "materialize_features"])
        backfill = svc.create_backfill(
            "flights_upstream_simulator", "2013-05-01", "2013-05-03", max_active_runs=2
        )
        # A weekly schedule at 02:00: the backfill's last day has its run too (the whole day).
        svc.unpause_dags(["train_air_time"])
        svc.create_backfill("train_air_time", "2013-06-03", "2013-06-10", max_active_runs=1)
        run_id = svc.trigger_run(
            "materialize_features", None, {"start_ds": "2013-05-01", "end_ds": "2013-05-03"}
        )
        with pytest.raises(
            RuntimeError, match=r"backfilling no_such_dag failed \(404\).*not parsed after 2s"
        ):
            svc.create_backfill("no_such_dag", "2013-05-01", "2013-05-03", parse_timeout=2)
        runs = embedded.list_runs("flights_upstream_simulator", svc.env)
        triggered = embedded.list_runs("materialize_features", svc.env)
        weekly = embedded.list_runs("train_air_time", svc.env)

    assert backfill["dag_id"] == "flights_upstream_simulator" and backfill["max_active_runs"] == 2
    assert sorted(str(r["logical_date"])[:10] for r in runs) == ["2013-05-01", "2013-05-02", "2013-05-03"]
    assert {r["run_type"] for r in runs} == {"backfill"}
    assert sorted(str(r["logical_date"])[:16] for r in weekly) == ["2013-06-03 02:00", "2013-06-10 02:00"]
    assert [(r["run_id"], r["logical_date"]) for r in triggered] == [(run_id, None)]
    with sqlite3.connect(_db(svc.env)) as conn:
        paused = dict(conn.execute("SELECT dag_id, is_paused FROM dag").fetchall())
    assert paused["flights_upstream_simulator"] == 0 and paused["materialize_features"] == 0
    assert paused["ingest_flights"] == 1  # only what was asked
