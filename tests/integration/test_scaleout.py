"""The scale-out topology without Docker, through the real scheduler.

:func:`mlops.scaleout.local_stack` runs what ``docker-compose.yaml`` runs, configured by the same
variables (:func:`mlops.scaleout.environment`): CeleryExecutor with two ``airflow celery worker``
processes on this machine's PostgreSQL (fresh databases for Airflow, MLflow and the Feast registry)
and Redis (a database of its own: Celery broker and Feast online store), an ``mlflow server``
process on PostgreSQL with artifacts on S3, and moto's S3 server on loopback holding the landing
zone and the lake.

The pipeline replays a few days with ``airflow backfill create`` / ``airflow dags trigger``; the
assertions read the lake on S3, the MLflow registry and the online store in Redis. A stage runs
only when its DAG file exists, so the test grows with the project. The last test SIGKILLs a Celery
worker (every process under it, like a lost host) in the middle of an ingestion task: the task is
retried on the other worker and the curated partition is whole and unique.

Without PostgreSQL or Redis on 127.0.0.1 the tests skip, saying which is missing; under CI=true
they fail instead.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest

from mlops import embedded, scaleout
from mlops.config import EXPERIMENT_NAME, FEAST_PROJECT, MODEL_NAME
from tests.conftest import REPO, require_service

pytestmark = [pytest.mark.slow, pytest.mark.integration]
log = logging.getLogger(__name__)

ALL_DAGS = (
    "flights_upstream_simulator",
    "ingest_flights",
    "materialize_features",
    "train_model",
    "batch_predict",
    "monitor_drift",
)
#: The replayed days (training needs 14 days of window: the minimum of its params).
START, DAYS = date(2013, 1, 1), 17
END = START + timedelta(days=DAYS - 1)
#: A small, fast training run: the smallest window and holdout the params allow, one candidate.
TRAIN_CONF = {
    "as_of": (END + timedelta(days=1)).isoformat(),
    "window_days": 14,
    "holdout_days": 3,
    "n_candidates": 1,
    "n_estimators": 60,
}
#: Days replayed in the worker-kill test (after the main window).
KILL_START, KILL_DAYS = END + timedelta(days=1), 3
STAGE_TIMEOUT = 900


def present_dags() -> list[str]:
    return [d for d in ALL_DAGS if (REPO / "dags" / f"{d}.py").exists()]


def days(start: date, n: int) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    if not present_dags():
        pytest.skip("no stage DAG in dags/ yet")
    work = tmp_path_factory.mktemp("scaleout")
    t0 = time.monotonic()
    # The replay ends with 2013 (as in the embedded profile): unpausing creates no run for today.
    with scaleout.local_stack(work, workers=2, concurrency=1, schedule_end="2013-12-31") as st:
        st.started_in = time.monotonic() - t0  # type: ignore[attr-defined]
        embedded.reserialize(st.env)
        embedded.unpause(present_dags(), st.env)
        yield st
        for name in ("scheduler", *st.workers):
            path = st.services.log_dir / f"{name}.log"
            if path.exists():
                log.info("%s log tail:\n%s", name, path.read_text(errors="replace")[-2000:])


def backfill(st, dag_id: str, start: str, end: str, expected: int, conf=None) -> list[dict]:
    t0 = time.monotonic()
    embedded.backfill(dag_id, start, end, env=st.env, conf=conf, max_active_runs=4)
    runs = embedded.wait_for_runs(dag_id, st.env, expected, timeout=STAGE_TIMEOUT, services=st.services)
    print(f"  {dag_id}: {len(runs)} runs in {time.monotonic() - t0:.0f}s", flush=True)
    return runs


def wait_run(st, dag_id: str, run_id: str) -> dict:
    """Wait for one run of ``dag_id`` to finish (other runs of the DAG may go on)."""
    deadline = time.monotonic() + STAGE_TIMEOUT
    while time.monotonic() < deadline:
        st.services.check_alive()
        for run in embedded.list_runs(dag_id, st.env):
            if run["run_id"] == run_id and run.get("state") in embedded.TERMINAL_STATES:
                return run
        time.sleep(5)
    raise TimeoutError(f"{dag_id} run {run_id} not finished after {STAGE_TIMEOUT}s")


def wait_idle(st, dag_id: str, minimum: int = 1, settle: float = 20) -> list[dict]:
    """Wait for an asset-triggered DAG: at least ``minimum`` runs, none active for ``settle`` s."""
    deadline, idle_since = time.monotonic() + STAGE_TIMEOUT, None
    while time.monotonic() < deadline:
        st.services.check_alive()
        runs = embedded.list_runs(dag_id, st.env)
        busy = [r for r in runs if r.get("state") not in embedded.TERMINAL_STATES]
        if busy or len(runs) < minimum:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= settle:
            return runs
        time.sleep(5)
    raise TimeoutError(f"{dag_id} still busy or without runs after {STAGE_TIMEOUT}s")


def assert_succeeded(runs: list[dict], dag_id: str) -> None:
    failed = [r["run_id"] for r in runs if r.get("state") != "success"]
    assert not failed, f"{dag_id}: runs not successful: {failed}"


def objects(st, bucket: str, prefix: str) -> dict[str, int]:
    s3, out = st.s3(), {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def read_parquet(st, bucket: str, key: str):
    import pandas as pd

    body = st.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pd.read_parquet(io.BytesIO(body))


def landing_rows(st, ds: str) -> int:
    import pandas as pd

    key = f"flights/ds={ds}/flights.csv"
    body = st.s3().get_object(Bucket=st.endpoints.landing_bucket, Key=key)["Body"].read()
    return len(pd.read_csv(io.BytesIO(body)))


def in_stack_python(st, code: str) -> str:
    """Run ``code`` in a fresh interpreter with the stack's environment (as a task would)."""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=st.env, capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def assert_curated_partitions(st, ds_list: list[str]) -> None:
    """Each curated partition: exactly one data file, complete, no duplicated flight."""
    lake = st.endpoints.lake_bucket
    for ds in ds_list:
        prefix = f"curated/flights/ds={ds}/"
        files = objects(st, lake, prefix)
        data = [k for k in files if k.endswith(".parquet")]
        assert data == [f"{prefix}data.parquet"], f"ds={ds}: parquet objects {sorted(files)}"
        assert not [k for k in files if "tmp" in k.rsplit("/", 1)[-1]], f"ds={ds}: leftovers {sorted(files)}"
        frame = read_parquet(st, lake, f"{prefix}data.parquet")
        assert len(frame) > 0, f"ds={ds}: empty partition"
        assert not frame.duplicated().any(), f"ds={ds}: duplicated rows"
        assert len(frame) <= landing_rows(st, ds), f"ds={ds}: more curated rows than landed"


# ------------------------------------------------------------------------------------------- tests


def test_pipeline_on_celery_postgres_redis_s3(stack, record_property):
    st, present = stack, present_dags()
    t0 = time.monotonic()
    print(f"\nscale-out stack {st.run_id} up in {st.started_in:.0f}s; DAGs: {', '.join(present)}", flush=True)
    window = days(START, DAYS)
    first, last = window[0], window[-1]
    checked: list[str] = []

    if "flights_upstream_simulator" in present:
        assert_succeeded(backfill(st, "flights_upstream_simulator", first, last, DAYS), "simulator")
        landed = objects(st, st.endpoints.landing_bucket, "flights/")
        assert {f"flights/ds={ds}/flights.csv" for ds in window} <= set(landed)
        checked.append(f"landing: {DAYS} daily exports on S3")

    if "ingest_flights" in present:
        assert_succeeded(backfill(st, "ingest_flights", first, last, DAYS), "ingest_flights")
        assert_curated_partitions(st, window)
        tis = st.task_instances("ingest_flights")
        spread = scaleout.worker_busy(tis)
        print(f"  ingest spread over workers: {json.dumps(spread)}", flush=True)
        assert set(spread["tasks"]) == set(st.workers), f"tasks did not run on both workers: {spread}"
        checked.append(
            f"curated lake: {DAYS} partitions, one parquet each, no duplicates; both workers ran tasks"
        )

    if "materialize_features" in present and "ingest_flights" in present:
        assert_succeeded(wait_idle(st, "materialize_features"), "materialize_features")
        features = objects(st, st.endpoints.lake_bucket, "features/")
        assert features, "no offline feature files in the lake"
        r = st.redis()
        keys = [k for k in r.scan_iter(count=1000) if FEAST_PROJECT.encode() in k]
        assert keys, f"no Feast online rows in Redis db {st.endpoints.redis_db}"
        registry = in_stack_python(
            st,
            "from mlops.feature_store import get_store; s = get_store(); "
            "print(sorted(v.name for v in s.list_feature_views()))",
        )
        assert registry != "[]", "the Feast SQL registry holds no feature view"
        checked.append(
            f"Feast: {len(features)} offline files on S3, {len(keys)} online keys in Redis, SQL registry"
        )

    if "train_model" in present and "materialize_features" in present:
        embedded.trigger("train_model", st.env, conf=TRAIN_CONF, run_id="scaleout_train")
        assert_succeeded([wait_run(st, "train_model", "scaleout_train")], "train_model")
        version = json.loads(
            in_stack_python(
                st,
                "import json, mlflow; c = mlflow.MlflowClient(); "
                f"v = c.get_model_version_by_alias({MODEL_NAME!r}, 'champion'); "
                "r = c.get_run(v.run_id); "
                f"e = c.get_experiment_by_name({EXPERIMENT_NAME!r}); "
                "print(json.dumps({'version': v.version, 'run': v.run_id, 'exp': e.experiment_id,"
                " 'artifact_uri': r.info.artifact_uri}))",
            )
        )
        assert version["artifact_uri"].startswith("mlflow-artifacts:"), version  # proxied by the server
        stored = objects(st, st.endpoints.mlflow_bucket, "artifacts/")
        assert any(version["run"] in k for k in stored), "the champion's artifacts are not in S3"
        checked.append(
            f"MLflow on PostgreSQL: {MODEL_NAME}@champion = v{version['version']}, artifacts in S3"
        )

    if "batch_predict" in present and "train_model" in present:
        scored = window[-2:]
        assert_succeeded(backfill(st, "batch_predict", scored[0], scored[-1], len(scored)), "batch_predict")
        for ds in scored:
            frame = read_parquet(st, st.endpoints.lake_bucket, f"predictions/ds={ds}/data.parquet")
            assert len(frame) > 0, f"no predictions for {ds}"
        checked.append(f"predictions: {len(scored)} days on S3")

    if "monitor_drift" in present and "batch_predict" in present:
        monitored = window[-2:]
        runs = backfill(st, "monitor_drift", monitored[0], monitored[-1], len(monitored))
        assert_succeeded(runs, "monitor_drift")
        for ds in monitored:
            assert objects(st, st.endpoints.lake_bucket, f"reports/drift/ds={ds}/"), f"no drift report {ds}"
        checked.append(f"drift reports: {len(monitored)} days on S3")

    wall = time.monotonic() - t0
    record_property("pipeline_seconds", round(wall, 1))
    record_property("stack_start_seconds", round(st.started_in, 1))
    print(f"  pipeline wall time {wall:.0f}s (+ {st.started_in:.0f}s stack start); checked:", flush=True)
    for line in checked:
        print(f"   - {line}", flush=True)
    assert checked, "no stage ran"


def test_killed_worker_task_is_retried_on_the_other_worker(stack, record_property):
    """SIGKILL the worker whose ``publish`` task is writing a curated partition (every process under
    it, like a lost host): the task is retried on the other worker, and each partition is whole and
    unique. The S3 endpoint holds that one PUT for a while, so the kill lands mid-write."""
    st, present = stack, present_dags()
    if not {"flights_upstream_simulator", "ingest_flights"} <= set(present):
        pytest.skip("needs flights_upstream_simulator and ingest_flights")
    window = days(KILL_START, KILL_DAYS)
    target = window[1]
    lake = st.endpoints.lake_bucket
    assert_succeeded(
        backfill(st, "flights_upstream_simulator", window[0], window[-1], KILL_DAYS), "simulator"
    )
    before = {r["run_id"] for r in embedded.list_runs("ingest_flights", st.env)}
    writing = st.s3_gate.hold(lake, f"curated/flights/ds={target}/", seconds=20)
    t0 = time.monotonic()
    embedded.backfill("ingest_flights", window[0], window[-1], env=st.env, max_active_runs=4)
    assert writing.wait(STAGE_TIMEOUT), f"ds={target}: the curated partition was never written"
    victim = next(
        t
        for t in st.task_instances("ingest_flights")
        if t["task_id"] == "publish" and target in t["run_id"] and t["state"] == "running"
    )
    assert victim["hostname"] in st.workers, victim
    assert not objects(st, lake, f"curated/flights/ds={target}/"), "partition visible before its write"
    killed = st.kill_worker(victim["hostname"])
    survivor = next(w for w in st.workers if w != victim["hostname"])
    print(
        f"\n  SIGKILL {victim['hostname']} ({len(killed)} processes) while its publish of ds={target} "
        f"was writing data.parquet (try {victim['try_number']})",
        flush=True,
    )
    runs = embedded.wait_for_runs(
        "ingest_flights", st.env, len(before) + KILL_DAYS, timeout=STAGE_TIMEOUT, services=st.services
    )
    wall = time.monotonic() - t0
    assert_succeeded([r for r in runs if r["run_id"] not in before], "ingest_flights")
    retried = next(
        t for t in st.task_instances("ingest_flights") if t["task_id"] == "publish" and target in t["run_id"]
    )
    assert retried["state"] == "success"
    assert retried["try_number"] > victim["try_number"], f"not retried: {retried}"
    assert retried["hostname"] == survivor, f"retried on {retried['hostname']}, expected {survivor}"
    history = st.sql(
        "SELECT try_number, hostname, state FROM task_instance_history "
        "WHERE dag_id = 'ingest_flights' AND task_id = 'publish' AND run_id = %s",
        (retried["run_id"],),
    )
    assert (victim["try_number"], victim["hostname"], "failed") in history, history
    assert_curated_partitions(st, window)
    events = {
        e["ds"]: e
        for (extra,) in st.sql(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = %s",
            ("curated_flights",),
        )
        for e in [extra if isinstance(extra, dict) else json.loads(extra)]
        if e.get("ds") in window
    }
    frame = read_parquet(st, lake, f"curated/flights/ds={target}/data.parquet")
    assert events[target]["rows"] == len(frame), (events[target], len(frame))
    record_property("worker_kill_recovery_seconds", round(wall, 1))
    print(
        f"  publish of ds={target} failed on {victim['hostname']} (no heartbeat), retried on {survivor} "
        f"as try {retried['try_number']}; {KILL_DAYS} partitions whole and unique "
        f"({len(frame)} rows in ds={target}, as its asset event says); backfill done in {wall:.0f}s",
        flush=True,
    )
